package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// TestAWindowReservationResentAfterALostReplySpendsOneSlot: go-redis sends
// a script again when its reply is lost after Redis ran it. A sliding
// window's reservation run twice spends one slot and is granted: on the
// window's last slot the resend used to find its own entry, answer
// RESOURCE_EXHAUSTED to a CreateProject that had its slot, and keep the
// slot (found by the Toloker-side review, revC).
func TestAWindowReservationResentAfterALostReplySpendsOneSlot(t *testing.T) {
	for _, rate := range []int{1, 2} {
		r := redistest.New(t)
		clock := newFakeClock()
		resend := &redistest.Resend{Script: redistest.ScriptOf(reserveLua + "return crowdgate_reserve(KEYS, ARGV, 1)\n"), Once: true}
		l, err := New(Config{Client: r.HookedClient(t, resend), Prefix: r.Prefix, MaxWait: -1, Now: clock.Now, Sleep: clock.Sleep})
		if err != nil {
			t.Fatal(err)
		}
		limit := Limit{Name: "create-project-minute", Rate: rate, Per: time.Minute}
		for i := 1; i <= rate; i++ {
			if err := l.Wait(context.Background(), "acct", limit); err != nil {
				t.Errorf("%d/m: call %d (the first one's reply was lost and resent): %v", rate, i, err)
			}
		}
		if !resend.Done() {
			t.Fatal("nothing was resent")
		}
		if err := l.Wait(context.Background(), "acct", limit); err == nil {
			t.Errorf("%d/m: call %d granted: the window has %d slots", rate, rate+1, rate)
		}
	}
}
