package submission

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// pickRetry finds a retry_id whose shards under the given layouts satisfy ok.
func pickRetry(t *testing.T, ok func(shard func(layout string) int) bool) string {
	t.Helper()
	for i := range 100000 {
		r := fmt.Sprintf("rv-%d", i)
		if ok(func(l string) int { return shardOfRetry(l, tenant.Default, poolID, r) }) {
			return r
		}
	}
	t.Fatal("no retry_id fits")
	return ""
}

// TestARetiredArbiterStillDecidesWhileTwoLayoutsRun: 16 -> 32 -> 7. The
// r16 replicas are gone; r32 and r7 replicas both run. A 7-shard replica
// accepts a retry_id just before r16 is retired (claim "fwd:s7" in the r16
// shard, idempotency key in s7). The platform resends it just after, to a
// 32-shard replica, now the arbiter: the retired r16 still decides first
// (the handover), so the resend is the same submission. (A review found
// the double payment when r16 was simply forgotten.)
func TestARetiredArbiterStillDecidesWhileTwoLayoutsRun(t *testing.T) {
	f := newHourly(t, time.Now(), -1)
	clock, say := f.clock, f.view
	a, b, c := f.replica(16), f.replica(32), f.replica(7)
	f.inTurn(a, b, c) // a: the 16-shard fleet; then it is replaced
	// b and c keep saying their layouts; a says nothing any more.
	f.minutes(56, b, c)
	retry := pickRetry(t, func(s func(string) int) bool {
		return s("r7") != s("r16") && s("r32") != s("r7") && s("r32") != s("r16")
	})
	s := f.toloker(tolokasim.UserState{})
	req := func() *crowdgatev1.SubmitRequest {
		return &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: retry, Reward: "0.10",
			EndTime: timestamppb.New(clock.Now().Add(-time.Second))}
	}
	first := req()
	if v := say(c); v.arbiter() != "r16" {
		t.Fatalf("before the switch the arbiter is %s, want r16", v.arbiter())
	}
	id1 := f.submitVia(c, first).GetSubmissionId()
	// The platform resends (same request, same end_time) three minutes later.
	clock.Advance(3 * time.Minute)
	if v := say(b); v.arbiter() != "r32" {
		t.Fatalf("after the switch the arbiter is %s, want r32", v.arbiter())
	}
	first.Reward = "0.10"
	id2 := f.submitVia(b, first).GetSubmissionId()
	if id1 != id2 {
		t.Errorf("retry_id %s accepted twice: %s by the 7-shard replica, %s by the 32-shard one after r16 retired", retry, id1, id2)
	}
	if tot := f.totals(); tot.Received != 1 {
		t.Errorf("the pool received %d submissions for one retry_id", tot.Received)
	}
}

// TestTheOldRuleHandsOverWhileACanaryRuns: the "p16" arbiter seeded at the
// upgrade is never said again, so it is retired one retention after the
// upgrade whatever runs then. With a 32-shard canary next to the 16-shard
// fleet, a retry_id the canary accepted before that (claim "fwd:s32" in
// the p16 key, record in s32) and replayed after it to a 16-shard replica
// (whose own layout now arbitrates) is the same submission: p16 still
// decides first during the handover.
func TestTheOldRuleHandsOverWhileACanaryRuns(t *testing.T) {
	f := newHourly(t, time.Now(), -1)
	clock, say := f.clock, f.view
	legacy := f.replica(16)
	legacy.retentions.ownLayout = legacyLayout
	legacy.retentions.layoutKey = f.redis.Prefix + "not-the-layout-hash"
	s := f.toloker(tolokasim.UserState{})
	req := func(retry string) *crowdgatev1.SubmitRequest {
		return &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: retry, Reward: "0.10",
			EndTime: timestamppb.New(clock.Now().Add(-time.Second))}
	}
	f.submitVia(legacy, req("old-version-work")) // streams of the rule before
	fleet, canary := f.replica(16), f.replica(32)
	if v := say(fleet); v.arbiter() != legacyLayout {
		t.Fatalf("arbiter after the upgrade %s, want p16", v.arbiter())
	}
	say(canary)
	f.minutes(40, fleet, canary)
	retry := pickRetry(t, func(s func(string) int) bool {
		return s("r32") != s(legacyLayout) && s("r16") != s("r32")
	})
	r1 := req(retry)
	id1 := f.submitVia(canary, r1).GetSubmissionId() // 40 min after the upgrade
	f.minutes(21, fleet, canary)                     // p16 retired at upgrade + 1h
	if v := say(fleet); v.arbiter() != "r16" {
		t.Fatalf("arbiter a retention after the upgrade: %s, want r16", v.arbiter())
	}
	// The work is 21 minutes old, inside the 30-minute replay window.
	id2 := f.submitVia(fleet, r1).GetSubmissionId()
	if id1 != id2 {
		t.Errorf("retry_id %s accepted twice: %s by the canary, %s by a 16-shard replica after p16 retired", retry, id1, id2)
	}
}

