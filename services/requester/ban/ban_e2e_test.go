package ban_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

func start(t *testing.T) *gatewaytest.Env {
	t.Helper()
	return gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
}

// openPoolIn opens another pool in project projectID.
func openPoolIn(env *gatewaytest.Env, ctx context.Context, projectID string) *crowdgatev1.Pool {
	env.T.Helper()
	p := env.MustPool(ctx, gatewaytest.ValidPool(projectID, env.Now()))
	resp, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()})
	if err != nil {
		env.T.Fatalf("OpenPool: %v", err)
	}
	return resp.GetPool()
}

// session reads a session.
func session(env *gatewaytest.Env, ctx context.Context, id string) *crowdgatev1.Session {
	env.T.Helper()
	resp, err := env.Sessions.GetSession(ctx, &crowdgatev1.GetSessionRequest{SessionId: id})
	if err != nil {
		env.T.Fatalf("GetSession: %v", err)
	}
	return resp.GetSession()
}

// TestBanInAProject bans a Toloker in one project: Toloka has the
// restriction; their live session there ends (REVOKED) and the one in
// another project goes on; their next landings in the project get the
// "You cannot take this task" page, without a Toloka call when the
// assignment's session exists or the answer is known, after one (to learn
// who it is) for an assignment Crowdgate never saw; Toloka's next submit
// answer says restriction_match; the ban is stored with who made it and
// audited. Lifting it restores access.
func TestBanInAProject(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	banned := env.OpenPool(ctx, key)                       // project A
	sibling := openPoolIn(env, ctx, banned.GetProjectId()) // project A too
	elsewhere := env.OpenPool(ctx, key)                    // project B, same credential

	inA := env.StartAssignment(banned, "toloker-1")
	sessA := env.LandSession(ctx, inA)
	inB := env.StartAssignment(elsewhere, "toloker-1")
	sessB := env.LandSession(ctx, inB)
	notYet := env.StartAssignment(sibling, "toloker-1") // started in Toloka, never landed
	other := env.StartAssignment(banned, "toloker-2")
	sessOther := env.LandSession(ctx, other)

	created, err := env.Bans.CreateBan(ctx, &crowdgatev1.CreateBanRequest{
		UserId: "toloker-1", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT, ProjectId: banned.GetProjectId(),
		PrivateComment: "Copies answers",
	})
	if err != nil {
		t.Fatalf("CreateBan: %v", err)
	}
	b := created.GetBan()
	if b.GetState() != crowdgatev1.BanState_BAN_STATE_ACTIVE || b.GetSessionsEnded() != 1 || b.GetCreatedBy() == "" ||
		b.GetTolokaRestrictionId() == "" || b.GetWillExpire() != nil || b.GetCredentialId() == "" || b.GetPoolId() != "" {
		t.Errorf("ban = %v, want ACTIVE for ever, 1 session ended, its author and Toloka's id", b)
	}

	// In Toloka: a PROJECT restriction with the comment, for ever.
	puts := env.Requests(http.MethodPut, "/api/v1/user-restrictions")
	if len(puts) != 1 {
		t.Fatalf("%d PUT /user-restrictions, want 1", len(puts))
	}
	var sent map[string]any
	if err := json.Unmarshal(puts[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent["scope"] != "PROJECT" || sent["user_id"] != "toloker-1" || sent["private_comment"] != "Copies answers" || sent["will_expire"] != nil || sent["project_id"] == nil {
		t.Errorf("Toloka was sent %v", sent)
	}

	// Live sessions: the one in project A ended, the others go on.
	if s := session(env, ctx, sessA.GetSessionId()); s.GetEndReason() != crowdgatev1.EndReason_END_REASON_REVOKED {
		t.Errorf("session in the banned project: %v, want ENDED REVOKED", s)
	}
	for _, id := range []string{sessB.GetSessionId(), sessOther.GetSessionId()} {
		if s := session(env, ctx, id); s.GetState() != crowdgatev1.SessionState_SESSION_STATE_ACTIVE {
			t.Errorf("session %s (not in the ban's scope) = %v, want ACTIVE", id, s)
		}
	}

	// Landings in the project are refused; without a Toloka call when the
	// assignment's session names the Toloker.
	asked := env.AssignmentGets(inA)
	l := env.Land(inA)
	if l.Status != http.StatusForbidden || !strings.Contains(l.Body, "You cannot take this task") {
		t.Errorf("landing again with the revoked session's assignment: %d %q, want 403 You cannot take this task", l.Status, l.Body)
	}
	if n := env.AssignmentGets(inA) - asked; n != 0 {
		t.Errorf("that landing asked Toloka %d times, want none", n)
	}
	// An assignment Crowdgate never saw: Toloka alone says whose it is,
	// once; then the refusal is known.
	l = env.Land(notYet)
	if l.Status != http.StatusForbidden || env.AssignmentGets(notYet) != 1 {
		t.Errorf("first landing with a new assignment in the project: %d after %d Toloka calls, want 403 after 1", l.Status, env.AssignmentGets(notYet))
	}
	for range 2 {
		if l := env.Land(notYet); l.Status != http.StatusForbidden {
			t.Errorf("landing again: %d, want 403", l.Status)
		}
	}
	if n := env.AssignmentGets(notYet); n != 1 {
		t.Errorf("repeated landings asked Toloka %d times in all, want 1", n)
	}
	if l := env.Land(inB); l.Status != http.StatusSeeOther {
		t.Errorf("landing in another project: %d, want 303", l.Status)
	}
	// StartSession (a platform's own landing) says so too.
	_, err = env.Sessions.StartSession(ctx, &crowdgatev1.StartSessionRequest{AssignmentId: notYet})
	gatewaytest.WantCode(t, err, codes.PermissionDenied)

	// No submit is taken for them there, by session or by pool and user.
	_, err = env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sessA.GetSessionId(), Reward: "0.05"})
	gatewaytest.WantCode(t, err, codes.InvalidArgument)
	_, err = env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: sibling.GetPoolId(), UserId: "toloker-1", Reward: "0.05"})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	// Toloka itself answers restriction_match for them in the project.
	if res := env.SubmitToToloka(key, banned, "toloker-1", "0.01", false); !res.RestrictionMatch {
		t.Error("Toloka's submit answer for the banned Toloker: restriction_match false")
	}
	if res := env.SubmitToToloka(key, elsewhere, "toloker-1", "0.01", false); res.RestrictionMatch {
		t.Error("Toloka's submit answer in another project: restriction_match true")
	}

	// The registry shows the ban; the audit log has who made it.
	tk, err := env.Tolokers.GetToloker(ctx, &crowdgatev1.GetTolokerRequest{UserId: "toloker-1"})
	if err != nil {
		t.Fatalf("GetToloker: %v", err)
	}
	if rs := tk.GetToloker().GetRestrictions(); len(rs) != 1 || rs[0].GetBanId() != b.GetBanId() || rs[0].GetProjectId() != banned.GetProjectId() {
		t.Errorf("the Toloker's restrictions: %v", rs)
	}
	if s := tk.GetToloker().GetSessions(); s.GetRevoked() != 1 || s.GetLive() != 1 || s.GetStarted() != 2 {
		t.Errorf("the Toloker's sessions: %v, want 2 started, 1 revoked, 1 live", s)
	}
	events, err := env.Access.ListAuditEvents(ctx, &crowdgatev1.ListAuditEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var audited *crowdgatev1.AuditEvent
	for _, e := range events.GetEvents() {
		if e.GetMethod() == crowdgatev1.BanService_CreateBan_FullMethodName {
			audited = e
		}
	}
	if audited == nil || audited.GetActor() != b.GetCreatedBy() || audited.GetResult() != "OK" {
		t.Errorf("audit event of CreateBan: %v, want one by %s", audited, b.GetCreatedBy())
	}

	// The same ban again replaces it (same id); ListBans finds it.
	again, err := env.Bans.CreateBan(ctx, &crowdgatev1.CreateBanRequest{
		UserId: "toloker-1", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT, ProjectId: banned.GetProjectId(),
		PrivateComment: "Copies answers, again", WillExpire: timestamppb.New(env.Now().Add(30 * 24 * time.Hour)),
	})
	if err != nil || again.GetBan().GetBanId() != b.GetBanId() || again.GetBan().GetPrivateComment() != "Copies answers, again" {
		t.Fatalf("the same ban again: %v, %v; want ban %s replaced", again, err, b.GetBanId())
	}
	list, err := env.Bans.ListBans(ctx, &crowdgatev1.ListBansRequest{UserId: "toloker-1", State: crowdgatev1.BanState_BAN_STATE_ACTIVE})
	if err != nil || len(list.GetBans()) != 1 || list.GetBans()[0].GetBanId() != b.GetBanId() {
		t.Fatalf("ListBans: %v, %v", list, err)
	}

	// Lifting the ban restores access (over REST).
	code, body := env.REST(http.MethodDelete, "/v1/bans/"+b.GetBanId(), "")
	if code != http.StatusOK || body["ban"].(map[string]any)["state"] != "BAN_STATE_DELETED" || body["ban"].(map[string]any)["deleted_by"] == "" {
		t.Fatalf("DELETE /v1/bans/%s: %d %v", b.GetBanId(), code, body)
	}
	if n := len(env.Requests(http.MethodDelete, "/api/v1/user-restrictions/")); n != 1 {
		t.Errorf("%d DELETE /user-restrictions, want 1", n)
	}
	if l := env.Land(notYet); l.Status != http.StatusSeeOther {
		t.Errorf("landing after the ban was lifted: %d %q, want 303", l.Status, l.Body)
	}
	if res := env.SubmitToToloka(key, banned, "toloker-1", "0.01", false); res.RestrictionMatch {
		t.Error("Toloka's submit answer after the ban was lifted: restriction_match true")
	}
	if l := env.Land(inA); l.Status != http.StatusGone {
		t.Errorf("the revoked session's assignment after the ban was lifted: %d, want 410 (the session stays ended)", l.Status)
	}
	tk, _ = env.Tolokers.GetToloker(ctx, &crowdgatev1.GetTolokerRequest{UserId: "toloker-1"})
	if rs := tk.GetToloker().GetRestrictions(); len(rs) != 0 {
		t.Errorf("restrictions after the ban was lifted: %v", rs)
	}
	// Lifting it again changes nothing.
	if resp, err := env.Bans.DeleteBan(ctx, &crowdgatev1.DeleteBanRequest{BanId: b.GetBanId()}); err != nil || resp.GetBan().GetState() != crowdgatev1.BanState_BAN_STATE_DELETED {
		t.Errorf("DeleteBan again: %v, %v", resp, err)
	}
	if n := len(env.Requests(http.MethodDelete, "/api/v1/user-restrictions/")); n != 1 {
		t.Errorf("%d DELETE /user-restrictions after lifting twice, want 1", n)
	}
}

