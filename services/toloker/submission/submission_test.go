package submission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

const (
	queued    = crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED
	delivered = crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED
	dead      = crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD
)

func TestSubmitDeliversAndActsOnFlags(t *testing.T) {
	for _, tc := range []struct {
		name         string
		user         tolokasim.UserState
		closeSession bool
		wantFlags    *crowdgatev1.TolokaFlags
		wantEnd      crowdgatev1.EndReason
	}{
		{
			name:      "ordinary Toloker keeps working",
			wantFlags: &crowdgatev1.TolokaFlags{FilterMatch: true},
		},
		{
			name:      "top performer",
			user:      tolokasim.UserState{TopPerformer: true},
			wantFlags: &crowdgatev1.TolokaFlags{SpeedQualityBalanceMatch: true, FilterMatch: true},
		},
		{
			name:      "restricted Toloker's session ends",
			user:      tolokasim.UserState{Restricted: true},
			wantFlags: &crowdgatev1.TolokaFlags{RestrictionMatch: true, FilterMatch: true},
			wantEnd:   crowdgatev1.EndReason_END_REASON_RESTRICTED,
		},
		{
			name:      "filtered-out Toloker's session ends",
			user:      tolokasim.UserState{FilteredOut: true},
			wantFlags: &crowdgatev1.TolokaFlags{},
			wantEnd:   crowdgatev1.EndReason_END_REASON_FILTERED_OUT,
		},
		{
			name:         "close_session ends the session",
			closeSession: true,
			wantFlags:    &crowdgatev1.TolokaFlags{FilterMatch: true},
			wantEnd:      crowdgatev1.EndReason_END_REASON_CLOSE_SESSION,
		},
		{
			name:         "restriction wins over close_session as the reason",
			user:         tolokasim.UserState{Restricted: true},
			closeSession: true,
			wantFlags:    &crowdgatev1.TolokaFlags{RestrictionMatch: true, FilterMatch: true},
			wantEnd:      crowdgatev1.EndReason_END_REASON_RESTRICTED,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			s := f.toloker(tc.user)
			resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "r1", Reward: "0.05", CloseSession: proto.Bool(tc.closeSession)})

			sub := resp.Submission
			if sub.State != delivered || sub.Attempts != 1 || sub.DeliverTime == nil {
				t.Fatalf("submission %v, want DELIVERED after 1 attempt", sub)
			}
			if diff := cmp.Diff(tc.wantFlags, sub.Flags, protocmp.Transform()); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
			wantResp := &crowdgatev1.SubmitResponse{Submission: sub}
			if tc.wantEnd != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
				wantResp.SessionEnded, wantResp.SessionEndReason, wantResp.ReturnUrl = true, tc.wantEnd.String(), returnURL
			}
			if diff := cmp.Diff(wantResp, resp, protocmp.Transform()); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			got := f.session(s.SessionId)
			wantState := crowdgatev1.SessionState_SESSION_STATE_ACTIVE
			if tc.wantEnd != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
				wantState = crowdgatev1.SessionState_SESSION_STATE_ENDED
			}
			if got.State != wantState || got.EndReason != tc.wantEnd {
				t.Errorf("session is %s (%s), want %s (%s)", got.State, got.EndReason, wantState, tc.wantEnd)
			}
			if got.SubmitsCount != 1 || got.RewardTotal != "0.05" {
				t.Errorf("session totals %d / %s, want 1 / 0.05", got.SubmitsCount, got.RewardTotal)
			}
			f.paidOnce([]string{"r1"})
		})
	}
}

func TestSubmitSendsEveryFieldWithItsDigits(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	// Seed 001's example times, moved to this morning: work older than
	// the replay window is refused (retention_test.go).
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(-10 * time.Hour)
	resp := f.submit(&crowdgatev1.SubmitRequest{
		SessionId: s.SessionId, RetryId: "task-42", Reward: "10.520", Quality: "0.210",
		CustomLog: `{"ip":"10.0.0.1"}`, StartTime: timestamppb.New(start), EndTime: timestamppb.New(start.Add(15 * time.Minute)),
		Skipped: proto.Bool(true), GoldenTasksCount: proto.Int32(2), TrainingTasksCount: proto.Int32(3), RealTasksCount: proto.Int32(4),
	})
	if resp.Submission.Reward != "10.520" || resp.Submission.Quality != "0.210" {
		t.Errorf("submission keeps reward %q quality %q, want 10.520 and 0.210", resp.Submission.Reward, resp.Submission.Quality)
	}
	reqs := f.submitRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d submit requests, want 1", len(reqs))
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for k, v := range body {
		got[k] = string(v)
	}
	want := map[string]string{
		"pool_id":              f.tolokaPool,
		"user_id":              `"` + s.UserId + `"`,
		"retry_id":             `"task-42"`,
		"reward":               "10.520",
		"quality":              "0.210",
		"custom_log":           `"{\"ip\":\"10.0.0.1\"}"`,
		"start_time":           `"` + start.Format(time.RFC3339) + `"`,
		"end_time":             `"` + start.Add(15*time.Minute).Format(time.RFC3339) + `"`,
		"skipped":              "true",
		"golden_tasks_count":   "2",
		"training_tasks_count": "3",
		"real_tasks_count":     "4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body sent to Toloka (-want +got):\n%s", diff)
	}
	if led := f.ledger(); led.Count != 1 || led.Entries[0].Reward.String() != "10.520" {
		t.Errorf("ledger %+v, want one entry of 10.520", led)
	}
	if tot := f.totals(); tot.RewardDelivered != "10.52" || tot.RewardQueued != "0.00" {
		t.Errorf("totals reward delivered %s queued %s, want 10.52 and 0.00", tot.RewardDelivered, tot.RewardQueued)
	}
}

