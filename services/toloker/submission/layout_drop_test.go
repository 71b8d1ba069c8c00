package submission

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestAStaleWalkAtADropLeavesNoClaimALaterLayoutTakes: layouts
// r16 (A), r8 (B), r32 (G), r7 (Z), first said in that order. The r16
// replicas go first (A retires at +1h, is dropped at +2h); the r8 ones stop
// a little after A retired; r32 and r7 keep running.
//
// Just after A's drop a 7-shard replica (fresh view [r8]) accepts a
// retry_id: claim "fwd:z" in B's key, record in z. Within the same minute
// the platform resends to a 32-shard replica whose view is still [r16,
// r8] (stale, less than every() old): it walks A's key first, finds it
// empty and writes its own claim there, "fwd:a" (its shard under r32 is
// the same number as under r16), then follows B's claim to z and gets the
// replay. A's key now holds a self-claim that is no decision.
//
// B retires a few minutes later; the chain becomes [r8, r32], and r32's
// key for the retry_id is that very key. A resend of the same work (age
// ~15 minutes, inside the 30-minute window) walks B's key (fwd:z), then
// r32's key. With claims kept in the idempotency keys (the first design),
// "fwd:a" replaced z and accept.lua took a claim naming its own shard as
// empty: a second submission, paid twice (a review found it). Claim keys
// per layout instance leave r16's claims unread: one submission.
func TestAStaleWalkAtADropLeavesNoClaimALaterLayoutTakes(t *testing.T) {
	f := newHourly(t, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), -1)
	clock := f.clock
	a, b, g, z := f.replica(16), f.replica(8), f.replica(32), f.replica(7)
	f.inTurn(a, b, g, z)
	// A said last at +0; B keeps saying until +75m; G and Z throughout.
	f.minutes(72, b, g, z) // to +75m
	f.minutes(46, g, z)    // to +121m
	if v := f.view(g); len(v.chain) != 2 || v.chain[0] != "r16" || v.arbiter() != "r8" {
		t.Fatalf("at +121m the 32-shard view is %+v, want [r16 r8]", v)
	}
	retry := pickRetry(t, func(s func(string) int) bool {
		return s("r32") == s("r16") && s("r8") != s("r16") && s("r7") != s("r16") && s("r7") != s("r8")
	})
	// +121m30s: the 7-shard replica refreshes and drops r16.
	clock.Advance(30 * time.Second)
	if v := f.refresh(z); len(v.chain) != 1 || v.arbiter() != "r8" {
		t.Fatalf("after the drop the 7-shard view is %+v, want [r8]", v)
	}
	s := f.toloker(tolokasim.UserState{})
	req := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: retry, Reward: "0.10",
		EndTime: timestamppb.New(clock.Now().Add(-time.Second))}
	id1 := f.submitVia(z, req).GetSubmissionId()
	// The 32-shard replica's view is 30 s old: still [r16, r8].
	if v := f.view(g); v.chain[0] != "r16" {
		t.Fatalf("the 32-shard replica's cached view %+v, want it to still name r16", v)
	}
	if id := f.submitVia(g, req).GetSubmissionId(); id != id1 {
		t.Fatalf("resend through the stale view answered %s, want %s", id, id1)
	}
	// B (last said +75m) retires at +135m; the resend comes at +136m.
	f.minutes(15, g, z)
	if v := f.view(z); len(v.chain) != 2 || v.chain[0] != "r8" || v.arbiter() != "r32" {
		t.Fatalf("at +136m the view is %+v, want [r8 r32]", v)
	}
	got, err := z.Submit(f.ctx, req) // work ~15 minutes old: inside the 30-minute window
	if err != nil {
		t.Fatalf("resend at +136m: %v", err)
	}
	if id2 := got.GetSubmission().GetSubmissionId(); id2 != id1 {
		t.Errorf("retry_id %s accepted twice: %s, then %s 15 minutes later (a self-claim left in r16's key by a stale walk at its drop became r32's decision)",
			retry, id1, id2)
	}
	if tot := f.totals(); tot.Received != 1 {
		t.Errorf("the pool received %d submissions for one retry_id", tot.Received)
	}
	// Delivered: Toloka's ledger shows what was paid.
	f.run(z)
	f.waitTotals("every submission delivered", 20*time.Second, func(tot *crowdgatev1.PoolTotals) bool {
		return tot.Queued == 0 && tot.Delivered >= 1
	})
	tot := f.totals()
	led := f.ledger()
	t.Logf("after delivery: totals %v; Toloka ledger %d entries, %s (the emulator dedupes by retry_id itself)", tot, led.Count, led.RewardTotal)
	if tot.Delivered != 1 || tot.RewardDelivered != "0.10" {
		t.Errorf("Crowdgate counts %d delivered, %s paid out for one retry_id, want 1, 0.10", tot.Delivered, tot.RewardDelivered)
	}
	pay, err := z.TolokerPay(f.ctx, tenant.Default, []string{s.UserId})
	if err != nil {
		t.Fatal(err)
	}
	if p := pay[s.UserId]; p.Delivered != 1 || p.RewardDelivered != "0.10" {
		t.Errorf("the Toloker's pay counters: %+v, want 1 delivered, 0.10", p)
	}
	f.paidOnce([]string{retry})
}

