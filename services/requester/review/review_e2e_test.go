package review_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

// start serves the gateway in front of the emulator on a fake clock, so
// waiting for Toloka's operations takes no real time.
func start(t *testing.T) *gatewaytest.Env {
	t.Helper()
	return gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
}

// submitSession reports the Toloker's last task, as the platform does: the
// assignment becomes SUBMITTED, awaiting review. It calls the emulator with
// a Toloka client of its own, logging to env.Logs (where leak checks look).
func submitSession(env *gatewaytest.Env, key string, p *crowdgatev1.Pool, userID string) {
	env.T.Helper()
	client, err := toloka.New(toloka.Config{
		ProductionURL: env.SimURL + "/api/v1",
		SandboxURL:    env.SimURL + "/api/v1",
		Logger:        slog.New(slog.NewJSONHandler(env.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:           env.Clock.Now,
		Sleep:         env.Clock.Sleep,
	})
	if err != nil {
		env.T.Fatal(err)
	}
	account, err := client.Account(toloka.Credential{Environment: toloka.Sandbox, Token: key})
	if err != nil {
		env.T.Fatal(err)
	}
	_, err = account.SubmitExternal(context.Background(), &toloka.ExternalSubmit{
		PoolID: p.GetTolokaPoolId(), UserID: userID, RetryID: "r-" + userID, Reward: money.MustParse("0.05"), CloseSession: toloka.Ptr(true),
	})
	if err != nil {
		env.T.Fatalf("SubmitExternal: %v", err)
	}
}

// TestReviewFollowsTolokasTransitions accepts and rejects only submitted
// work, requires a rejection comment, lets a rejection be turned into an
// acceptance but nothing after that, sends Toloka exactly those PATCHes,
// and does the same over REST.
func TestReviewFollowsTolokasTransitions(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	p := env.OpenPool(env.Ctx(), key)
	id := env.StartAssignment(p, "toloker-1")

	got, err := env.Reviews.GetAssignment(env.Ctx(), &crowdgatev1.GetAssignmentRequest{AssignmentId: id})
	if err != nil {
		t.Fatalf("GetAssignment: %v", err)
	}
	if a := got.GetAssignment(); a.GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACTIVE || a.GetPoolId() != p.GetPoolId() ||
		a.GetUserId() != "toloker-1" || a.GetCreateTime() == nil {
		t.Errorf("GetAssignment = %v", a)
	}

	// Work still in progress is neither accepted nor rejected.
	_, err = env.Reviews.AcceptAssignment(env.Ctx(), &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	_, err = env.Reviews.RejectAssignment(env.Ctx(), &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "no"})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)

	submitSession(env, key, p, "toloker-1")

	// A rejection needs a comment of at most 2048 characters.
	_, err = env.Reviews.RejectAssignment(env.Ctx(), &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "  "})
	gatewaytest.WantField(t, err, "public_comment")
	_, err = env.Reviews.RejectAssignment(env.Ctx(), &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: strings.Repeat("ж", 2049)})
	gatewaytest.WantField(t, err, "public_comment")
	_, err = env.Reviews.AcceptAssignment(env.Ctx(), &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id, PublicComment: strings.Repeat("ж", 2049)})
	gatewaytest.WantField(t, err, "public_comment")

	rejected, err := env.Reviews.RejectAssignment(env.Ctx(), &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "Boxes are missing"})
	if err != nil {
		t.Fatalf("RejectAssignment: %v", err)
	}
	if a := rejected.GetAssignment(); a.GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_REJECTED ||
		a.GetPublicComment() != "Boxes are missing" || a.GetRejectTime() == nil || a.GetSubmitTime() == nil || a.GetReward() != "0.05" {
		t.Errorf("rejected = %v", a)
	}
	_, err = env.Reviews.RejectAssignment(env.Ctx(), &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "again"})
	st := gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "REJECTED") {
		t.Errorf("refusal %q does not say the assignment is REJECTED", st.Message())
	}

	// Seed 000: a rejected job can be accepted later.
	accepted, err := env.Reviews.AcceptAssignment(env.Ctx(), &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id, PublicComment: "Fixed, thanks"})
	if err != nil {
		t.Fatalf("AcceptAssignment after rejection: %v", err)
	}
	if a := accepted.GetAssignment(); a.GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED || a.GetAcceptTime() == nil {
		t.Errorf("accepted = %v", a)
	}
	_, err = env.Reviews.AcceptAssignment(env.Ctx(), &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	_, err = env.Reviews.RejectAssignment(env.Ctx(), &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "changed my mind"})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)

	var patches []any
	for _, r := range env.Requests(http.MethodPatch, "/api/v1/assignments/"+id) {
		patches = append(patches, gatewaytest.DecodeJSON(t, r.Body))
	}
	want := []any{
		gatewaytest.DecodeJSON(t, []byte(`{"status": "REJECTED", "public_comment": "Boxes are missing"}`)),
		gatewaytest.DecodeJSON(t, []byte(`{"status": "ACCEPTED", "public_comment": "Fixed, thanks"}`)),
	}
	if diff := cmp.Diff(want, patches); diff != "" {
		t.Errorf("PATCHes sent to Toloka (-want +got):\n%s", diff)
	}

	// Over REST.
	id2 := env.StartAssignment(p, "toloker-2")
	submitSession(env, key, p, "toloker-2")
	code, body := env.REST(http.MethodGet, "/v1/assignments/"+id2, "")
	if code != http.StatusOK || body["assignment"].(map[string]any)["status"] != "ASSIGNMENT_STATUS_SUBMITTED" {
		t.Fatalf("REST get = %d %v", code, body)
	}
	code, body = env.REST(http.MethodPost, "/v1/assignments/"+id2+"/reject", `{}`)
	if code != http.StatusBadRequest {
		t.Errorf("REST reject without comment = %d %v, want 400", code, body)
	}
	code, body = env.REST(http.MethodPost, "/v1/assignments/"+id2+"/accept", `{"public_comment": "Great"}`)
	if code != http.StatusOK || body["assignment"].(map[string]any)["status"] != "ASSIGNMENT_STATUS_ACCEPTED" {
		t.Fatalf("REST accept = %d %v", code, body)
	}
	code, body = env.REST(http.MethodPost, "/v1/assignments/"+id2+"/reject", `{"public_comment": "late"}`)
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "ACCEPTED") {
		t.Errorf("REST reject of accepted work = %d %v, want 400 FAILED_PRECONDITION", code, body)
	}

	// Each decision Toloka made is one event, with the comment; refusals
	// are none. Read over REST, as a partner dashboard would.
	code, body = env.REST(http.MethodGet, "/v1/events?types=assignment.*", "")
	if code != http.StatusOK {
		t.Fatalf("REST ListEvents = %d %v", code, body)
	}
	var story []string
	for _, e := range body["events"].([]any) {
		ev := e.(map[string]any)
		a := ev["assignment"].(map[string]any)
		story = append(story, fmt.Sprintf("%s %s %s %v", ev["type"], ev["resource"], a["status"], a["public_comment"]))
	}
	wantEvents := []string{
		"assignment.rejected assignments/" + id + " ASSIGNMENT_STATUS_REJECTED Boxes are missing",
		"assignment.accepted assignments/" + id + " ASSIGNMENT_STATUS_ACCEPTED Fixed, thanks",
		"assignment.accepted assignments/" + id2 + " ASSIGNMENT_STATUS_ACCEPTED Great",
	}
	if diff := cmp.Diff(wantEvents, story); diff != "" {
		t.Errorf("assignment events (-want +got):\n%s", diff)
	}
}

