package submission

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// retentionFixture is a fixture whose service runs on a fake clock with a
// retention of a day (a replay window of 12 hours).
func retentionFixture(t *testing.T) (*fixture, *fakeclock.Clock) {
	clock := fakeclock.New(time.Now())
	f := newFixture(t, func(c *Config) {
		c.Now = clock.Now
		c.Settings.Retention = 24 * time.Hour
	})
	return f, clock
}

// longSession is a Toloker's session that outlives the test's clock jumps.
func (f *fixture) longSession(t *testing.T, created time.Time) *crowdgatev1.Session {
	t.Helper()
	s := f.toloker(tolokasim.UserState{})
	s.CreateTime = timestamppb.New(created)
	s.ExpireTime = timestamppb.New(created.Add(1000 * time.Hour))
	f.sessions.put(s)
	return s
}

// keysOf lists the test's Redis keys that hold a submission, by kind
// (record, idempotency key, index entries).
func (f *fixture) submissionKeys(t *testing.T, id, retryID string) []string {
	t.Helper()
	ctx := context.Background()
	shard, _ := parseID(id)
	st := f.svc.st
	var present []string
	if n, _ := f.redis.Client.Exists(ctx, st.recordKey(shard, tenant.Default, id)).Result(); n > 0 {
		present = append(present, "record")
	}
	if retryID != "" {
		if v, _ := f.redis.Client.Get(ctx, st.idemKey(shard, tenant.Default, poolID, retryID)).Result(); v == id {
			present = append(present, "idempotency key")
		}
	}
	for _, k := range []struct{ name, key string }{
		{"pool index", st.indexKey(shard, tenant.Default, poolID)},
		{"dead letters", st.deadKey(shard, tenant.Default, poolID)},
	} {
		if _, err := f.redis.Client.ZScore(ctx, k.key, id).Result(); err == nil {
			present = append(present, k.name)
		}
	}
	return present
}