func TestReplayedSubmitPaysOnce(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	req := &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "once", Reward: "1.25", CloseSession: proto.Bool(true)}
	first := f.submit(req)
	// The first submit ended the session (close_session); the platform's
	// retry of the same submit is still answered, from the first result.
	second := f.submit(req)
	if !second.Replayed || first.Replayed {
		t.Errorf("replayed: first %v second %v, want false then true", first.Replayed, second.Replayed)
	}
	if diff := cmp.Diff(first.Submission, second.Submission, protocmp.Transform()); diff != "" {
		t.Errorf("replay answers another submission (-first +second):\n%s", diff)
	}
	if !second.SessionEnded || second.ReturnUrl != returnURL {
		t.Errorf("replay says session_ended %v return_url %q, want true and %s", second.SessionEnded, second.ReturnUrl, returnURL)
	}
	// By pool and user instead of session: the same key.
	third := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "once", Reward: "1.250", CloseSession: proto.Bool(true)})
	if !third.Replayed || third.Submission.SubmissionId != first.Submission.SubmissionId {
		t.Errorf("submit by pool and user: replayed %v id %s, want the first (%s)", third.Replayed, third.Submission.SubmissionId, first.Submission.SubmissionId)
	}
	f.paidOnce([]string{"once"})
	if n := len(f.submitRequests()); n != 1 {
		t.Errorf("Toloka got %d submit requests, want 1", n)
	}
	if tot := f.totals(); tot.Received != 1 || tot.Delivered != 1 || tot.RewardDelivered != "1.25" {
		t.Errorf("totals %v, want 1 received and delivered, 1.25", tot)
	}
	if got := f.session(s.SessionId); got.SubmitsCount != 1 {
		t.Errorf("session counts %d submits, want 1", got.SubmitsCount)
	}

	// The same retry_id for different work is refused, not answered as a
	// replay that would leave the work unpaid.
	_, err := f.svc.Submit(f.ctx, &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "once", Reward: "2"})
	if field := invalidField(t, err); field != "retry_id" {
		t.Errorf("reused retry_id: field %q, want retry_id", field)
	}
}

func TestSubmitWithoutRetryIDGetsOne(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	a := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.10"})
	b := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.10"})
	if a.Submission.RetryId == "" || a.Submission.RetryId == b.Submission.RetryId {
		t.Fatalf("retry ids %q and %q: want two distinct ones", a.Submission.RetryId, b.Submission.RetryId)
	}
	if a.Submission.RetryId != a.Submission.SubmissionId {
		t.Errorf("made retry_id %q, want the submission id %q", a.Submission.RetryId, a.Submission.SubmissionId)
	}
	f.paidOnce([]string{a.Submission.RetryId, b.Submission.RetryId})
}