// TestASubmitCutAtADropSettlesOnItsResend: layouts r16 (A), r8 (B), r32
// (G); the r16 replicas are gone, r8 and r32 run. Just before A is
// dropped an 8-shard replica (view [r16, r8]) walks the chain: it writes
// "fwd:b" in A's key (b its own shard, B's key is its target, so the
// accept would decide there), and its accept then fails (timeout, the
// process dies: the case layout.go says is safe, "its resend walks the
// same chain"). A is dropped. The platform resends to a 32-shard replica
// (view [r8]) whose shard for the retry_id is A's shard number a: it claims
// "fwd:a" in B's key. With claims kept in the idempotency keys (the first
// design), accept.lua at a found "fwd:b", at b "fwd:a", ... and every
// resend looped until the window refused it: a lost submission (a review
// found it). Now the resend is accepted, once.
func TestASubmitCutAtADropSettlesOnItsResend(t *testing.T) {
	f := newHourly(t, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), -1)
	clock := f.clock
	a, b, g := f.replica(16), f.replica(8), f.replica(32)
	f.inTurn(a, b, g)
	f.minutes(119, b, g) // to +121m
	retry := pickRetry(t, func(s func(string) int) bool {
		return s("r32") == s("r16") && s("r8") != s("r16")
	})
	if v := f.view(b); len(v.chain) != 2 || v.chain[0] != "r16" {
		t.Fatalf("at +121m the 8-shard view is %+v, want [r16 r8]", v)
	}
	// The 8-shard replica's submit: the chain walk, then its accept fails.
	p, err := b.place(f.ctx, tenant.Default, poolID, retry, false, clock.Now())
	if err != nil || p.replayOf != "" {
		t.Fatal(err, p.replayOf)
	}
	t.Logf("cut submit: target %d, claims %v", p.shard, p.claims)
	workEnd := clock.Now().Add(-time.Second)
	// 30 s later r16 is dropped; the resend reaches a 32-shard replica.
	clock.Advance(30 * time.Second)
	if v := f.refresh(g); len(v.chain) != 1 || v.arbiter() != "r8" {
		t.Fatalf("after the drop the 32-shard view is %+v, want [r8]", v)
	}
	s := f.toloker(tolokasim.UserState{})
	req := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: retry, Reward: "0.10",
		EndTime: timestamppb.New(workEnd)}
	var ok int
	for i, via := range []*Service{g, b, g, b} {
		if i == 1 {
			clock.Advance(time.Minute) // b's view is fresh too from now on
		}
		if _, err := via.Submit(f.ctx, req); err != nil {
			t.Errorf("resend %d through %d shards: %v", i, via.cfg.Shards, err)
			continue
		}
		ok++
	}
	if ok == 0 {
		t.Errorf("retry_id %s: no resend was ever accepted; the submission is lost", retry)
	}
	if tot := f.totals(); tot.Received != 1 {
		t.Errorf("the pool received %d submissions, want 1", tot.Received)
	}
}

// TestALayoutSaidLaterSortsLaterWhateverItsClock: the arbiter is the
// layout with the smallest f:<layout>. When f: was the caller's own clock
// (a third review found this), on a Redis with no layout of
// the rule before (a fresh system), a 16-shard replica says r16 first and
// its view is [r16]. Half a second later a 32-shard replica whose clock is
// one second behind (or whose call, made with an earlier now, arrives
// later) says r32 with an f: before r16's: its view is [r32]. The two
// replicas had disjoint chains for up to every() (a minute): each decided
// a retry_id alone in its own shard, so the platform's resend of one submit
// was accepted twice. A layout said for the first time now sorts after
// every layout known: one submission.
func TestALayoutSaidLaterSortsLaterWhateverItsClock(t *testing.T) {
	h := newHourly(t, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), -1)
	clock := h.clock
	b := h.replica(16)
	c := h.fixture.replica(32, func(cfg *Config) {
		h.config(cfg)
		cfg.Now = func() time.Time { return clock.Now().Add(-time.Second) } // 1 s behind
	})
	if v := h.view(b); v.arbiter() != "r16" {
		t.Fatalf("the first layout said is %s, want r16", v.arbiter())
	}
	clock.Advance(500 * time.Millisecond)
	vc, err := c.retentions.layout(h.ctx, c.now())
	if err != nil {
		t.Fatal(err)
	}
	vb := h.view(b) // cached: said 0.5 s ago
	t.Logf("16-shard view %v, 32-shard view %v", vb.chain, vc.chain)
	retry := pickRetry(t, func(s func(string) int) bool { return s("r16") != s("r32") })
	s := h.toloker(tolokasim.UserState{})
	req := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: retry, Reward: "0.10",
		EndTime: timestamppb.New(clock.Now().Add(-5 * time.Second))}
	id1 := h.submitVia(b, req).GetSubmissionId()
	clock.Advance(2 * time.Second) // the platform resends, to the other replica
	id2 := h.submitVia(c, req).GetSubmissionId()
	if id1 != id2 {
		t.Errorf("retry_id %s accepted twice: %s by the 16-shard replica (chain %v), %s by the 32-shard one (chain %v)",
			retry, id1, vb.chain, id2, vc.chain)
	}
	if tot := h.totals(); tot.Received != 1 {
		t.Errorf("the pool received %d submissions for one retry_id", tot.Received)
	}
}