func TestSettledSubmissionsExpireAfterRetentionAndTheirReplaysAreRefused(t *testing.T) {
	f, clock := retentionFixture(t)
	start := clock.Now()
	s := f.longSession(t, start)
	delivered := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "paid", Reward: "1.25", EndTime: timestamppb.New(start)})
	// Without times: the session's start is the work's time.
	bare := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "bare", Reward: "0.10"})
	// A Toloker Toloka refuses: the submit goes DEAD.
	deadReq := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: "stranger", RetryId: "refused", Reward: "0.50", EndTime: timestamppb.New(start)}
	dead := f.submit(deadReq)
	if got := dead.Submission.GetState(); got != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD {
		t.Fatalf("the stranger's submit is %s, want DEAD", got)
	}
	// Toloka is down for the third: it stays queued however long it takes.
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	queued := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "waiting", Reward: "2", EndTime: timestamppb.New(start)})
	if got := queued.Submission.GetState(); got != crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED {
		t.Fatalf("submit while Toloka is down is %s, want QUEUED", got)
	}
	totals := f.totals()
	pay, err := f.svc.TolokerPay(f.ctx, tenant.Default, []string{s.UserId, "stranger"})
	if err != nil {
		t.Fatal(err)
	}

	// Within the retention everything is kept, and a replay is answered.
	clock.Advance(23 * time.Hour)
	if n, err := f.svc.expire(f.ctx); err != nil || n != 0 {
		t.Fatalf("expire after 23h: %d deleted, %v; want 0", n, err)
	}
	again := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "paid", Reward: "1.25", EndTime: timestamppb.New(start)})
	if !again.Replayed || again.Submission.SubmissionId != delivered.Submission.SubmissionId {
		t.Errorf("replay after 23h: replayed %v id %s, want the first submission %s", again.Replayed, again.Submission.SubmissionId, delivered.Submission.SubmissionId)
	}

	// After it, the settled ones are gone without a trace; the queued one
	// and every total stay.
	clock.Advance(2 * time.Hour)
	if n, err := f.svc.expire(f.ctx); err != nil || n != 2 {
		t.Fatalf("expire after 25h: %d deleted, %v; want 2", n, err)
	}
	for _, sub := range []*crowdgatev1.Submission{delivered.Submission, bare.Submission} {
		if keys := f.submissionKeys(t, sub.SubmissionId, sub.RetryId); len(keys) != 0 {
			t.Errorf("submission %s (%s) still has %v in Redis", sub.RetryId, sub.State, keys)
		}
		_, err := f.svc.GetSubmission(f.ctx, &crowdgatev1.GetSubmissionRequest{SubmissionId: sub.SubmissionId})
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			t.Errorf("GetSubmission(%s) after retention: %v, want NotFound", sub.RetryId, err)
		}
	}
	if keys := f.submissionKeys(t, queued.Submission.SubmissionId, "waiting"); len(keys) != 3 {
		t.Errorf("the queued submission has %v in Redis, want its record, idempotency key and pool index entry", keys)
	}
	// The dead letter is unpaid work: kept until an operator acts.
	if keys := f.submissionKeys(t, dead.Submission.SubmissionId, "refused"); len(keys) != 4 {
		t.Errorf("the dead letter has %v in Redis, want its record, idempotency key, pool index and dead letters entries", keys)
	}
	list, err := f.svc.ListSubmissions(f.ctx, &crowdgatev1.ListSubmissionsRequest{PoolId: poolID})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Submissions) != 2 {
		t.Errorf("ListSubmissions after retention lists %d, want the queued one and the dead letter", len(list.Submissions))
	}
	if diff := cmp.Diff(totals, f.totals(), protocmp.Transform()); diff != "" {
		t.Errorf("pool totals changed when records expired (-before +after):\n%s", diff)
	}
	// The review queue: the session's assignment has only the queued one.
	work, err := f.svc.AssignmentWork(f.ctx, tenant.Default, poolID, []string{s.AssignmentId})
	if err != nil {
		t.Fatal(err)
	}
	if q := work[s.AssignmentId]; q.GetSubmissionsCount() != 1 || q.GetRewardTotal() != "2.00" {
		t.Errorf("AssignmentWork after retention: %v, want the queued submit alone (2.00)", q)
	}
	payAfter, err := f.svc.TolokerPay(f.ctx, tenant.Default, []string{s.UserId, "stranger"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pay, payAfter); diff != "" {
		t.Errorf("Tolokers' pay changed when records expired (-before +after):\n%s", diff)
	}

	// Replays of the expired retry_ids are refused, naming what made them
	// too old, and nothing more is paid.
	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.SubmitRequest
		field string
	}{
		{"by session", &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "paid", Reward: "1.25", EndTime: timestamppb.New(start)}, "end_time"},
		{"by session without times", &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "bare", Reward: "0.10"}, "session_id"},
	} {
		_, err := f.svc.Submit(f.ctx, tc.req)
		if field := invalidField(t, err); field != tc.field || !strings.Contains(err.Error(), "replay window") {
			t.Errorf("%s: replay of an expired retry_id: %v (field %q), want INVALID_ARGUMENT %s naming the replay window", tc.name, err, field, tc.field)
		}
	}
	if again, err := f.svc.Submit(f.ctx, deadReq); err != nil || !again.Replayed {
		t.Errorf("replay of the dead letter's submit: %v, replayed %v; want answered from it", err, again.GetReplayed())
	}
	if led := f.ledger(); led.Count != 2 {
		t.Errorf("Toloka paid %d submits, want 2 (each first submit, once)", led.Count)
	}
	if diff := cmp.Diff(totals, f.totals(), protocmp.Transform()); diff != "" {
		t.Errorf("refused replays changed the pool totals (-before +after):\n%s", diff)
	}

	// The queued one is delivered once Toloka is back, and expires a
	// retention after that.
	f.sim.ClearFaults()
	f.run(f.svc)
	f.waitTotals("queued submit delivered", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Queued == 0 })
	clock.Advance(23 * time.Hour)
	if n, err := f.svc.expire(f.ctx); err != nil || n != 0 {
		t.Fatalf("expire 23h after the late delivery: %d deleted, %v; want 0", n, err)
	}
	clock.Advance(2 * time.Hour)
	if n, err := f.svc.expire(f.ctx); err != nil || n != 1 {
		t.Fatalf("expire 25h after the late delivery: %d deleted, %v; want 1", n, err)
	}
	if keys := f.submissionKeys(t, queued.Submission.SubmissionId, "waiting"); len(keys) != 0 {
		t.Errorf("the late submission still has %v in Redis", keys)
	}
	f.paidOnce([]string{"paid", "bare", "waiting"})
}

