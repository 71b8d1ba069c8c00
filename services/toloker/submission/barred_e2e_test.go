package submission_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// After a Toloker's session is revoked, the platform cannot pay them
// through the side door (a submit by pool_id and user_id) until they land
// again with a new assignment; over gRPC and REST.
func TestARevokedTolokerIsNotPaidThroughTheSideDoor(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := env.OpenPool(ctx, key)
	aid := env.StartAssignment(p, "toloker-1")
	start, err := env.Sessions.StartSession(ctx, &crowdgatev1.StartSessionRequest{AssignmentId: aid})
	if err != nil {
		t.Fatal(err)
	}
	sid := start.GetSession().GetSessionId()
	if _, err := env.Sessions.EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: sid, Reason: crowdgatev1.EndReason_END_REASON_REVOKED}); err != nil {
		t.Fatal(err)
	}
	before := len(env.Requests(http.MethodPost, "/api/v1/tasks/external/submit"))

	_, err = env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sid, Reward: "0.05"})
	gatewaytest.WantCode(t, err, codes.InvalidArgument) // the session itself has ended
	_, err = env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-1", Reward: "0.05"})
	st := gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "END_REASON_REVOKED") {
		t.Errorf("refusal %q does not say why", st.Message())
	}
	code, body := env.REST(http.MethodPost, "/v1/submissions", `{"pool_id": "`+p.GetPoolId()+`", "user_id": "toloker-1", "reward": "0.05"}`)
	if code != http.StatusBadRequest {
		t.Errorf("REST side-door submit = %d %v, want 400 (FAILED_PRECONDITION)", code, body)
	}
	if after := len(env.Requests(http.MethodPost, "/api/v1/tasks/external/submit")); after != before {
		t.Errorf("Toloka received %d submits for a revoked Toloker", after-before)
	}
	// Another Toloker of the pool is not barred.
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-2", Reward: "0.05"}); err != nil {
		t.Errorf("another Toloker's submit: %v", err)
	}

	// The revoked assignment ends in Toloka; the Toloker takes a new one and
	// lands again: they may be paid again.
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-1", Reward: "0.05"}); err == nil {
		t.Fatal("accepted before landing again")
	}
	client, err := toloka.New(toloka.Config{SandboxURL: env.SimURL + "/api/v1", ProductionURL: env.SimURL + "/api/v1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	account, err := client.Account(toloka.Credential{Environment: toloka.Sandbox, Token: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := account.SubmitExternal(ctx, &toloka.ExternalSubmit{PoolID: p.GetTolokaPoolId(), UserID: "toloker-1", RetryID: "end-" + aid,
		Reward: money.MustParse("0.01"), CloseSession: toloka.Ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if code, _ := env.RESTRaw(http.MethodGet, "/start?assignment_id="+env.StartAssignment(p, "toloker-1"), ""); code != http.StatusSeeOther {
		t.Fatalf("the new landing = %d, want 303", code)
	}
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-1", Reward: "0.05"}); err != nil {
		t.Errorf("after a new landing: %v, want the submit accepted", err)
	}
}

// TestFlagsThatArriveAfterACloseStillBarTheToloker: a close_session submit
// answered QUEUED ends its session at once (CLOSE_SESSION); Toloka's
// restriction_match came later, with the workers' delivery, and was lost:
// the session had ended, so no bar was written, and the platform could
// still pay the restricted Toloker through the side door. The flags bar
// the Toloker whenever they arrive; the session keeps its first end.
func TestFlagsThatArriveAfterACloseStillBarTheToloker(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.Submission.SyncTimeout = -1 // answered QUEUED; the workers deliver
		c.Submission.PollInterval = 10 * time.Millisecond
	}})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	sess := env.LandSession(ctx, env.StartAssignment(p, "toloker-1"))
	env.Sim.SetUser("toloker-1", tolokasim.UserState{Restricted: true})
	yes := true
	resp, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sess.GetSessionId(), Reward: "0.05",
		RetryId: "r-1", CloseSession: &yes, EndTime: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// The delivery ends the session before it is recorded DELIVERED.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := env.Submissions.GetSubmission(ctx, &crowdgatev1.GetSubmissionRequest{SubmissionId: resp.GetSubmission().GetSubmissionId()})
		if err != nil {
			t.Fatal(err)
		}
		if s := got.GetSubmission(); s.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
			if !s.GetFlags().GetRestrictionMatch() {
				t.Fatalf("delivered without restriction_match: %v", s.GetFlags())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the submit was not delivered")
		}
	}
	env.StartAssignment(p, "toloker-1") // Toloka hands them work again
	_, err = env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-1", Reward: "0.05",
		RetryId: "r-2", EndTime: timestamppb.Now()})
	st := gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "END_REASON_RESTRICTED") {
		t.Errorf("refusal %q does not say the Toloker is restricted", st.Message())
	}
}
