package submission

import (
	"log/slog"

	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestAReplicaThatCannotOpenTheCredentialLeavesTheSubmitToAnother: one
// replica's encryption key ring lacks the key the credential was sealed
// with (a rolling key change). catalog.Account answers it
// FAILED_PRECONDITION ("cannot be decrypted with this replica's encryption
// keys"). classify used to make that DEAD at once, though another replica
// (or this one once its keys are fixed) delivers it: the Toloker was left
// unpaid until an operator noticed the dead letter. It is retried after a
// long wait.
func TestAReplicaThatCannotOpenTheCredentialLeavesTheSubmitToAnother(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = -1 })
	s := f.toloker(tolokasim.UserState{})
	// The other replica: same Redis, a key ring without the credential's key.
	box, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := toloka.New(toloka.Config{ProductionURL: f.simURL + "/api/v1", SandboxURL: f.simURL + "/api/v1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	badCat := catalog.New(f.redis.Client, f.redis.Prefix, box, tc, nil, slog.New(slog.DiscardHandler))
	bad := f.newService(func(c *Config) { c.Catalog = badCat; c.Settings.SyncTimeout = -1 })
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	stop := f.run(bad) // this replica's workers take the entry first
	deadline := time.Now().Add(10 * time.Second)
	got := f.get(sub.SubmissionId)
	for got.State == queued && got.GetLastError() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		got = f.get(sub.SubmissionId)
	}
	if got.State != queued || got.GetLastError().GetCode() != "CREDENTIAL_DOES_NOT_OPEN" {
		t.Fatalf("after an attempt on a replica that cannot open the credential: %v (%v), want QUEUED for another replica", got.State, got.GetLastError())
	}
	if got.GetNextAttemptTime().AsTime().Before(time.Now().Add(time.Minute)) {
		t.Errorf("next attempt at %s: want a long wait, not a spin on the misconfigured replica", got.GetNextAttemptTime().AsTime())
	}
	stop()
	// A replica that opens it pays the Toloker once the wait is over
	// (an operator's retry is not needed; here: the next attempt is due
	// now).
	f.retryNow(sub.SubmissionId)
	f.run(f.svc)
	f.waitTotals("delivered by a replica that opens the credential", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })
}