func TestSubmitValidation(t *testing.T) {
	f := newFixture(t, nil)
	active := f.toloker(tolokasim.UserState{})
	other := f.toloker(tolokasim.UserState{})
	ended := f.toloker(tolokasim.UserState{})
	ended.State, ended.EndReason = crowdgatev1.SessionState_SESSION_STATE_ENDED, crowdgatev1.EndReason_END_REASON_CLOSE_SESSION
	f.sessions.put(ended)
	expired := f.toloker(tolokasim.UserState{})
	expired.ExpireTime = timestamppb.New(time.Now().Add(-time.Second))
	f.sessions.put(expired)

	now := time.Now()
	ok := func(edit func(r *crowdgatev1.SubmitRequest)) *crowdgatev1.SubmitRequest {
		r := &crowdgatev1.SubmitRequest{SessionId: active.SessionId, Reward: "0.05"}
		edit(r)
		return r
	}
	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.SubmitRequest
		field string
	}{
		{"no session, pool or user", &crowdgatev1.SubmitRequest{Reward: "1"}, "session_id"},
		{"user without pool", &crowdgatev1.SubmitRequest{UserId: "u", Reward: "1"}, "pool_id"},
		{"pool without user", &crowdgatev1.SubmitRequest{PoolId: poolID, Reward: "1"}, "user_id"},
		{"pool id with a space", &crowdgatev1.SubmitRequest{PoolId: "pool 1", UserId: "u", Reward: "1"}, "pool_id"},
		{"missing reward", ok(func(r *crowdgatev1.SubmitRequest) { r.Reward = "" }), "reward"},
		{"negative reward", ok(func(r *crowdgatev1.SubmitRequest) { r.Reward = "-0.01" }), "reward"},
		{"reward with a comma", ok(func(r *crowdgatev1.SubmitRequest) { r.Reward = "10,52" }), "reward"},
		{"reward in exponent form", ok(func(r *crowdgatev1.SubmitRequest) { r.Reward = "1e3" }), "reward"},
		{"reward with too many digits", ok(func(r *crowdgatev1.SubmitRequest) { r.Reward = "0.000000001" }), "reward"},
		{"reward too large", ok(func(r *crowdgatev1.SubmitRequest) { r.Reward = "1000000.01" }), "reward"},
		{"quality above 1", ok(func(r *crowdgatev1.SubmitRequest) { r.Quality = "1.01" }), "quality"},
		{"negative quality", ok(func(r *crowdgatev1.SubmitRequest) { r.Quality = "-0.1" }), "quality"},
		{"quality not a number", ok(func(r *crowdgatev1.SubmitRequest) { r.Quality = "high" }), "quality"},
		{"custom_log not JSON", ok(func(r *crowdgatev1.SubmitRequest) { r.CustomLog = "{ip: 1" }), "custom_log"},
		{"end before start", ok(func(r *crowdgatev1.SubmitRequest) {
			r.StartTime, r.EndTime = timestamppb.New(now), timestamppb.New(now.Add(-time.Second))
		}), "end_time"},
		{"invalid start time", ok(func(r *crowdgatev1.SubmitRequest) { r.StartTime = &timestamppb.Timestamp{Nanos: -1} }), "start_time"},
		{"negative golden count", ok(func(r *crowdgatev1.SubmitRequest) { r.GoldenTasksCount = proto.Int32(-1) }), "golden_tasks_count"},
		{"negative training count", ok(func(r *crowdgatev1.SubmitRequest) { r.TrainingTasksCount = proto.Int32(-1) }), "training_tasks_count"},
		{"negative real count", ok(func(r *crowdgatev1.SubmitRequest) { r.RealTasksCount = proto.Int32(-2) }), "real_tasks_count"},
		{"retry_id too long", ok(func(r *crowdgatev1.SubmitRequest) { r.RetryId = strings.Repeat("r", 129) }), "retry_id"},
		{"retry_id with a space", ok(func(r *crowdgatev1.SubmitRequest) { r.RetryId = "a b" }), "retry_id"},
		{"ended session", ok(func(r *crowdgatev1.SubmitRequest) { r.SessionId = ended.SessionId }), "session_id"},
		{"expired session", ok(func(r *crowdgatev1.SubmitRequest) { r.SessionId = expired.SessionId }), "session_id"},
		{"session of another pool", ok(func(r *crowdgatev1.SubmitRequest) { r.PoolId = "pool_2" }), "session_id"},
		{"session of another user", ok(func(r *crowdgatev1.SubmitRequest) { r.UserId = other.UserId }), "session_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Submit(f.ctx, tc.req)
			if got := invalidField(t, err); got != tc.field {
				t.Errorf("field %q (%v), want %q", got, err, tc.field)
			}
		})
	}
	if tot := f.totals(); tot.Received != 0 {
		t.Errorf("refused submits were recorded: %v", tot)
	}
	if n := len(f.submitRequests()); n != 0 {
		t.Errorf("Toloka got %d submits, want none", n)
	}
	// At the limits, the same fields pass.
	f.submit(ok(func(r *crowdgatev1.SubmitRequest) {
		r.Reward, r.Quality, r.RetryId = "0", "1", strings.Repeat("r", 128)
		r.StartTime, r.EndTime = timestamppb.New(now), timestamppb.New(now)
	}))
}