// TestReviewOnlySeesTheTenantsOwnPools answers NOT_FOUND for an assignment
// of another tenant's pool or of a pool Crowdgate does not know, whatever
// the call, INVALID_ARGUMENT for a malformed id, and NOT_FOUND (from
// Toloka) for an unknown assignment of a known pool.
func TestReviewOnlySeesTheTenantsOwnPools(t *testing.T) {
	env := start(t)
	key, otherKey := env.NewAPIKey("acme"), env.NewAPIKey("globex")
	t.Cleanup(func() { env.AssertNotLeaked(key, otherKey) })
	mine := env.OpenPool(env.Ctx(), key)
	theirs := env.OpenPool(gatewaytest.As("globex"), otherKey)
	myAssignment := env.StartAssignment(mine, "toloker-1")
	theirAssignment := env.StartAssignment(theirs, "toloker-1")

	if _, err := env.Reviews.GetAssignment(gatewaytest.As("globex"), &crowdgatev1.GetAssignmentRequest{AssignmentId: theirAssignment}); err != nil {
		t.Fatalf("globex reading its own assignment: %v", err)
	}
	for _, tc := range []struct {
		name, tenant, id string
	}{
		{"another tenant's assignment", "default", theirAssignment},
		{"mine, asked by another tenant", "globex", myAssignment},
		{"a pool Crowdgate does not know", "default", "00000fffff--000000000000000000000001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.Reviews.GetAssignment(gatewaytest.As(tc.tenant), &crowdgatev1.GetAssignmentRequest{AssignmentId: tc.id})
			gatewaytest.WantCode(t, err, codes.NotFound)
			_, err = env.Reviews.AcceptAssignment(gatewaytest.As(tc.tenant), &crowdgatev1.AcceptAssignmentRequest{AssignmentId: tc.id})
			gatewaytest.WantCode(t, err, codes.NotFound)
			_, err = env.Reviews.RejectAssignment(gatewaytest.As(tc.tenant), &crowdgatev1.RejectAssignmentRequest{AssignmentId: tc.id, PublicComment: "x"})
			gatewaytest.WantCode(t, err, codes.NotFound)
		})
	}
	for _, bad := range []string{"", "42", "xyz--abc", "--00ff", "00ff--"} {
		_, err := env.Reviews.GetAssignment(env.Ctx(), &crowdgatev1.GetAssignmentRequest{AssignmentId: bad})
		gatewaytest.WantField(t, err, "assignment_id")
	}
	// An unknown assignment of a known pool is NOT_FOUND, from Toloka.
	unknown := myAssignment[:strings.Index(myAssignment, "--")] + "--00000000000000000000dead"
	_, err := env.Reviews.GetAssignment(env.Ctx(), &crowdgatev1.GetAssignmentRequest{AssignmentId: unknown})
	gatewaytest.WantCode(t, err, codes.NotFound)
}