func TestReplayWindowRefusesWorkTooOldToBeKnownUnpaid(t *testing.T) {
	f, clock := retentionFixture(t)
	now := clock.Now()
	fresh := f.longSession(t, now.Add(-time.Hour))
	old := f.longSession(t, now.Add(-13*time.Hour))
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.SubmitRequest
		field string // "" when accepted
	}{
		{"fresh session, no times", &crowdgatev1.SubmitRequest{SessionId: fresh.SessionId, RetryId: "a", Reward: "0.01"}, ""},
		{"fresh session, end_time now", &crowdgatev1.SubmitRequest{SessionId: fresh.SessionId, RetryId: "b", Reward: "0.01", EndTime: at(0)}, ""},
		{"session older than the window, no times", &crowdgatev1.SubmitRequest{SessionId: old.SessionId, RetryId: "c", Reward: "0.01"}, "session_id"},
		{"session older than the window, end_time now", &crowdgatev1.SubmitRequest{SessionId: old.SessionId, RetryId: "c2", Reward: "0.01", EndTime: at(0)}, ""},
		{"end_time older than the window", &crowdgatev1.SubmitRequest{SessionId: fresh.SessionId, RetryId: "d", Reward: "0.01", EndTime: at(-13 * time.Hour)}, "end_time"},
		{"start_time older than the window", &crowdgatev1.SubmitRequest{SessionId: fresh.SessionId, RetryId: "e", Reward: "0.01", StartTime: at(-13 * time.Hour), EndTime: at(0)}, "start_time"},
		{"end_time far ahead of the clock", &crowdgatev1.SubmitRequest{SessionId: fresh.SessionId, RetryId: "f", Reward: "0.01", EndTime: at(2 * time.Hour)}, "end_time"},
		{"end_time a minute ahead", &crowdgatev1.SubmitRequest{SessionId: fresh.SessionId, RetryId: "g", Reward: "0.01", EndTime: at(time.Minute)}, ""},
		{"by pool and user with a retry_id and no time", &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: fresh.UserId, RetryId: "h", Reward: "0.01"}, "end_time"},
		{"by pool and user with a retry_id and end_time", &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: fresh.UserId, RetryId: "i", Reward: "0.01", EndTime: at(0)}, ""},
		{"by pool and user with a retry_id and start_time", &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: fresh.UserId, RetryId: "j", Reward: "0.01", StartTime: at(-time.Minute)}, ""},
		{"by pool and user without a retry_id", &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: fresh.UserId, Reward: "0.01"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Submit(f.ctx, tc.req)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Submit: %v, want accepted", err)
				}
				return
			}
			if field := invalidField(t, err); field != tc.field {
				t.Errorf("Submit: %v (field %q), want INVALID_ARGUMENT %s", err, field, tc.field)
			}
		})
	}
	if led := f.ledger(); led.Count != 7 {
		t.Errorf("Toloka paid %d submits, want the 7 accepted", led.Count)
	}

	// A replay of accepted work is answered while its key lives, even once
	// the work is older than the window.
	clock.Advance(20 * time.Hour)
	again, err := f.svc.Submit(f.ctx, &crowdgatev1.SubmitRequest{SessionId: fresh.SessionId, RetryId: "b", Reward: "0.01", EndTime: at(0)})
	if err != nil || !again.Replayed {
		t.Fatalf("replay 20h later (key alive): %v, replayed %v; want answered as a replay", err, again.GetReplayed())
	}
}

func TestTwoReplicasExpireEachSubmissionOnce(t *testing.T) {
	f, clock := retentionFixture(t)
	s := f.longSession(t, clock.Now())
	for i := range 300 {
		f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.01", RealTasksCount: ptr(int32(i))})
	}
	other := f.newService(func(c *Config) {
		c.Now = clock.Now
		c.Settings.Retention = 24 * time.Hour
	})
	clock.Advance(25 * time.Hour)
	got := make(chan int, 2)
	errs := make(chan error, 2)
	for _, svc := range []*Service{f.svc, other} {
		go func() {
			n, err := svc.expire(context.Background())
			got <- n
			errs <- err
		}()
	}
	total := <-got + <-got
	if err := errors.Join(<-errs, <-errs); err != nil {
		t.Fatal(err)
	}
	if total != 300 {
		t.Errorf("two replicas expired %d submissions together, want 300 (each once)", total)
	}
	for shard := range f.svc.knownShards() {
		if n, _ := f.redis.Client.ZCard(context.Background(), f.svc.st.indexKey(shard, tenant.Default, poolID)).Result(); n != 0 {
			t.Errorf("the pool index keeps %d entries in shard %d, want 0", n, shard)
		}
	}
	if tot := f.totals(); tot.Delivered != 300 || tot.RewardDelivered != "3.00" {
		t.Errorf("totals %v after expiry, want 300 delivered, 3.00", tot)
	}
}

func ptr[T any](v T) *T { return &v }