func TestUnknownSessionOrPoolIsNotFound(t *testing.T) {
	f := newFixture(t, nil)
	for name, req := range map[string]*crowdgatev1.SubmitRequest{
		"session": {SessionId: "ses_nope", Reward: "1"},
		"pool":    {PoolId: "pool_nope", UserId: "u", Reward: "1"},
	} {
		var nf *serviceerror.NotFound
		if _, err := f.svc.Submit(f.ctx, req); !errors.As(err, &nf) {
			t.Errorf("unknown %s: %v, want NotFound", name, err)
		}
	}
	// Another tenant's session looks the same.
	s := f.toloker(tolokasim.UserState{})
	var nf *serviceerror.NotFound
	if _, err := f.svc.Submit(tenant.WithID(f.ctx, "other"), &crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "1"}); !errors.As(err, &nf) {
		t.Errorf("foreign session: %v, want NotFound", err)
	}
}

func TestLostResponsesPayOnce(t *testing.T) {
	f := newFixture(t, nil)
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", LostResponseRate: 0.6, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 20 {
		id := fmt.Sprintf("lost-%02d", i)
		ids = append(ids, id)
		f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: id, Reward: "0.10"})
	}
	f.waitTotals("all delivered", 20*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 20 })
	f.paidOnce(ids)
	led := f.ledger()
	if led.DuplicatesRefused == 0 {
		t.Errorf("no submit was repeated: the fault never hit")
	}
	if led.RewardTotal.String() != "2" {
		t.Errorf("paid %s, want 2", led.RewardTotal)
	}
	if tot := f.totals(); tot.RewardDelivered != "2.00" || tot.Queued != 0 {
		t.Errorf("totals %v, want 2.00 delivered, nothing queued", tot)
	}
}

func TestTolokaOutageQueuesThenDeliversAll(t *testing.T) {
	f := newFixture(t, nil)
	f.run(f.svc)
	restricted := f.toloker(tolokasim.UserState{Restricted: true})
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 10 {
		sess := s
		if i == 0 {
			sess = restricted
		}
		id := fmt.Sprintf("storm-%02d", i)
		ids = append(ids, id)
		resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: sess.SessionId, RetryId: id, Reward: "0.33"})
		sub := resp.Submission
		if sub.State != queued || sub.LastError.GetHttpStatus() != 503 || sub.LastError.GetCode() != "REMOTE_SERVICE_UNAVAILABLE" {
			t.Fatalf("during the outage Submit answered %v, want QUEUED with Toloka's 503", sub)
		}
		if resp.SessionEnded {
			t.Errorf("a queued submit says the session ended")
		}
	}
	tot := f.totals()
	if tot.Queued != 10 || tot.Delivered != 0 || tot.RewardQueued != "3.30" {
		t.Errorf("during the outage totals %v, want 10 queued worth 3.30", tot)
	}
	if q, d, err := f.svc.PendingCount(f.ctx, tenant.Default, poolID); err != nil || q != 10 || d != 0 {
		t.Errorf("PendingCount = %d queued, %d dead, %v; want 10 queued, none dead", q, d, err)
	}
	if f.ledger().Count != 0 {
		t.Fatalf("paid during the outage")
	}
	if got := f.session(restricted.SessionId); got.State != crowdgatev1.SessionState_SESSION_STATE_ACTIVE {
		t.Errorf("restricted Toloker's session ended before Toloka said so")
	}

	f.sim.ClearFaults()
	tot = f.waitTotals("delivered after the outage", 15*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 10 })
	if tot.Queued != 0 || tot.RewardDelivered != "3.30" || tot.RewardQueued != "0.00" {
		t.Errorf("after the outage totals %v, want all 3.30 delivered", tot)
	}
	f.paidOnce(ids)
	// The flags of a late delivery act too.
	if got := f.session(restricted.SessionId); got.EndReason != crowdgatev1.EndReason_END_REASON_RESTRICTED {
		t.Errorf("restricted Toloker's session: %s %s, want ended RESTRICTED", got.State, got.EndReason)
	}
	if q, d, err := f.svc.PendingCount(f.ctx, tenant.Default, poolID); err != nil || q != 0 || d != 0 {
		t.Errorf("PendingCount after delivery = %d queued, %d dead, %v; want none", q, d, err)
	}
}

func TestSlowTolokaAnswersQueuedThenDelivers(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = 50 * time.Millisecond })
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", LatencyMS: 300}); err != nil {
		t.Fatal(err)
	}
	resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "slow", Reward: "0.01"})
	if resp.Submission.State != queued || resp.Submission.SubmissionId == "" {
		t.Fatalf("slow Toloka: Submit answered %v, want QUEUED with an id", resp.Submission)
	}
	f.waitTotals("delivered", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })
	if got := f.get(resp.Submission.SubmissionId); got.State != delivered || got.Attempts != 1 {
		t.Errorf("submission %v, want DELIVERED after one attempt", got)
	}
	f.paidOnce([]string{"slow"})
}

