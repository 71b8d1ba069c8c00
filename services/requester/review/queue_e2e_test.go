package review_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// reviewPool opens a pool whose work waits for review (no auto-accept) for
// periodDays, for the tenant of ctx.
func reviewPool(env *gatewaytest.Env, ctx context.Context, key string, periodDays int32) *crowdgatev1.Pool {
	env.T.Helper()
	prj := gatewaytest.MinimalProject(env.MustCredential(ctx, key))
	p := gatewaytest.ValidPool(env.MustProject(ctx, prj).GetProjectId(), env.Now())
	p.AutoAcceptSolutions = proto.Bool(false)
	p.AutoAcceptPeriodDay = proto.Int32(periodDays)
	p = env.MustPool(ctx, p)
	resp, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()})
	if err != nil {
		env.T.Fatalf("OpenPool: %v", err)
	}
	return resp.GetPool()
}

// work is a Toloker's whole stay: they click Start, land, and the platform
// submits rewards through Crowdgate, the last with close_session, so the
// assignment becomes SUBMITTED in Toloka. It returns the assignment id and
// the session.
func work(env *gatewaytest.Env, ctx context.Context, p *crowdgatev1.Pool, userID string, rewards ...string) (string, *crowdgatev1.Session) {
	env.T.Helper()
	aid := env.StartAssignment(p, userID)
	sess := env.LandSession(ctx, aid)
	for i, r := range rewards {
		resp, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{
			SessionId: sess.GetSessionId(), Reward: r, CloseSession: proto.Bool(i == len(rewards)-1),
		})
		if err != nil {
			env.T.Fatalf("Submit for %s: %v", userID, err)
		}
		if got := resp.GetSubmission(); got.GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED || got.GetAssignmentId() != aid {
			env.T.Fatalf("submission %v: want DELIVERED, of assignment %s", got, aid)
		}
	}
	return aid, sess
}

