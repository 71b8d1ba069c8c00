package registry_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	protobuf "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

const retention = 72 * time.Hour

func start(t *testing.T) *gatewaytest.Env {
	t.Helper()
	return gatewaytest.Start(t, gatewaytest.Options{
		Clock:  fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		Config: func(c *gateway.Config) { c.Tolokers.Retention = retention },
	})
}

func submit(env *gatewaytest.Env, req *crowdgatev1.SubmitRequest) *crowdgatev1.Submission {
	env.T.Helper()
	resp, err := env.Submissions.Submit(env.Ctx(), req)
	if err != nil {
		env.T.Fatalf("Submit %v: %v", req, err)
	}
	return resp.GetSubmission()
}

// TestRegistryKeepsEveryTolokerWhoLanded: the registry records each
// Toloker's first and last landing, the pools and projects they worked in,
// each session and how it ended (closed, ended, revoked, expired), the
// submits Toloka accepted and refused and the reward it accepted, to the
// digit the ledger has; lists them by activity and by pool, paged; keeps
// them past their sessions, for the retention; and isolates tenants.
func TestRegistryKeepsEveryTolokerWhoLanded(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key, otherKey := env.NewAPIKey("acme"), env.NewAPIKey("globex")
	p1 := env.OpenPool(ctx, key)
	p2 := env.OpenPool(ctx, key)
	p3 := env.OpenPool(ctx, key)
	theirs := env.OpenPool(gatewaytest.As("globex"), otherKey)
	firstLanding := env.Now()

	// Four sessions, each ending its own way.
	a1 := env.StartAssignment(p1, "toloker-1")
	s1 := env.LandSession(ctx, a1)
	for i, r := range []string{"0.05", "0.10000001"} {
		if got := submit(env, &crowdgatev1.SubmitRequest{SessionId: s1.GetSessionId(), Reward: r, CloseSession: protobuf.Bool(i == 1)}); got.GetAssignmentId() != a1 {
			t.Errorf("a session's submission names assignment %q, want %s", got.GetAssignmentId(), a1)
		}
	}
	env.Clock.Advance(time.Minute)
	s2 := env.LandSession(ctx, env.StartAssignment(p2, "toloker-1"))
	if _, err := env.Sessions.EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: s2.GetSessionId()}); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(time.Minute)
	s3 := env.LandSession(ctx, env.StartAssignment(p1, "toloker-1"))
	for range 2 { // ending it twice counts it once
		if _, err := env.Sessions.EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: s3.GetSessionId(), Reason: crowdgatev1.EndReason_END_REASON_REVOKED}); err != nil {
			t.Fatal(err)
		}
	}
	env.Clock.Advance(time.Minute)
	lastLanding := env.Now()
	a4 := env.StartAssignment(p3, "toloker-1")
	env.LandSession(ctx, a4)
	// A warm landing, a repeat click, writes nothing to Redis.
	before := snapshot(t, env)
	if l := env.Land(a4); l.Status != http.StatusSeeOther {
		t.Fatalf("repeat landing: %d", l.Status)
	}
	after := snapshot(t, env)
	// Rate-limit windows expire in real time (a second or so) between the
	// two snapshots: a key gone since is not a write. Anything new or
	// changed is.
	for k := range before.expiring {
		if _, ok := after.values[k]; !ok {
			delete(before.values, k)
		}
	}
	if diff := cmp.Diff(before.values, after.values); diff != "" {
		t.Errorf("a warm landing changed Redis (-before +after):\n%s", diff)
	}
	// The record is kept for the retention after the last activity.
	if ttl := env.Redis.Client.PTTL(context.Background(), env.Redis.Prefix+"tolk:{tolk:default}:u:toloker-1").Val(); ttl <= retention-time.Hour || ttl > retention {
		t.Errorf("the Toloker's record lives %v, want the retention %v", ttl, retention)
	}

	env.Clock.Advance(30 * time.Minute) // the last session expires
	// A submit by pool and user with no live session names no assignment;
	// Toloka refuses it (the assignment expired): DEAD.
	dead := submit(env, &crowdgatev1.SubmitRequest{PoolId: p3.GetPoolId(), UserId: "toloker-1", Reward: "0.07"})
	if dead.GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD || dead.GetAssignmentId() != "" {
		t.Errorf("pool+user submit without a session: %v, want DEAD, no assignment", dead)
	}

	// Another Toloker, with a live session: a submit by pool and user
	// belongs to that session's assignment.
	env.Clock.Advance(time.Minute)
	a5 := env.StartAssignment(p1, "toloker-2")
	env.LandSession(ctx, a5)
	if got := submit(env, &crowdgatev1.SubmitRequest{PoolId: p1.GetPoolId(), UserId: "toloker-2", Reward: "1.5"}); got.GetAssignmentId() != a5 ||
		got.GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
		t.Errorf("pool+user submit with a live session: %v, want DELIVERED for assignment %s", got, a5)
	}
	// Another tenant's Toloker of the same name is another Toloker.
	env.LandSession(gatewaytest.As("globex"), env.StartAssignment(theirs, "toloker-1"))

	got, err := env.Tolokers.GetToloker(ctx, &crowdgatev1.GetTolokerRequest{UserId: "toloker-1"})
	if err != nil {
		t.Fatalf("GetToloker: %v", err)
	}
	tk := got.GetToloker()
	want := &crowdgatev1.Toloker{
		UserId: "toloker-1", TenantId: "default",
		FirstLandingTime: timestamppb.New(firstLanding), LastLandingTime: timestamppb.New(lastLanding),
		LastActivityTime: timestamppb.New(lastLanding), ExpireTime: timestamppb.New(lastLanding.Add(retention)),
		ProjectIds: []string{p3.GetProjectId(), p1.GetProjectId(), p2.GetProjectId()}, PoolIds: []string{p3.GetPoolId(), p1.GetPoolId(), p2.GetPoolId()},
		Sessions:             &crowdgatev1.TolokerSessions{Started: 4, Closed: 1, Ended: 1, Revoked: 1, Expired: 1},
		SubmissionsDelivered: 2, SubmissionsDead: 1, RewardDelivered: "0.15000001",
	}
	if diff := cmp.Diff(want, tk, protocmp.Transform()); diff != "" {
		t.Errorf("toloker-1 (-want +got):\n%s", diff)
	}
	// To the digit what Toloka paid.
	if ledger := env.Sim.Ledger(tolokasim.LedgerFilter{Account: "acme", UserID: "toloker-1"}); ledger.RewardTotal.String() != tk.GetRewardDelivered() {
		t.Errorf("the registry says %s delivered, the emulator's ledger %s", tk.GetRewardDelivered(), ledger.RewardTotal)
	}
	other, err := env.Tolokers.GetToloker(gatewaytest.As("globex"), &crowdgatev1.GetTolokerRequest{UserId: "toloker-1"})
	if err != nil || other.GetToloker().GetSessions().GetStarted() != 1 || other.GetToloker().GetRewardDelivered() != "0.00" {
		t.Errorf("globex's toloker-1: %v, %v; want their own: 1 session, nothing paid", other, err)
	}
	_, err = env.Tolokers.GetToloker(gatewaytest.As("globex"), &crowdgatev1.GetTolokerRequest{UserId: "toloker-2"})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Tolokers.ListTolokers(gatewaytest.As("globex"), &crowdgatev1.ListTolokersRequest{PoolId: p1.GetPoolId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Tolokers.GetToloker(ctx, &crowdgatev1.GetTolokerRequest{})
	gatewaytest.WantField(t, err, "user_id")

	// Lists: most recently active first; by pool; by activity time; paged.
	users := func(req *crowdgatev1.ListTolokersRequest) []string {
		t.Helper()
		resp, err := env.Tolokers.ListTolokers(ctx, req)
		if err != nil {
			t.Fatalf("ListTolokers %v: %v", req, err)
		}
		var out []string
		for _, tk := range resp.GetTolokers() {
			out = append(out, tk.GetUserId())
		}
		return out
	}
	for _, tc := range []struct {
		name string
		req  *crowdgatev1.ListTolokersRequest
		want []string
	}{
		{"all", &crowdgatev1.ListTolokersRequest{}, []string{"toloker-2", "toloker-1"}},
		{"in pool 2", &crowdgatev1.ListTolokersRequest{PoolId: p2.GetPoolId()}, []string{"toloker-1"}},
		{"in pool 1", &crowdgatev1.ListTolokersRequest{PoolId: p1.GetPoolId()}, []string{"toloker-2", "toloker-1"}},
		{"active since the last landing", &crowdgatev1.ListTolokersRequest{ActiveTimeFrom: timestamppb.New(lastLanding.Add(time.Second))}, []string{"toloker-2"}},
		{"active before it", &crowdgatev1.ListTolokersRequest{ActiveTimeTo: timestamppb.New(lastLanding.Add(time.Second))}, []string{"toloker-1"}},
	} {
		if diff := cmp.Diff(tc.want, users(tc.req)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	page, err := env.Tolokers.ListTolokers(ctx, &crowdgatev1.ListTolokersRequest{PageSize: 1})
	if err != nil || len(page.GetTolokers()) != 1 || page.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	next, err := env.Tolokers.ListTolokers(ctx, &crowdgatev1.ListTolokersRequest{PageSize: 1, PageToken: page.GetNextPageToken()})
	if err != nil || len(next.GetTolokers()) != 1 || next.GetTolokers()[0].GetUserId() != "toloker-1" || next.GetNextPageToken() != "" {
		t.Fatalf("second page: %v, %v", next, err)
	}
	_, err = env.Tolokers.ListTolokers(ctx, &crowdgatev1.ListTolokersRequest{PoolId: p1.GetPoolId(), PageToken: page.GetNextPageToken()})
	gatewaytest.WantField(t, err, "page_token")
	code, body := env.REST(http.MethodGet, "/v1/tolokers/toloker-2", "")
	if code != http.StatusOK || body["toloker"].(map[string]any)["reward_delivered"] != "1.50" {
		t.Errorf("GET /v1/tolokers/toloker-2: %d %v", code, body)
	}

	// Kept beyond the sessions, until the retention passes without activity.
	env.Clock.Advance(retention - 2*time.Hour)
	if _, err := env.Tolokers.GetToloker(ctx, &crowdgatev1.GetTolokerRequest{UserId: "toloker-1"}); err != nil {
		t.Errorf("toloker-1 within the retention: %v", err)
	}
	env.Clock.Advance(2 * time.Hour)
	_, err = env.Tolokers.GetToloker(ctx, &crowdgatev1.GetTolokerRequest{UserId: "toloker-1"})
	gatewaytest.WantCode(t, err, codes.NotFound)
	if got := users(&crowdgatev1.ListTolokersRequest{}); len(got) != 0 {
		t.Errorf("after the retention the registry lists %v", got)
	}
}

// snapshot reads every key of the environment's Redis (values, not TTLs).
// redisSnapshot is every key under the test's prefix with its value, and
// the keys that expire within a few seconds.
type redisSnapshot struct {
	values   map[string]string
	expiring map[string]bool
}

func snapshot(t *testing.T, env *gatewaytest.Env) redisSnapshot {
	t.Helper()
	ctx := context.Background()
	rdb := env.Redis.Client
	out := redisSnapshot{values: map[string]string{}, expiring: map[string]bool{}}
	iter := rdb.Scan(ctx, 0, env.Redis.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		name := strings.TrimPrefix(k, env.Redis.Prefix)
		if ttl := rdb.PTTL(ctx, k).Val(); ttl >= 0 && ttl < 10*time.Second {
			out.expiring[name] = true
		}
		var v any
		switch rdb.Type(ctx, k).Val() {
		case "none":
			continue // expired since SCAN listed it
		case "string":
			v = rdb.Get(ctx, k).Val()
		case "hash":
			v = rdb.HGetAll(ctx, k).Val()
		case "zset":
			v = rdb.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "set":
			m := rdb.SMembers(ctx, k).Val()
			sort.Strings(m)
			v = m
		case "stream":
			v = rdb.XLen(ctx, k).Val()
		case "list":
			v = rdb.LRange(ctx, k, 0, -1).Val()
		}
		out.values[name] = fmt.Sprint(v)
	}
	return out
}

// TestPoolsWorkedInLongerAgoThanTheRetentionAreForgotten: a Toloker who
// keeps landing is kept, but a pool and project they last worked in longer
// ago than the retention leave their record at their next landing.
func TestPoolsWorkedInLongerAgoThanTheRetentionAreForgotten(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	old, kept, latest := env.OpenPool(ctx, key), env.OpenPool(ctx, key), env.OpenPool(ctx, key)
	env.LandSession(ctx, env.StartAssignment(old, "toloker-7"))
	env.Clock.Advance(retention - time.Hour)
	env.LandSession(ctx, env.StartAssignment(kept, "toloker-7"))
	env.Clock.Advance(2 * time.Hour)
	env.LandSession(ctx, env.StartAssignment(latest, "toloker-7"))

	got, err := env.Tolokers.GetToloker(ctx, &crowdgatev1.GetTolokerRequest{UserId: "toloker-7"})
	if err != nil {
		t.Fatalf("GetToloker: %v", err)
	}
	want := &crowdgatev1.Toloker{
		ProjectIds: []string{latest.GetProjectId(), kept.GetProjectId()},
		PoolIds:    []string{latest.GetPoolId(), kept.GetPoolId()},
		Sessions:   &crowdgatev1.TolokerSessions{Started: 3, Live: 1, Expired: 2},
	}
	if diff := cmp.Diff(want, got.GetToloker(), protocmp.Transform(),
		protocmp.IgnoreFields(&crowdgatev1.Toloker{}, "user_id", "tenant_id", "first_landing_time", "last_landing_time", "last_activity_time", "expire_time", "reward_delivered")); diff != "" {
		t.Errorf("toloker-7 (-want +got):\n%s", diff)
	}
}