func TestRefusedSubmitIsDeadUntilRetried(t *testing.T) {
	f := newFixture(t, nil)
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{400: 1}}); err != nil {
		t.Fatal(err)
	}
	resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "refused", Reward: "0.75"})
	sub := resp.Submission
	if sub.State != dead || sub.Attempts != 1 {
		t.Fatalf("Submit answered %v, want DEAD after one attempt", sub)
	}
	if e := sub.LastError; e.GetHttpStatus() != 400 || e.GetCode() != "VALIDATION_ERROR" || e.GetRequestId() == "" || !strings.Contains(e.GetMessage(), "injected") {
		t.Errorf("last_error %v, want Toloka's 400 VALIDATION_ERROR with its request id and message", e)
	}
	list, err := f.svc.ListSubmissions(f.ctx, &crowdgatev1.ListSubmissionsRequest{PoolId: poolID, State: dead})
	if err != nil || len(list.Submissions) != 1 || list.Submissions[0].SubmissionId != sub.SubmissionId {
		t.Fatalf("dead letters: %v, %v", list, err)
	}
	if tot := f.totals(); tot.Dead != 1 || tot.Queued != 0 || tot.RewardQueued != "0.00" {
		t.Errorf("totals %v, want 1 dead", tot)
	}
	if q, d, err := f.svc.PendingCount(f.ctx, tenant.Default, poolID); err != nil || q != 0 || d != 1 {
		t.Errorf("PendingCount = %d queued, %d dead, %v; want 1 dead", q, d, err)
	}
	// A dead submission stays dead: nothing retries it behind the operator's back.
	if got := f.get(sub.SubmissionId); got.State != dead {
		t.Fatalf("dead submission became %s", got.State)
	}

	// The cause is fixed; the operator retries.
	f.sim.ClearFaults()
	rr, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: sub.SubmissionId})
	if err != nil || rr.Submission.State != queued {
		t.Fatalf("RetrySubmission: %v, %v", rr, err)
	}
	f.waitTotals("delivered after the retry", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })
	got := f.get(sub.SubmissionId)
	if got.State != delivered || got.RetryId != "refused" || got.Attempts != 2 {
		t.Errorf("after the retry %v, want DELIVERED on attempt 2 with the same retry_id", got)
	}
	f.paidOnce([]string{"refused"})
	if tot := f.totals(); tot.Dead != 0 || tot.RewardDelivered != "0.75" {
		t.Errorf("totals %v", tot)
	}
	var fp *serviceerror.FailedPrecondition
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: sub.SubmissionId}); !errors.As(err, &fp) {
		t.Errorf("retrying a delivered submission: %v, want FailedPrecondition", err)
	}
}

func TestConflictIsDeadUntilFixed(t *testing.T) {
	f := newFixture(t, nil)
	f.run(f.svc)
	// A Toloker with no active assignment: Toloka answers 409.
	resp := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: "stranger", RetryId: "c1", Reward: "0.20", EndTime: timestamppb.Now()})
	if e := resp.Submission.LastError; resp.Submission.State != dead || e.GetHttpStatus() != 409 || e.GetCode() != "CONFLICT_STATE" {
		t.Fatalf("Submit answered %v, want DEAD with Toloka's 409", resp.Submission)
	}
	if _, err := f.sim.CreateAssignment(f.tolokaPool, "stranger"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: resp.Submission.SubmissionId}); err != nil {
		t.Fatal(err)
	}
	f.waitTotals("delivered", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })
	f.paidOnce([]string{"c1"})
}

func TestCrashedWorkersEntriesAreReclaimed(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = -1 })
	s := f.toloker(tolokasim.UserState{})
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("crash-%d", i)
		ids = append(ids, id)
		if resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: id, Reward: "0.50"}); resp.Submission.State != queued {
			t.Fatalf("with inline delivery off Submit answered %s", resp.Submission.State)
		}
	}
	// Replica A takes every entry, and the lease of the first, then dies
	// without acknowledging anything.
	a := f.newService(func(c *Config) {
		c.Settings.SyncTimeout, c.Settings.AttemptTimeout, c.Settings.LeaseTTL = -1, time.Second, 2*time.Second
	})
	a.consumer = "replica-a"
	for shard := range a.knownShards() {
		a.ensureGroup(f.ctx, shard)
	}
	taken := a.readNew(f.ctx, 10)
	if len(taken) != 3 {
		t.Fatalf("replica A took %d entries, want 3", len(taken))
	}
	if c, err := a.st.claim(f.ctx, taken[0], "token-a", a.cfg.LeaseTTL); err != nil || c.kind != "ok" {
		t.Fatalf("replica A's claim: %v %v", c.kind, err)
	}

	// Replica B cannot take the leased submission while A's lease lives...
	b := f.newService(func(c *Config) {
		c.Settings.SyncTimeout, c.Settings.VisibilityTimeout = -1, 100*time.Millisecond
	})
	b.consumer = "replica-b"
	if c, err := b.st.claim(f.ctx, taken[0], "token-b", b.cfg.LeaseTTL); err != nil || c.kind != "busy" {
		t.Fatalf("replica B's claim under A's lease: %v %v, want busy", c.kind, err)
	}
	// ...but reclaims and delivers all of A's entries once they are idle
	// and the lease has lapsed.
	f.run(b)
	f.waitTotals("delivered by replica B", 15*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 3 })
	f.paidOnce(ids)
	pending, err := f.redis.Client.XPending(f.ctx, b.st.streamKey(taken[0].shard), group).Result()
	if err != nil || pending.Count != 0 {
		t.Errorf("entries left pending: %v %v", pending, err)
	}
}