// TestAStaleViewAtTheHandoverStillPaysOnce: replicas learn that the
// arbiter changed up to every() (a minute) apart. Just after r16 retires a
// 32-shard replica with a fresh view accepts a retry_id; a second later the
// replay reaches a 7-shard replica whose view (32 s old) still names r16
// alone: both went through r16's key first, so it is one submission.
func TestAStaleViewAtTheHandoverStillPaysOnce(t *testing.T) {
	f := newHourly(t, time.Now(), -1)
	clock, say := f.clock, f.view
	a, b, c := f.replica(16), f.replica(32), f.replica(7)
	f.inTurn(a, b, c)
	f.minutes(57, b, c)
	// c's last refresh at t0+59m30s (its view names r16, rightly then).
	clock.Advance(30 * time.Second)
	if err := c.retentions.refresh(f.ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Second)
	if v := say(b); v.arbiter() != "r32" { // b refreshes at t0+60m01s
		t.Fatalf("b's arbiter %s, want r32", v.arbiter())
	}
	retry := pickRetry(t, func(s func(string) int) bool {
		return s("r7") != s("r16") && s("r32") != s("r7") && s("r32") != s("r16")
	})
	s := f.toloker(tolokasim.UserState{})
	r1 := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: retry, Reward: "0.10",
		EndTime: timestamppb.New(clock.Now().Add(-time.Second))}
	id1 := f.submitVia(b, r1).GetSubmissionId()
	clock.Advance(time.Second)
	if v := say(c); v.arbiter() != "r16" {
		t.Fatalf("c's cached arbiter %s, want r16 (stale)", v.arbiter())
	}
	id2 := f.submitVia(c, r1).GetSubmissionId()
	if id1 != id2 {
		t.Errorf("retry_id %s accepted twice a second apart: %s (fresh view), %s (stale view)", retry, id1, id2)
	}
}

// TestTheSweepDeletesAClaimWithItsSubmission: a submission accepted through
// a claim in the arbiter's shard keeps its claim until the retention sweep
// deletes the submission, then both go (and its replay is refused by the
// window, never paid again).
func TestTheSweepDeletesAClaimWithItsSubmission(t *testing.T) {
	f := newHourly(t, time.Now(), 5*time.Second)
	clock := f.clock
	old, grown := f.replica(16), f.replica(32)
	f.view(old)
	f.view(grown)
	retry := pickRetry(t, func(s func(string) int) bool { return s("r16") != s("r32") })
	arbiter := shardOfRetry("r16", tenant.Default, poolID, retry)
	claim := grown.st.claimKey(arbiter, f.view(grown).instances[0], tenant.Default, poolID, retry)
	s := f.toloker(tolokasim.UserState{})
	req := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: retry, Reward: "0.10",
		EndTime: timestamppb.New(clock.Now().Add(-time.Second))}
	sub := f.submitVia(grown, req)
	if sub.GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
		t.Fatalf("submission %s, want delivered inline", sub.GetState())
	}
	if got, _ := f.redis.Client.Get(f.ctx, claim).Result(); got != forwardPrefix+strconv.Itoa(shardOfRetry("r32", tenant.Default, poolID, retry)) {
		t.Fatalf("the arbiter's claim key holds %q, want the claim naming the 32-shard layout's shard", got)
	}
	clock.Advance(time.Hour + time.Minute)
	if n, err := grown.expire(f.ctx); err != nil || n != 1 {
		t.Fatalf("expire deleted %d (%v), want the one submission", n, err)
	}
	if n, _ := f.redis.Client.Exists(f.ctx, claim).Result(); n != 0 {
		t.Error("the claim outlived its submission")
	}
	_, err := old.Submit(f.ctx, req)
	if field := invalidField(t, err); field != "end_time" {
		t.Errorf("the replay after expiry was refused naming %q, want end_time", field)
	}
	if led := f.ledger(); led.Count != 1 {
		t.Errorf("Toloka paid %d submits, want 1", led.Count)
	}
}

// TestAClaimLivesAsLongAsItsUnpaidSubmission: a submission accepted through
// a claim and still queued (Toloka down, no worker) long after the claim's
// TTL (4 retentions) is still found by a resend through any replica: the
// retention sweep renews the claims of submissions not yet delivered. (A
// review found the resend refused as stale work once the claim expired.)
func TestAClaimLivesAsLongAsItsUnpaidSubmission(t *testing.T) {
	h := newHourly(t, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), -1)
	if h.redis.Mini == nil {
		t.Skip("needs miniredis to move Redis's clock past the claim's TTL")
	}
	old, grown := h.replica(16), h.replica(32)
	h.view(old)
	h.view(grown)
	retry := pickRetry(t, func(s func(string) int) bool { return s("r16") != s("r32") })
	s := h.toloker(tolokasim.UserState{})
	req := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: retry, Reward: "0.10",
		EndTime: timestamppb.New(h.clock.Now().Add(-time.Second))}
	id := h.submitVia(grown, req).GetSubmissionId() // the claim is in r16's key
	// Six hours, queued all along; both replicas say their layouts and
	// sweep every minute.
	for range 6 * 60 {
		h.clock.Advance(time.Minute)
		h.redis.Mini.FastForward(time.Minute)
		for _, r := range []*Service{old, grown} {
			h.view(r)
			if _, err := r.expire(h.ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, via := range []*Service{old, grown} {
		resp, err := via.Submit(h.ctx, req)
		if err != nil {
			t.Fatalf("the resend through %d shards, 6 h later (still queued): %v; want the queued submission", via.cfg.Shards, err)
		}
		if got := resp.GetSubmission().GetSubmissionId(); got != id {
			t.Errorf("the resend through %d shards answered %s, want %s", via.cfg.Shards, got, id)
		}
	}
}
