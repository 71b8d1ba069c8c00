package submission_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
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