func TestTwoReplicasDeliverEachSubmitOnce(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = -1 })
	s := f.toloker(tolokasim.UserState{})
	var ids []string
	for i := range 40 {
		id := fmt.Sprintf("pair-%02d", i)
		ids = append(ids, id)
		f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: id, Reward: "0.01"})
	}
	f.run(f.svc)
	f.run(f.newService(func(c *Config) { c.Settings.SyncTimeout = -1 }))
	f.waitTotals("delivered", 15*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 40 })
	f.paidOnce(ids)
	if n := len(f.submitRequests()); n != 40 {
		t.Errorf("Toloka got %d submit requests for 40 submits", n)
	}
}

func TestListSubmissions(t *testing.T) {
	f := newFixture(t, nil)
	a := f.toloker(tolokasim.UserState{})
	b := f.toloker(tolokasim.UserState{})
	var all []string // newest first
	for i := range 7 {
		s := a
		if i%2 == 1 {
			s = b
		}
		resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.01"})
		all = append([]string{resp.Submission.SubmissionId}, all...)
	}
	// One dead letter: a Toloker Toloka does not know.
	deadResp := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: "stranger", Reward: "0.01"})
	all = append([]string{deadResp.Submission.SubmissionId}, all...)

	ids := func(subs []*crowdgatev1.Submission) []string {
		out := []string{}
		for _, s := range subs {
			out = append(out, s.SubmissionId)
		}
		return out
	}
	list := func(req *crowdgatev1.ListSubmissionsRequest) []string {
		t.Helper()
		req.PoolId = poolID
		var got []string
		for page := 0; ; page++ {
			resp, err := f.svc.ListSubmissions(f.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(resp.Submissions)...)
			if resp.NextPageToken == "" {
				return got
			}
			if page > 20 {
				t.Fatal("paging does not end")
			}
			req.PageToken = resp.NextPageToken
		}
	}
	byUser := func(user string) []string {
		var out []string
		for _, id := range all {
			if f.get(id).UserId == user {
				out = append(out, id)
			}
		}
		return out
	}
	mid := f.get(all[4]).CreateTime
	for _, tc := range []struct {
		name string
		req  *crowdgatev1.ListSubmissionsRequest
		want []string
	}{
		{"all, one page", &crowdgatev1.ListSubmissionsRequest{}, all},
		{"all, pages of 3", &crowdgatev1.ListSubmissionsRequest{PageSize: 3}, all},
		{"all, pages of 8", &crowdgatev1.ListSubmissionsRequest{PageSize: 8}, all},
		{"one Toloker", &crowdgatev1.ListSubmissionsRequest{UserId: a.UserId, PageSize: 2}, byUser(a.UserId)},
		{"delivered", &crowdgatev1.ListSubmissionsRequest{State: delivered, PageSize: 2}, all[1:]},
		{"dead", &crowdgatev1.ListSubmissionsRequest{State: dead}, all[:1]},
		{"queued", &crowdgatev1.ListSubmissionsRequest{State: queued}, nil},
		{"from a time on", &crowdgatev1.ListSubmissionsRequest{CreateTimeFrom: mid}, all[:5]},
		{"before a time", &crowdgatev1.ListSubmissionsRequest{CreateTimeTo: mid, PageSize: 1}, all[5:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, list(tc.req)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}

	for name, req := range map[string]*crowdgatev1.ListSubmissionsRequest{
		"pool_id":    {},
		"page_size":  {PoolId: poolID, PageSize: 501},
		"page_token": {PoolId: poolID, PageToken: "nonsense"},
	} {
		if _, err := f.svc.ListSubmissions(f.ctx, req); invalidField(t, err) != name {
			t.Errorf("bad %s: %v", name, err)
		}
	}
	var nf *serviceerror.NotFound
	if _, err := f.svc.ListSubmissions(tenant.WithID(f.ctx, "other"), &crowdgatev1.ListSubmissionsRequest{PoolId: poolID}); !errors.As(err, &nf) {
		t.Errorf("another tenant's pool: %v, want NotFound", err)
	}
}

// A dashboard keeps the page_token while its user changes the filters
// (state, Toloker, time bounds). The token continues only the list it came
// from: on another one it is INVALID_ARGUMENT naming page_token, never the
// other list resumed in the middle.
func TestAListSubmissionsPageTokenOnlyContinuesTheListWithItsFilters(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	for range 3 {
		f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.01"})
	}
	from := timestamppb.New(time.Unix(1, 0))
	to := timestamppb.New(time.Now().Add(time.Hour))
	for _, base := range []*crowdgatev1.ListSubmissionsRequest{
		{},
		{State: crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED},
		{UserId: s.UserId},
		{CreateTimeFrom: from, CreateTimeTo: to},
	} {
		req := proto.CloneOf(base)
		req.PoolId, req.PageSize = poolID, 1
		first, err := f.svc.ListSubmissions(f.ctx, req)
		if err != nil || first.NextPageToken == "" {
			t.Fatalf("first page of %v: %v %v", base, first, err)
		}
		req.PageToken = first.NextPageToken
		if _, err := f.svc.ListSubmissions(f.ctx, req); err != nil {
			t.Errorf("the token of %v on its own list: %v", base, err)
		}
		for name, change := range map[string]func(*crowdgatev1.ListSubmissionsRequest){
			"state": func(r *crowdgatev1.ListSubmissionsRequest) {
				r.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD
			},
			"user_id":          func(r *crowdgatev1.ListSubmissionsRequest) { r.UserId = "toloker-other" },
			"create_time_from": func(r *crowdgatev1.ListSubmissionsRequest) { r.CreateTimeFrom = timestamppb.New(time.Unix(2, 0)) },
			"create_time_to": func(r *crowdgatev1.ListSubmissionsRequest) {
				r.CreateTimeTo = timestamppb.New(time.Now().Add(2 * time.Hour))
			},
		} {
			other := proto.CloneOf(req)
			change(other)
			if _, err := f.svc.ListSubmissions(f.ctx, other); invalidField(t, err) != "page_token" {
				t.Errorf("the token of %v with %s changed: %v, want INVALID_ARGUMENT naming page_token", base, name, err)
			}
		}
	}
}

func TestOtherTenantsSeeNothing(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.01"})
	other := tenant.WithID(f.ctx, "other")
	var nf *serviceerror.NotFound
	if _, err := f.svc.GetSubmission(other, &crowdgatev1.GetSubmissionRequest{SubmissionId: resp.Submission.SubmissionId}); !errors.As(err, &nf) {
		t.Errorf("GetSubmission from another tenant: %v, want NotFound", err)
	}
	if _, err := f.svc.RetrySubmission(other, &crowdgatev1.RetrySubmissionRequest{SubmissionId: resp.Submission.SubmissionId}); !errors.As(err, &nf) {
		t.Errorf("RetrySubmission from another tenant: %v, want NotFound", err)
	}
	if _, err := f.svc.GetPoolTotals(other, &crowdgatev1.GetPoolTotalsRequest{PoolId: poolID}); !errors.As(err, &nf) {
		t.Errorf("GetPoolTotals from another tenant: %v, want NotFound", err)
	}
	for _, id := range []string{"sub_nope", "sub_00000000000000000000000000_99", resp.Submission.SubmissionId + "0"} {
		if _, err := f.svc.GetSubmission(f.ctx, &crowdgatev1.GetSubmissionRequest{SubmissionId: id}); !errors.As(err, &nf) {
			t.Errorf("GetSubmission(%q): %v, want NotFound", id, err)
		}
	}
}

func TestPoolTotalsAreExact(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	for _, r := range []string{"0.1", "0.2", "0.005", "10.52", "0.00000001", "999999.99"} {
		f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: r})
	}
	want := &crowdgatev1.PoolTotals{PoolId: poolID, Received: 6, Delivered: 6, RewardDelivered: "1000010.81500001", RewardQueued: "0.00"}
	if diff := cmp.Diff(want, f.totals(), protocmp.Transform()); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if got := f.ledger().RewardTotal.String(); got != "1000010.81500001" {
		t.Errorf("Toloka was paid %s", got)
	}
}