// TestADecisionWhoseAnswerWasLostHasItsEvent: Toloka takes an accept but
// its answer comes after the caller gave up; the caller sends the accept
// again and is told the assignment is ACCEPTED already. No
// assignment.accepted event was ever recorded. The decision found made is
// recorded then, once.
func TestADecisionWhoseAnswerWasLostHasItsEvent(t *testing.T) {
	hold := make(chan struct{})
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Now().UTC()), SimHandler: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/api/v1/assignments/") {
				h.ServeHTTP(httptest.NewRecorder(), r) // Toloka takes the decision...
				select {                               // ...and its answer is lost
				case <-r.Context().Done():
				case <-hold:
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	defer close(hold)
	key := env.NewAPIKey("acme")
	p := env.OpenPool(env.Ctx(), key)
	id := env.StartAssignment(p, "toloker-1")
	submitSession(env, key, p, "toloker-1")
	ctx, cancel := context.WithTimeout(env.Ctx(), 500*time.Millisecond)
	_, err := env.Reviews.AcceptAssignment(ctx, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id})
	cancel()
	if err == nil {
		t.Fatal("the first accept was answered; the test needs its answer lost")
	}
	_, err = env.Reviews.AcceptAssignment(env.Ctx(), &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition) // accepted already
	for range 2 {                                          // sent yet again: still one event
		_, _ = env.Reviews.AcceptAssignment(env.Ctx(), &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id})
	}
	resp, err := env.Events.ListEvents(env.Ctx(), &crowdgatev1.ListEventsRequest{Types: []string{"assignment.accepted"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetEvents()); n != 1 {
		t.Fatalf("%d assignment.accepted events, want 1 (Toloka accepted the assignment)", n)
	}
	if a := resp.GetEvents()[0].GetAssignment(); a.GetAssignmentId() != id || a.GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED {
		t.Errorf("the event's assignment: %v", a)
	}
}