func TestReplicasWithDifferentRetentionsNeverPayAReplayTwice(t *testing.T) {
	// A rolling change of the retention: one replica deletes after 24h,
	// another (started later) keeps 72h and so would accept work of up to
	// 36h. Neither may take a replay whose key the other deleted for new.
	for _, tc := range []struct {
		name         string
		first, other time.Duration
	}{
		{"raised", 24 * time.Hour, 72 * time.Hour},
		{"lowered", 72 * time.Hour, 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := fakeclock.New(time.Now())
			f := newFixture(t, func(c *Config) { c.Now = clock.Now; c.Settings.Retention = tc.first })
			other := f.newService(func(c *Config) { c.Now = clock.Now; c.Settings.Retention = tc.other })
			start := clock.Now()
			req := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: "user-r", RetryId: "paid", Reward: "1.25", EndTime: timestamppb.New(start)}
			f.sim.SetUser("user-r", tolokasim.UserState{})
			if _, err := f.sim.CreateAssignment(f.tolokaPool, "user-r"); err != nil {
				t.Fatal(err)
			}
			f.submit(req)
			if _, err := other.expire(f.ctx); err != nil { // both replicas have said what they keep
				t.Fatal(err)
			}
			for _, hours := range []int{25, 30, 40, 73, 80} {
				clock.Advance(start.Add(time.Duration(hours) * time.Hour).Sub(clock.Now()))
				for _, svc := range []*Service{f.svc, other} {
					if _, err := svc.expire(f.ctx); err != nil {
						t.Fatal(err)
					}
				}
				for i, svc := range []*Service{f.svc, other} {
					resp, err := svc.Submit(f.ctx, req)
					if err == nil && !resp.Replayed {
						t.Fatalf("after %dh replica %d took the replay for new work (%s): paid twice", hours, i, resp.Submission.SubmissionId)
					}
				}
			}
			if led := f.ledger(); led.Count != 1 {
				t.Errorf("Toloka paid %d times, want once", led.Count)
			}
		})
	}
}

func TestSkewedSweeperNeverOpensAGap(t *testing.T) {
	// The shortest retention, a sweeping replica 20s ahead of the one that
	// answers the replay, and work dated 14s after the submit: the key
	// stays until the work itself is a retention old.
	clock := fakeclock.New(time.Now())
	f := newFixture(t, func(c *Config) { c.Now = clock.Now; c.Settings.Retention = MinRetention })
	ahead := f.newService(func(c *Config) {
		c.Now = func() time.Time { return clock.Now().Add(20 * time.Second) }
		c.Settings.Retention = MinRetention
	})
	start := clock.Now()
	s := f.longSession(t, start)
	req := &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "paid", Reward: "1.25", EndTime: timestamppb.New(start.Add(14 * time.Second))}
	f.submit(req)
	for step := range 90 {
		clock.Advance(time.Second)
		if _, err := ahead.expire(f.ctx); err != nil {
			t.Fatal(err)
		}
		resp, err := f.svc.Submit(f.ctx, req)
		if err == nil && !resp.Replayed {
			t.Fatalf("%ds after the submit the replay was taken for new work: paid twice", step+1)
		}
	}
	if led := f.ledger(); led.Count != 1 {
		t.Errorf("Toloka paid %d times, want once", led.Count)
	}
}

func TestDeadLettersStayUntilAnOperatorActs(t *testing.T) {
	f, clock := retentionFixture(t)
	dead := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: "stranger", RetryId: "refused", Reward: "0.50", EndTime: timestamppb.New(clock.Now())})
	if dead.Submission.GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD {
		t.Fatalf("want DEAD, got %s", dead.Submission.GetState())
	}
	clock.Advance(100 * time.Hour)
	if n, err := f.svc.expire(f.ctx); err != nil || n != 0 {
		t.Fatalf("expire: %d deleted, %v; want the dead letter kept", n, err)
	}
	if keys := f.submissionKeys(t, dead.Submission.SubmissionId, "refused"); len(keys) != 4 {
		t.Errorf("the dead letter has %v in Redis, want record, key, pool index and dead letters", keys)
	}
	if _, deadN, err := f.svc.PendingCount(f.ctx, tenant.Default, poolID); err != nil || deadN != 1 {
		t.Errorf("PendingCount dead = %d, %v; want 1", deadN, err)
	}
	// The operator retries it (Toloka now knows the Toloker): delivered,
	// and a retention after that, gone.
	f.sim.SetUser("stranger", tolokasim.UserState{})
	if _, err := f.sim.CreateAssignment(f.tolokaPool, "stranger"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: dead.Submission.SubmissionId}); err != nil {
		t.Fatal(err)
	}
	f.run(f.svc)
	f.waitTotals("the retried dead letter delivered", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })
	clock.Advance(25 * time.Hour)
	if n, err := f.svc.expire(f.ctx); err != nil || n != 1 {
		t.Fatalf("expire a retention after the delivery: %d, %v; want 1", n, err)
	}
	if tot := f.totals(); tot.Dead != 0 || tot.Delivered != 1 {
		t.Errorf("totals %v, want 1 delivered and no dead", tot)
	}
}