// An accept sent twice (go-redis sends a pipeline again when its reply is
// lost after Redis ran it) is recorded once and answered as its first run:
// a submit without a retry_id is not queued twice in the pool's totals,
// and one with a retry_id is not answered as a replay of itself.
func TestAnAcceptSentTwiceIsRecordedOnce(t *testing.T) {
	accept := redistest.ReadScript(t, "lua/accept.lua")
	f := newFixture(t, func(c *Config) { c.Redis.AddHook(&redistest.Resend{Script: accept}) })
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	for _, req := range []*crowdgatev1.SubmitRequest{
		{SessionId: s.SessionId, Reward: "0.40"},
		{SessionId: s.SessionId, RetryId: "task-2", Reward: "0.60"},
	} {
		if resp := f.submit(req); resp.GetReplayed() {
			t.Errorf("submit %q answered as a replay of itself", req.GetRetryId())
		}
	}
	tot := f.waitTotals("both submits settled", 15*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Queued == 0 })
	if tot.Received != 2 || tot.Delivered != 2 || tot.RewardDelivered != "1.00" {
		t.Errorf("totals %v, want 2 received and delivered (1.00)", tot)
	}
	if n := f.ledger().Count; n != 2 {
		t.Errorf("Toloka paid %d submits, want 2", n)
	}
	if got, _, err := f.sessions.Read(f.ctx, tenant.Default, s.SessionId); err != nil || got.GetSubmitsCount() != 2 {
		t.Errorf("the session counts %d submits (%v), want 2: each recorded once", got.GetSubmitsCount(), err)
	}
}