// TestReviewQueueAndBatchReview walks seed 000's review: three Tolokers
// submit; the queue lists their three SUBMITTED assignments with the review
// deadline and what Crowdgate knows (session, submissions, totals); a batch
// accepts two (a foreign id in the batch is refused alone) and another
// rejects one with a comment; the rejected one is accepted later. Over gRPC
// and REST.
func TestReviewQueueAndBatchReview(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key, otherKey := env.NewAPIKey("acme"), env.NewAPIKey("globex")
	t.Cleanup(func() { env.AssertNotLeaked(key, otherKey) })
	p := reviewPool(env, ctx, key, 7)
	theirs := env.OpenPool(gatewaytest.As("globex"), otherKey)
	foreign := env.StartAssignment(theirs, "toloker-9")
	mine2 := env.OpenPool(ctx, key) // another pool of the same tenant
	otherPoolsAssignment := env.StartAssignment(mine2, "toloker-8")

	a1, s1 := work(env, ctx, p, "toloker-1", "0.05", "0.10")
	env.Clock.Advance(time.Minute)
	a2, _ := work(env, ctx, p, "toloker-2", "0.333")
	env.Clock.Advance(time.Minute)
	a3, _ := work(env, ctx, p, "toloker-3", "1")
	// Still in progress: not in the queue of SUBMITTED work.
	env.StartAssignment(p, "toloker-4")

	queue, err := env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId()})
	if err != nil {
		t.Fatalf("ListAssignments: %v", err)
	}
	if len(queue.GetAssignments()) != 3 || queue.GetNextPageToken() != "" {
		t.Fatalf("queue = %v, want the 3 SUBMITTED assignments on one page", queue)
	}
	want := map[string]struct{ user, total string }{a1: {"toloker-1", "0.15"}, a2: {"toloker-2", "0.333"}, a3: {"toloker-3", "1.00"}}
	for i, q := range queue.GetAssignments() {
		a := q.GetAssignment()
		w, ok := want[a.GetAssignmentId()]
		if !ok || a.GetAssignmentId() != []string{a1, a2, a3}[i] {
			t.Fatalf("queue entry %d is %s, want %s (Toloka's id order)", i, a.GetAssignmentId(), []string{a1, a2, a3}[i])
		}
		if a.GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_SUBMITTED || a.GetUserId() != w.user || a.GetPoolId() != p.GetPoolId() {
			t.Errorf("%s = %v", a.GetAssignmentId(), a)
		}
		if a.GetReward() == "" || a.GetSubmitTime() == nil {
			t.Errorf("%s has no reward or submit time: %v", a.GetAssignmentId(), a)
		}
		if got, want := a.GetReviewDeadline().AsTime(), a.GetSubmitTime().AsTime().Add(7*24*time.Hour); !got.Equal(want) {
			t.Errorf("%s review deadline %v, want submit time + 7 days = %v", a.GetAssignmentId(), got, want)
		}
		if q.GetRewardTotal() != w.total || q.GetRewardDelivered() != w.total || q.GetSessionId() == "" || q.GetSession().GetUserId() != w.user {
			t.Errorf("%s: Crowdgate's view %v, want total and delivered %s, its session", a.GetAssignmentId(), q, w.total)
		}
		for _, sub := range q.GetSubmissions() {
			if sub.GetAssignmentId() != a.GetAssignmentId() || sub.GetSessionId() != q.GetSessionId() {
				t.Errorf("%s lists submission %v", a.GetAssignmentId(), sub)
			}
		}
	}
	if q := queue.GetAssignments()[0]; q.GetSubmissionsCount() != 2 || len(q.GetSubmissions()) != 2 || q.GetSessionId() != s1.GetSessionId() {
		t.Errorf("toloker-1's entry: %d submissions (%d listed) in session %s, want 2 in %s", q.GetSubmissionsCount(), len(q.GetSubmissions()), q.GetSessionId(), s1.GetSessionId())
	}

	// Toloka's own paging, behind an opaque token bound to the filters.
	first, err := env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId(), PageSize: 2})
	if err != nil || len(first.GetAssignments()) != 2 || first.GetNextPageToken() == "" {
		t.Fatalf("first page of 2: %v, %v", first, err)
	}
	second, err := env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId(), PageSize: 2, PageToken: first.GetNextPageToken()})
	if err != nil || len(second.GetAssignments()) != 1 || second.GetAssignments()[0].GetAssignment().GetAssignmentId() != a3 || second.GetNextPageToken() != "" {
		t.Fatalf("second page: %v, %v", second, err)
	}
	lists := env.Requests(http.MethodGet, "/api/v1/assignments")
	if q := lists[len(lists)-1].Query; !strings.Contains(q, "sort=id") || !strings.Contains(q, "id_gt="+first.GetAssignments()[1].GetAssignment().GetAssignmentId()) {
		t.Errorf("the second page asked Toloka %q, want sort=id and id_gt=<the first page's last id>", q)
	}
	_, err = env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId(), PageToken: first.GetNextPageToken(),
		Statuses: []crowdgatev1.AssignmentStatus{crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED}})
	gatewaytest.WantField(t, err, "page_token")

	// A batch accepts two; the foreign id (another tenant's) and an
	// assignment of another pool are refused alone.
	accepted, err := env.Reviews.BatchAcceptAssignments(ctx, &crowdgatev1.BatchAcceptAssignmentsRequest{
		PoolId: p.GetPoolId(), AssignmentIds: []string{a1, foreign, a2, otherPoolsAssignment}, PublicComment: "Thanks",
	})
	if err != nil {
		t.Fatalf("BatchAcceptAssignments: %v", err)
	}
	results := accepted.GetResults()
	if len(results) != 4 {
		t.Fatalf("results %v, want one per id", results)
	}
	for i, id := range []string{a1, a2} {
		r := results[i*2]
		if r.GetAssignmentId() != id || r.GetError() != nil || r.GetAssignment().GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED ||
			r.GetAssignment().GetPublicComment() != "Thanks" {
			t.Errorf("result for %s: %v, want ACCEPTED with the comment", id, r)
		}
	}
	for _, r := range []*crowdgatev1.ReviewResult{results[1], results[3]} {
		if r.GetAssignment() != nil || r.GetError().GetCode() != "NOT_FOUND" {
			t.Errorf("result for %s: %v, want NOT_FOUND alone", r.GetAssignmentId(), r)
		}
	}
	if a, _ := env.Sim.GetAssignment(foreign); a.Status != tolokasim.AssignmentActive {
		t.Errorf("the foreign assignment is %s in Toloka", a.Status)
	}
	// Rejecting needs a comment; then rejects.
	_, err = env.Reviews.BatchRejectAssignments(ctx, &crowdgatev1.BatchRejectAssignmentsRequest{PoolId: p.GetPoolId(), AssignmentIds: []string{a3}})
	gatewaytest.WantField(t, err, "public_comment")
	rejected, err := env.Reviews.BatchRejectAssignments(ctx, &crowdgatev1.BatchRejectAssignmentsRequest{
		PoolId: p.GetPoolId(), AssignmentIds: []string{a3, a1}, PublicComment: "Boxes are missing",
	})
	if err != nil {
		t.Fatalf("BatchRejectAssignments: %v", err)
	}
	if r := rejected.GetResults()[0]; r.GetAssignment().GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_REJECTED ||
		r.GetAssignment().GetPublicComment() != "Boxes are missing" {
		t.Errorf("reject %s: %v", a3, r)
	}
	if r := rejected.GetResults()[1]; r.GetError().GetCode() != "FAILED_PRECONDITION" || !strings.Contains(r.GetError().GetMessage(), "ACCEPTED") {
		t.Errorf("rejecting the accepted %s: %v, want FAILED_PRECONDITION saying it is ACCEPTED", a1, r)
	}

	// Nothing waits for review now; the decided work is listed by status.
	queue, err = env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId()})
	if err != nil || len(queue.GetAssignments()) != 0 {
		t.Errorf("queue after review: %v, %v; want empty", queue, err)
	}
	decided, err := env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId(), Statuses: []crowdgatev1.AssignmentStatus{
		crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_REJECTED, crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED,
	}})
	if err != nil || len(decided.GetAssignments()) != 3 {
		t.Fatalf("ACCEPTED and REJECTED: %v, %v", decided, err)
	}

	// Seed 000: the rejected job is accepted later (over REST, as a batch).
	code, body := env.REST(http.MethodPost, "/v1/pools/"+p.GetPoolId()+"/assignments:batchAccept",
		`{"assignment_ids": ["`+a3+`"], "public_comment": "Fixed, thanks"}`)
	res := body["results"].([]any)[0].(map[string]any)
	if code != http.StatusOK || res["assignment"].(map[string]any)["status"] != "ASSIGNMENT_STATUS_ACCEPTED" {
		t.Fatalf("REST batchAccept of the rejected one: %d %v", code, body)
	}
	code, body = env.REST(http.MethodGet, "/v1/pools/"+p.GetPoolId()+"/assignments?statuses=ASSIGNMENT_STATUS_ACCEPTED&user_id=toloker-3", "")
	items, _ := body["assignments"].([]any)
	if code != http.StatusOK || len(items) != 1 {
		t.Fatalf("REST queue of toloker-3's ACCEPTED work: %d %v", code, body)
	}
	b, _ := json.Marshal(items[0])
	if !strings.Contains(string(b), `"review_deadline"`) || !strings.Contains(string(b), `"reward_total":"1.00"`) {
		t.Errorf("REST entry %s lacks the deadline or the totals", b)
	}

	// What Toloka was asked to change: exactly these PATCHes (a batch
	// decides in parallel: any order).
	var patched []string
	for _, r := range env.Requests(http.MethodPatch, "/api/v1/assignments/") {
		patched = append(patched, r.Path[strings.LastIndex(r.Path, "/")+1:])
	}
	slices.Sort(patched)
	wantPatched := []string{a1, a2, a3, a3}
	slices.Sort(wantPatched)
	if diff := cmp.Diff(wantPatched, patched); diff != "" {
		t.Errorf("PATCHed assignments (-want +got):\n%s", diff)
	}

	// The whole request fails only for what concerns it all.
	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.BatchAcceptAssignmentsRequest
		field string
	}{
		{"no pool", &crowdgatev1.BatchAcceptAssignmentsRequest{AssignmentIds: []string{a1}}, "pool_id"},
		{"no ids", &crowdgatev1.BatchAcceptAssignmentsRequest{PoolId: p.GetPoolId()}, "assignment_ids"},
		{"too many ids", &crowdgatev1.BatchAcceptAssignmentsRequest{PoolId: p.GetPoolId(), AssignmentIds: make([]string, 101)}, "assignment_ids[100]"},
	} {
		_, err := env.Reviews.BatchAcceptAssignments(ctx, tc.req)
		gatewaytest.WantField(t, err, tc.field)
	}
	_, err = env.Reviews.BatchAcceptAssignments(gatewaytest.As("globex"), &crowdgatev1.BatchAcceptAssignmentsRequest{PoolId: p.GetPoolId(), AssignmentIds: []string{a1}})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Reviews.ListAssignments(gatewaytest.As("globex"), &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
	if code, _ := env.REST(http.MethodGet, "/v1/pools/"+p.GetPoolId()+"/assignments?page_token="+url.QueryEscape("made-up"), ""); code != http.StatusBadRequest {
		t.Errorf("a made-up page token: %d, want 400", code)
	}
}