// TestBanScopesAndValidation bans in a pool (and for all of a credential's
// projects), and refuses what Toloka would: a missing or wrong target, a
// comment over 499 characters, an expiry in the past; another tenant's
// records are NOT_FOUND.
func TestBanScopesAndValidation(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key, otherKey := env.NewAPIKey("acme"), env.NewAPIKey("globex")
	p := env.OpenPool(ctx, key)
	sibling := openPoolIn(env, ctx, p.GetProjectId())
	theirs := env.OpenPool(gatewaytest.As("globex"), otherKey)
	prj, err := env.Projects.GetProject(ctx, &crowdgatev1.GetProjectRequest{ProjectId: p.GetProjectId()})
	if err != nil {
		t.Fatal(err)
	}
	cred := prj.GetProject().GetCredentialId()

	inPool := env.StartAssignment(sibling, "toloker-1")
	sess := env.LandSession(ctx, inPool)
	resp, err := env.Bans.CreateBan(ctx, &crowdgatev1.CreateBanRequest{UserId: "toloker-1", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL, PoolId: p.GetPoolId()})
	if err != nil || resp.GetBan().GetSessionsEnded() != 0 || resp.GetBan().GetProjectId() != p.GetProjectId() {
		t.Fatalf("pool ban: %v, %v", resp, err)
	}
	if s := session(env, ctx, sess.GetSessionId()); s.GetState() != crowdgatev1.SessionState_SESSION_STATE_ACTIVE {
		t.Errorf("a pool ban ended a session in another pool: %v", s)
	}
	if l := env.Land(env.StartAssignment(p, "toloker-1")); l.Status != http.StatusForbidden {
		t.Errorf("landing in the banned pool: %d, want 403", l.Status)
	}
	// ALL_PROJECTS of the credential, until tomorrow.
	all, err := env.Bans.CreateBan(ctx, &crowdgatev1.CreateBanRequest{UserId: "toloker-1", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_ALL_PROJECTS,
		CredentialId: cred, WillExpire: timestamppb.New(env.Now().Add(24 * time.Hour))})
	if err != nil || all.GetBan().GetSessionsEnded() != 1 {
		t.Fatalf("ban in all projects: %v, %v; want the live session ended", all, err)
	}
	// It expires by the clock: the Toloker may land again.
	env.Clock.Advance(25 * time.Hour)
	got, err := env.Bans.GetBan(ctx, &crowdgatev1.GetBanRequest{BanId: all.GetBan().GetBanId()})
	if err != nil || got.GetBan().GetState() != crowdgatev1.BanState_BAN_STATE_EXPIRED {
		t.Errorf("the ban a day later: %v, %v; want EXPIRED", got, err)
	}
	if l := env.Land(env.StartAssignment(sibling, "toloker-1")); l.Status != http.StatusSeeOther {
		t.Errorf("landing after the ban expired: %d, want 303", l.Status)
	}

	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.CreateBanRequest
		field string
	}{
		{"no user", &crowdgatev1.CreateBanRequest{Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL, PoolId: p.GetPoolId()}, "user_id"},
		{"no scope", &crowdgatev1.CreateBanRequest{UserId: "u", PoolId: p.GetPoolId()}, "scope"},
		{"pool scope without a pool", &crowdgatev1.CreateBanRequest{UserId: "u", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL}, "pool_id"},
		{"project scope with a pool", &crowdgatev1.CreateBanRequest{UserId: "u", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT, ProjectId: p.GetProjectId(), PoolId: p.GetPoolId()}, "pool_id"},
		{"all projects without a credential", &crowdgatev1.CreateBanRequest{UserId: "u", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_ALL_PROJECTS}, "credential_id"},
		{"a long comment", &crowdgatev1.CreateBanRequest{UserId: "u", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL, PoolId: p.GetPoolId(), PrivateComment: strings.Repeat("ж", 500)}, "private_comment"},
		{"an expiry in the past", &crowdgatev1.CreateBanRequest{UserId: "u", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL, PoolId: p.GetPoolId(), WillExpire: timestamppb.New(env.Now().Add(-time.Hour))}, "will_expire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.Bans.CreateBan(ctx, tc.req)
			gatewaytest.WantField(t, err, tc.field)
		})
	}
	_, err = env.Bans.CreateBan(ctx, &crowdgatev1.CreateBanRequest{UserId: "u", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL, PoolId: theirs.GetPoolId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Bans.GetBan(gatewaytest.As("globex"), &crowdgatev1.GetBanRequest{BanId: resp.GetBan().GetBanId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Bans.DeleteBan(gatewaytest.As("globex"), &crowdgatev1.DeleteBanRequest{BanId: resp.GetBan().GetBanId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Bans.ListBans(gatewaytest.As("globex"), &crowdgatev1.ListBansRequest{PoolId: p.GetPoolId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
	if l, err := env.Bans.ListBans(gatewaytest.As("globex"), &crowdgatev1.ListBansRequest{}); err != nil || len(l.GetBans()) != 0 {
		t.Errorf("another tenant's bans: %v, %v; want none", l, err)
	}
	if n := len(env.Requests(http.MethodPut, "/api/v1/user-restrictions")); n != 2 {
		t.Errorf("%d PUT /user-restrictions, want 2 (refused requests reach no Toloka)", n)
	}
	// Over REST, filtered by scope.
	code, body := env.REST(http.MethodGet, "/v1/bans?scope=RESTRICTION_SCOPE_POOL", "")
	if bans, _ := body["bans"].([]any); code != http.StatusOK || len(bans) != 1 {
		t.Errorf("GET /v1/bans?scope=POOL: %d %v", code, body)
	}
}