// When Redis cannot say whether the session's earlier submits are still
// queued, the closing submit waits rather than overtaking them: going
// first would close the assignment and leave an earlier submit refused and
// unpaid for good.
func TestCloseSessionWaitsWhenRedisCannotTellWhatIsQueued(t *testing.T) {
	fail := &failPendingReads{}
	f, s := queuedDuringAnOutage(t, func(c *Config) { c.Redis.AddHook(fail) })
	fail.left.Store(1) // the closing submit's first look at what is queued fails
	f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-2", Reward: "0.60", CloseSession: proto.Bool(true)})
	f.bothDeliveredAndPaidOnce()
	if fail.left.Load() > 0 {
		t.Fatal("the failures were never injected")
	}
}

// queuedDuringAnOutage starts a fixture whose retries wait 300 ms (mutate
// adjusts its configuration further), lands a Toloker, and queues their
// first submit (task-1, 0.40) during a Toloka outage, which then ends.
func queuedDuringAnOutage(t *testing.T, mutate func(*Config)) (*fixture, *crowdgatev1.Session) {
	t.Helper()
	f := newFixture(t, func(c *Config) {
		c.Settings.BaseBackoff, c.Settings.MaxBackoff = 300*time.Millisecond, 300*time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	first := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"})
	if first.Submission.State != queued {
		t.Fatalf("first submit during the outage: %s, want QUEUED", first.Submission.State)
	}
	f.sim.ClearFaults()
	return f, s
}

// bothDeliveredAndPaidOnce waits until neither task-1 (0.40) nor task-2
// (0.60) is queued, and checks that both were delivered and paid once.
func (f *fixture) bothDeliveredAndPaidOnce() {
	f.t.Helper()
	tot := f.waitTotals("both submits settled", 15*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Queued == 0 })
	if tot.Delivered != 2 || tot.Dead != 0 || tot.RewardDelivered != "1.00" {
		f.t.Errorf("totals %v, want both delivered (1.00) and none dead", tot)
	}
	f.paidOnce([]string{"task-1", "task-2"})
}

// failPendingReads fails the pipelines that read a session's queued
// submissions (SMEMBERS), while left is positive.
type failPendingReads struct{ left atomic.Int64 }

func (h *failPendingReads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failPendingReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *failPendingReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "smembers" && h.left.Add(-1) >= 0 {
			return errors.New("injected: connection reset")
		}
		return next(ctx, cmds)
	}
}

// A session's closing submit reaches Toloka only after the session's earlier
// submits: Toloka closes the assignment on close_session and would refuse
// (and never pay) an earlier submit that arrived after it.
func TestCloseSessionWaitsForTheSessionsEarlierSubmits(t *testing.T) {
	f, s := queuedDuringAnOutage(t, nil)
	last := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-2", Reward: "0.60", CloseSession: proto.Bool(true)})
	if last.Submission.State != queued {
		t.Errorf("closing submit answered %s while an earlier submit was queued, want QUEUED (it must go last)", last.Submission.State)
	}
	f.bothDeliveredAndPaidOnce()
	var order []string
	for _, r := range f.submitRequests() {
		var body struct {
			RetryID string `json:"retry_id"`
		}
		if r.Status == 200 && json.Unmarshal(r.Body, &body) == nil && body.RetryID != "" {
			order = append(order, body.RetryID)
		}
	}
	if len(order) < 2 || order[len(order)-1] != "task-2" {
		t.Errorf("Toloka accepted the submits in order %v, want task-2 (close_session) last", order)
	}
}
