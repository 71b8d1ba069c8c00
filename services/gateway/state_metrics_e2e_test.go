package gateway_test

import (
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestStateGaugesCountLiveSessionsAndDeadLettersOfEveryTenant: the gauges of
// what is live and dead now are sampled over every tenant's pools, at most
// once per gateway.StateSampleInterval (a scrape in between is answered from
// the last sample, without asking Redis), and follow sessions and dead
// letters as they come and go.
func TestStateGaugesCountLiveSessionsAndDeadLettersOfEveryTenant(t *testing.T) {
	clock := fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: clock})
	gauges := func() (live, dead float64) {
		t.Helper()
		_, mfs := env.Metrics()
		var ok1, ok2 bool
		live, ok1 = gatewaytest.MetricValue(mfs, "crowdgate_sessions_live")
		dead, ok2 = gatewaytest.MetricValue(mfs, "crowdgate_submission_dead_letters")
		if !ok1 || !ok2 {
			t.Fatalf("/metrics lacks crowdgate_sessions_live (%v) or crowdgate_submission_dead_letters (%v)", ok1, ok2)
		}
		return live, dead
	}
	if live, dead := gauges(); live != 0 || dead != 0 {
		t.Fatalf("empty gateway: live %v, dead %v; want 0, 0", live, dead)
	}
	sampled := clock.Now()

	// Two tenants, a pool each; three Tolokers land.
	acme := "acme"
	if _, err := env.Access.CreateTenant(env.Ctx(), &crowdgatev1.CreateTenantRequest{DisplayName: acme}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	tenants, err := env.Access.ListTenants(env.Ctx(), &crowdgatev1.ListTenantsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var other string
	for _, tn := range tenants.GetTenants() {
		if tn.GetTenantId() != tenant.Default {
			other = tn.GetTenantId()
		}
	}
	start := func(tenantID string, p *crowdgatev1.Pool, user string) string {
		t.Helper()
		s, err := env.Sessions.StartSession(gatewaytest.As(tenantID), &crowdgatev1.StartSessionRequest{AssignmentId: env.StartAssignment(p, user)})
		if err != nil {
			t.Fatalf("StartSession: %v", err)
		}
		return s.GetSession().GetSessionId()
	}
	p1 := env.OpenPool(env.Ctx(), env.NewAPIKey("acct-default"))
	p2 := env.OpenPool(gatewaytest.As(other), env.NewAPIKey("acct-other"))
	s1 := start(tenant.Default, p1, "toloker-1")
	start(tenant.Default, p1, "toloker-2")
	s3 := start(other, p2, "toloker-3")

	// Toloka refuses one submit for good: a dead letter.
	if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{400: 1}}); err != nil {
		t.Fatal(err)
	}
	resp, err := env.Submissions.Submit(env.Ctx(), &crowdgatev1.SubmitRequest{SessionId: s1, Reward: "0.10"})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	env.Sim.ClearFaults()
	if resp.GetSubmission().GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD {
		t.Fatalf("refused submit answered %v, want DEAD", resp.GetSubmission().GetState())
	}

	// Within the interval the last sample stands. (Opening the pools
	// advanced the fake clock by the emulator's operation delays.)
	if d := clock.Now().Sub(sampled); d >= gateway.StateSampleInterval {
		t.Fatalf("the setup took %v of the fake clock, more than the interval", d)
	}
	if live, dead := gauges(); live != 0 || dead != 0 {
		t.Errorf("before the interval passed: live %v, dead %v; want the last sample (0, 0)", live, dead)
	}
	clock.Advance(gateway.StateSampleInterval)
	if live, dead := gauges(); live != 3 || dead != 1 {
		t.Errorf("live %v, dead %v; want 3, 1", live, dead)
	}

	// A session ends; the dead letter is retried and delivered.
	if _, err := env.Sessions.EndSession(gatewaytest.As(other), &crowdgatev1.EndSessionRequest{SessionId: s3, Reason: crowdgatev1.EndReason_END_REASON_ENDED}); err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	if _, err := env.Submissions.RetrySubmission(env.Ctx(), &crowdgatev1.RetrySubmissionRequest{SubmissionId: resp.GetSubmission().GetSubmissionId()}); err != nil {
		t.Fatalf("RetrySubmission: %v", err)
	}
	waitDelivered(t, env, resp.GetSubmission().GetSubmissionId())
	clock.Advance(gateway.StateSampleInterval)
	if live, dead := gauges(); live != 2 || dead != 0 {
		t.Errorf("after an end and a retry: live %v, dead %v; want 2, 0", live, dead)
	}
}

// waitDelivered waits (bounded) for the outbox workers to deliver id.
func waitDelivered(t *testing.T, env *gatewaytest.Env, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got, err := env.Submissions.GetSubmission(env.Ctx(), &crowdgatev1.GetSubmissionRequest{SubmissionId: id})
		if err == nil && got.GetSubmission().GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("submission %s was not delivered within 10s", id)
}
