package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestAnotherTenantsPoolWithTheSameTolokaIDDoesNotAnswerForIt: sandbox and
// production number their pools separately, so tenant A's SANDBOX pool
// may have the Toloka pool id of tenant B's PRODUCTION pool. A's archived
// (or over-budget) pool used to answer every landing on B's open pool:
// 410 "closed", cached for everyone, with A's partner name and A's
// return_url as the Toloker's way back, and B's own StartSession refused.
// A pool that refuses before Toloka is asked answers only when no other
// pool Toloka places the assignment in; a page names no project while
// pools of two projects may hold the id.
func TestAnotherTenantsPoolWithTheSameTolokaIDDoesNotAnswerForIt(t *testing.T) {
	const keyS, keyP = "sbx.0123456789abcdef.k3y", "prd.0123456789abcdef.k3y"
	simS, srvS := tolokasim.NewTestServer(tolokasim.Config{APIKeys: map[string]string{keyS: "a-acct"}, Logger: slog.New(slog.DiscardHandler), RateLimits: tolokasim.UnlimitedRateLimits()})
	t.Cleanup(srvS.Close)
	simP, srvP := tolokasim.NewTestServer(tolokasim.Config{APIKeys: map[string]string{keyP: "b-acct"}, Logger: slog.New(slog.DiscardHandler), RateLimits: tolokasim.UnlimitedRateLimits()})
	t.Cleanup(srvP.Close)
	_ = simS
	r := redistest.New(t)
	cfg, err := Load([]string{"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Redis.URL, cfg.Redis.Prefix = r.URL, r.Prefix
	cfg.Toloka.SandboxURL, cfg.Toloka.ProductionURL = srvS.URL+"/api/v1", srvP.URL+"/api/v1"
	cfg.Access.Auth, cfg.Access.AdminKey = "keys", testAdminKey
	g, _ := startLoggingGateway(t, cfg, slog.New(slog.DiscardHandler), nil)
	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a := &accessGateway{g: g, base: "http://" + g.HTTPAddr(), conn: conn}
	ta, tb := a.newTenant(t, "A"), a.newTenant(t, "B")
	_, secA := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	_, secB := a.newKey(t, tb, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)

	mk := func(secret, tolokaKey string, env crowdgatev1.Environment, partner, ret string) *crowdgatev1.Pool {
		ctx := bearer(secret)
		cred, err := crowdgatev1.NewCredentialServiceClient(conn).CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{DisplayName: "c", Environment: env, ApiKey: tolokaKey})
		if err != nil {
			t.Fatal(err)
		}
		prj, err := crowdgatev1.NewProjectServiceClient(conn).CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{
			CredentialId: cred.GetCredential().GetCredentialId(), PublicName: "Signs", PublicDescription: "Draw boxes",
			PlatformUrl: "https://label.example.com/start", PartnerName: partner, PartnerUrl: "https://label.example.com", ReturnUrl: ret}})
		if err != nil {
			t.Fatal(err)
		}
		pl, err := crowdgatev1.NewPoolServiceClient(conn).CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{
			ProjectId: prj.GetProject().GetProjectId(), PrivateName: "p", WillExpire: timestamppb.New(time.Now().Add(30 * 24 * time.Hour)),
			RewardPerAssignment: "0.05", AssignmentMaxDurationSeconds: 600, Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		return pl.GetPool()
	}
	poolB := mk(secB, keyP, crowdgatev1.Environment_ENVIRONMENT_PRODUCTION, "B Labs", "https://b.example.com/back")
	if _, err := crowdgatev1.NewPoolServiceClient(conn).OpenPool(bearer(secB), &crowdgatev1.OpenPoolRequest{PoolId: poolB.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	poolA := mk(secA, keyS, crowdgatev1.Environment_ENVIRONMENT_SANDBOX, "Evil A", "https://evil-a.example.com/phish")
	if poolA.GetTolokaPoolId() != poolB.GetTolokaPoolId() {
		t.Fatalf("toloka ids differ: %s vs %s", poolA.GetTolokaPoolId(), poolB.GetTolokaPoolId())
	}
	// A archives its own (empty) sandbox pool.
	if _, err := crowdgatev1.NewPoolServiceClient(conn).ArchivePool(bearer(secA), &crowdgatev1.ArchivePoolRequest{PoolId: poolA.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	// B's Toloker lands on B's production pool.
	asg, err := simP.CreateAssignment(poolB.GetTolokaPoolId(), "toloker-b")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := 0; i < 2; i++ {
		resp, err := client.Get(a.base + "/start?assignment_id=" + url.QueryEscape(asg.ID))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("landing %d on B's open pool: %d, want 303 to B's platform", i, resp.StatusCode)
		}
		if strings.Contains(string(body), "evil-a.example.com") || strings.Contains(string(body), "Evil A") {
			t.Errorf("landing %d: B's Toloker is shown A's project and sent back to A's return_url", i)
		}
	}
	_, err = crowdgatev1.NewSessionServiceClient(conn).StartSession(bearer(secB), &crowdgatev1.StartSessionRequest{AssignmentId: asg.ID})
	if err != nil {
		t.Errorf("B's StartSession on its own assignment: %v", err)
	}
}

// TestStartSessionTellsNothingOfAnotherTenantsAssignments: once one of
// B's Tolokers landed on an assignment of B's archived pool, A's
// StartSession with that id answered the landing's cached outcome
// (FAILED_PRECONDITION "archived pool") rather than NOT_FOUND, as for an
// unknown id: another tenant's ids were told apart from unknown ones.
func TestStartSessionTellsNothingOfAnotherTenantsAssignments(t *testing.T) {
	a := startAccessGateway(t, nil)
	ta, tb := a.newTenant(t, "A"), a.newTenant(t, "B")
	_, keyA := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	_, keyB := a.newKey(t, tb, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	_ = buildFlow(t, a, bearer(keyA))
	cred, err := crowdgatev1.NewCredentialServiceClient(a.conn).CreateCredential(bearer(keyB), &crowdgatev1.CreateCredentialRequest{DisplayName: "B", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: testTolokaKey})
	if err != nil {
		t.Fatal(err)
	}
	prj, err := crowdgatev1.NewProjectServiceClient(a.conn).CreateProject(bearer(keyB), &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{
		CredentialId: cred.GetCredential().GetCredentialId(), PublicName: "Signs", PublicDescription: "Draw boxes",
		PlatformUrl: "https://label.example.com/start", PartnerName: "Acme", PartnerUrl: "https://label.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	pools := crowdgatev1.NewPoolServiceClient(a.conn)
	pl, err := pools.CreatePool(bearer(keyB), &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{
		ProjectId: prj.GetProject().GetProjectId(), PrivateName: "p", WillExpire: timestamppb.New(time.Now().Add(30 * 24 * time.Hour)),
		RewardPerAssignment: "0.05", AssignmentMaxDurationSeconds: 600, Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	pb := pl
	if _, err := pools.OpenPool(bearer(keyB), &crowdgatev1.OpenPoolRequest{PoolId: pl.GetPool().GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	asg, err := a.sim.CreateAssignment(pb.GetPool().GetTolokaPoolId(), "toloker-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pools.ClosePool(bearer(keyB), &crowdgatev1.ClosePoolRequest{PoolId: pl.GetPool().GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := pools.ArchivePool(bearer(keyB), &crowdgatev1.ArchivePoolRequest{PoolId: pl.GetPool().GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(a.base + "/start?assignment_id=" + url.QueryEscape(asg.ID))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	t.Logf("B's Toloker's landing: %d", resp.StatusCode)

	sessions := crowdgatev1.NewSessionServiceClient(a.conn)
	unknown := pb.GetPool().GetTolokaPoolId()
	_ = unknown
	_, errUnknown := sessions.StartSession(bearer(keyA), &crowdgatev1.StartSessionRequest{AssignmentId: "00000000ff--000000000000000000000001"})
	_, errB := sessions.StartSession(bearer(keyA), &crowdgatev1.StartSessionRequest{AssignmentId: asg.ID})
	t.Logf("unknown id: %v", errUnknown)
	t.Logf("B's id:     %v", errB)
	if status.Code(errB) != codes.NotFound || status.Code(errUnknown) != status.Code(errB) {
		t.Errorf("A's StartSession tells B's assignment apart: %v vs %v", errB, errUnknown)
	}
}
