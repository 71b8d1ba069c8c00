package catalog

import (
	"context"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// A turn is the first caller's until it ends; the first caller's call sent
// twice (its reply lost, as in a Redis restart) still takes it, so the job
// it guards is not skipped by every replica for an interval.
func TestATurnTakenByACallSentTwiceIsTaken(t *testing.T) {
	ctx := context.Background()
	r := redistest.New(t)
	resend := &redistest.Resend{Script: redistest.ScriptOf(turnLua), Once: true}
	first := New(r.HookedClient(t, resend), r.Prefix, nil, nil, nil, nil)
	other := New(r.Client, r.Prefix, nil, nil, nil, nil)
	if ok, err := first.TakeTurn(ctx, "pools:acme", time.Hour); err != nil || !ok || !resend.Done() {
		t.Fatalf("TakeTurn sent twice (%v) = %v, %v; want the turn taken", resend.Done(), ok, err)
	}
	if ok, err := other.TakeTurn(ctx, "pools:acme", time.Hour); err != nil || ok {
		t.Errorf("another caller's TakeTurn during the turn = %v, %v; want it refused", ok, err)
	}
	if ok, err := other.TakeTurn(ctx, "pools:globex", time.Hour); err != nil || !ok {
		t.Errorf("another turn's TakeTurn = %v, %v; want it taken", ok, err)
	}
}