// TestReviewPeriod: a rejection within the review period can be turned into
// an acceptance; work left SUBMITTED past the period is accepted by Toloka
// (the emulator honours auto_accept_period_day on its clock), and the queue
// shows it ACCEPTED, no longer waiting.
func TestReviewPeriod(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: clock, Sim: func(c *tolokasim.Config) { c.HonorAutoAccept = true }})
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := reviewPool(env, ctx, key, 2)
	late, _ := work(env, ctx, p, "toloker-1", "0.05")
	early, _ := work(env, ctx, p, "toloker-2", "0.05")

	// Within the period: reject, then accept.
	clock.Advance(24 * time.Hour)
	if _, err := env.Reviews.RejectAssignment(ctx, &crowdgatev1.RejectAssignmentRequest{AssignmentId: early, PublicComment: "Redo the boxes"}); err != nil {
		t.Fatalf("RejectAssignment within the period: %v", err)
	}
	accepted, err := env.Reviews.AcceptAssignment(ctx, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: early, PublicComment: "Fixed, thanks"})
	if err != nil || accepted.GetAssignment().GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED {
		t.Fatalf("AcceptAssignment after rejecting, within the period: %v, %v", accepted, err)
	}
	queue, err := env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId()})
	if err != nil || len(queue.GetAssignments()) != 1 || queue.GetAssignments()[0].GetAssignment().GetAssignmentId() != late {
		t.Fatalf("queue within the period: %v, %v; want %s waiting", queue, err, late)
	}
	deadline := queue.GetAssignments()[0].GetAssignment().GetReviewDeadline().AsTime()

	// Past the period Toloka accepts the waiting work by itself.
	clock.Advance(deadline.Add(time.Second).Sub(clock.Now()))
	queue, err = env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId()})
	if err != nil || len(queue.GetAssignments()) != 0 {
		t.Fatalf("queue after the period: %v, %v; want nothing waiting", queue, err)
	}
	done, err := env.Reviews.ListAssignments(ctx, &crowdgatev1.ListAssignmentsRequest{PoolId: p.GetPoolId(), UserId: "toloker-1",
		Statuses: []crowdgatev1.AssignmentStatus{crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED}})
	if err != nil || len(done.GetAssignments()) != 1 {
		t.Fatalf("ACCEPTED work of toloker-1: %v, %v", done, err)
	}
	if a := done.GetAssignments()[0].GetAssignment(); a.GetAssignmentId() != late || !a.GetAcceptTime().AsTime().Equal(deadline) {
		t.Errorf("auto-accepted %v, want %s accepted at its review deadline %v", a, late, deadline)
	}
	// Too late to reject it now.
	_, err = env.Reviews.RejectAssignment(ctx, &crowdgatev1.RejectAssignmentRequest{AssignmentId: late, PublicComment: "late"})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)
}