func TestAnIdleReplicaReadsTheRetentionsAgainBeforeItJudgesAReplay(t *testing.T) {
	// W (10m) has said its retention and gone quiet; D (1m) forgets it
	// after 10m and then deletes by 1m. W's next submit must judge by 1m,
	// not by what it read 11 minutes ago.
	clock := fakeclock.New(time.Now())
	f := newFixture(t, func(c *Config) { c.Now = clock.Now; c.Settings.Retention = 10 * time.Minute })
	d := f.newService(func(c *Config) { c.Now = clock.Now; c.Settings.Retention = time.Minute })
	w := f.svc
	t0 := clock.Now()
	s := f.longSession(t, t0)
	if _, err := w.expire(f.ctx); err != nil { // W says 10m
		t.Fatal(err)
	}
	clock.Advance(8 * time.Minute)
	req := &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "b", Reward: "0.75", EndTime: timestamppb.New(clock.Now())}
	if _, err := d.Submit(f.ctx, req); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Minute)
	if n, err := d.expire(f.ctx); err != nil || n != 1 {
		t.Fatalf("D's sweep 11m in: %d deleted, %v; want the submit (W has said nothing for 11m)", n, err)
	}
	resp, err := w.Submit(f.ctx, req)
	if err == nil && !resp.Replayed {
		t.Fatalf("W took the replay of a deleted key for new work: paid twice")
	}
	if field := invalidField(t, err); field != "end_time" {
		t.Errorf("W's answer: %v, want INVALID_ARGUMENT end_time (outside the 30s window)", err)
	}
	if led := f.ledger(); led.Count != 1 {
		t.Errorf("Toloka paid %d times, want once", led.Count)
	}
}

func TestExpiredJudgesDeliveryAndTheWorkTheWindowJudges(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := 24 * time.Hour
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	for _, tc := range []struct {
		name       string
		delivered  time.Duration
		withKey    bool
		start, end *timestamppb.Timestamp
		want       bool
	}{
		{"delivered a retention ago, no times", -25 * time.Hour, true, nil, nil, true},
		{"delivered too recently", -23 * time.Hour, true, nil, nil, false},
		{"work too recent (a far end_time)", -25 * time.Hour, true, nil, ts(time.Hour), false},
		{"the earlier time decides, as in the window", -25 * time.Hour, true, ts(-26 * time.Hour), ts(time.Hour), true},
		{"no retry_id: no key a replay could find", -25 * time.Hour, false, nil, ts(5 * 365 * 24 * time.Hour), true},
	} {
		if got := expired(now, r, now.Add(tc.delivered), tc.withKey, tc.start, tc.end); got != tc.want {
			t.Errorf("%s: expired = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPoolsFromBeforeThePoolsSetAreSweptOnceBackfilled: submissions of a
// pool that took no submit since the sweep's set of pools existed (seeded
// straight into Redis, as the version before left them) are deleted once
// their retention has passed, after the start's backfill lists the pool;
// the backfill runs once per Redis.
func TestPoolsFromBeforeThePoolsSetAreSweptOnceBackfilled(t *testing.T) {
	start := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := fakeclock.New(start)
	f := newFixture(t, func(c *Config) { c.Now = clock.Now; c.Settings.Retention = time.Hour })
	if err := SeedDelivered(f.ctx, f.redis.Client, f.redis.Prefix, tenant.Default, poolID, 40, start,
		func(i int, sub *crowdgatev1.Submission) { sub.Reward = "0.01" }); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	if n, err := f.svc.expire(f.ctx); err != nil || n != 0 {
		t.Fatalf("before the backfill the sweep deleted %d (%v): the pool is not in its set, want 0", n, err)
	}
	if err := f.svc.backfillPools(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := f.svc.expire(f.ctx); err != nil || n != 40 {
		t.Errorf("after the backfill the sweep deleted %d (%v), want the 40 expired submissions", n, err)
	}
	// Once per Redis: a second start finds the marker and scans nothing.
	if err := f.redis.Client.Del(f.ctx, f.svc.st.poolsKey(0)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.backfillPools(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.redis.Client.SCard(f.ctx, f.svc.st.poolsKey(0)).Result(); n != 0 {
		t.Errorf("the second backfill ran again: shard 0's set has %d pools", n)
	}
}
