package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestLocalBurstThenRate(t *testing.T) {
	clock := newFakeClock()
	l := NewLocal(LocalConfig{Now: clock.Now})
	lim := Limit{Name: "ip-192.0.2.1", Rate: 10, Per: time.Second, Burst: 3}
	for i := range 3 {
		if _, ok := l.Allow(lim); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	retry, ok := l.Allow(lim)
	if ok {
		t.Fatal("the 4th request of a burst of 3 was allowed")
	}
	if retry != 100*time.Millisecond {
		t.Errorf("retry after %v, want one interval (100ms)", retry)
	}
	// One interval later there is room for one, not two.
	clock.Advance(retry)
	if _, ok := l.Allow(lim); !ok {
		t.Error("refused after waiting the time Allow said")
	}
	if _, ok := l.Allow(lim); ok {
		t.Error("two allowed after one interval")
	}
	// Another key is not affected.
	if _, ok := l.Allow(Limit{Name: "ip-192.0.2.2", Rate: 10, Per: time.Second, Burst: 3}); !ok {
		t.Error("another key refused")
	}
	// A quiet period gives the whole burst back.
	clock.Advance(time.Second)
	for i := range 3 {
		if _, ok := l.Allow(lim); !ok {
			t.Fatalf("request %d after a quiet period refused", i+1)
		}
	}
}

func TestLocalAllOrNothing(t *testing.T) {
	clock := newFakeClock()
	l := NewLocal(LocalConfig{Now: clock.Now})
	ip := Limit{Name: "ip-a", Rate: 1, Per: time.Hour, Burst: 2}
	for _, asg := range []string{"asg-1", "asg-2"} {
		if _, ok := l.Allow(ip, Limit{Name: asg, Rate: 1, Per: time.Hour, Burst: 5}); !ok {
			t.Fatalf("landing on %s refused", asg)
		}
	}
	// The address is spent: a landing on a fresh assignment spends nothing.
	if _, ok := l.Allow(ip, Limit{Name: "asg-3", Rate: 1, Per: time.Hour, Burst: 1}); ok {
		t.Fatal("third landing from a spent address allowed")
	}
	if _, ok := l.Allow(Limit{Name: "asg-3", Rate: 1, Per: time.Hour, Burst: 1}); !ok {
		t.Error("a refused Allow spent the other limit's slot")
	}
	// Two limits on one key take two slots of it.
	same := Limit{Name: "k", Rate: 1, Per: time.Hour, Burst: 3}
	if _, ok := l.Allow(same, same); !ok {
		t.Fatal("refused")
	}
	if _, ok := l.Allow(same); !ok {
		t.Fatal("the third slot of a burst of 3 refused")
	}
	if _, ok := l.Allow(same); ok {
		t.Error("a fourth slot allowed: Allow(same, same) took one slot, not two")
	}
	if _, ok := l.Allow(Limit{Name: "k2", Rate: 1, Per: time.Hour, Burst: 3}, Limit{Name: "k2", Rate: 1, Per: time.Hour, Burst: 3},
		Limit{Name: "k2", Rate: 1, Per: time.Hour, Burst: 3}, Limit{Name: "k2", Rate: 1, Per: time.Hour, Burst: 3}); ok {
		t.Error("four slots of a burst of 3 taken in one call")
	}
}

func TestLocalKeepsAtMostMaxKeys(t *testing.T) {
	clock := newFakeClock()
	const maxKeys = 64 * 16
	l := NewLocal(LocalConfig{MaxKeys: maxKeys, Now: clock.Now})
	lim := func(i int) Limit { return Limit{Name: fmt.Sprintf("ip-%d", i), Rate: 1, Per: time.Hour, Burst: 2} }
	for i := range 20 * maxKeys {
		if _, ok := l.Allow(lim(i)); !ok {
			t.Fatalf("a new key (%d) was refused", i)
		}
		if i%97 == 0 {
			clock.Advance(time.Millisecond)
		}
	}
	if n := l.Len(); n > maxKeys {
		t.Errorf("%d keys kept, want at most %d", n, maxKeys)
	}
	// Keys whose burst is whole again cost nothing: after an hour, a
	// sweep drops them rather than forgetting a spent key.
	clock.Advance(2 * time.Hour)
	spent := Limit{Name: "spent", Rate: 1, Per: time.Hour, Burst: 1}
	l.Allow(spent)
	for i := range maxKeys / 4 { // room enough, once the expired are dropped
		l.Allow(lim(1_000_000 + i))
	}
	if _, ok := l.Allow(spent); ok {
		t.Error("a spent key was forgotten while expired ones could be dropped")
	}
	// The sweeps dropped the expired keys of every shard that took a new
	// key (about 63 of 64), not one key per insert.
	if n := l.Len(); n > maxKeys/2 {
		t.Errorf("%d keys kept after %d new ones over expired ones, want about %d", n, maxKeys/4+1, maxKeys/4+1)
	}
}

func TestLocalConcurrent(t *testing.T) {
	l := NewLocal(LocalConfig{})
	lim := Limit{Name: "shared", Rate: 1, Per: time.Hour, Burst: 100}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, ok := l.Allow(lim, Limit{Name: fmt.Sprintf("asg-%d-%d", g, i), Rate: 1, Per: time.Hour, Burst: 1}); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Errorf("%d allowed by a burst of 100 under 400 concurrent requests, want 100", allowed)
	}
}

func TestLockOrder(t *testing.T) {
	for _, tc := range []struct{ in, want []int }{
		{[]int{5, 3}, []int{3, 5}},
		{[]int{3, 3}, []int{3}},
		{[]int{9, 1, 9, 4}, []int{1, 4, 9}},
		{nil, []int{}},
	} {
		got := lockOrder(tc.in)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("lockOrder(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestLocalForgetsWholeKeysBeforeItIsFull: memory follows the keys in use,
// not every key ever seen up to MaxKeys. A landing per assignment adds a key
// per assignment; a long run with fewer assignments than MaxKeys grew the
// gateway for its whole length (crowdload's 2,000,000-submit soak).
func TestLocalForgetsWholeKeysBeforeItIsFull(t *testing.T) {
	clock := newFakeClock()
	l := NewLocal(LocalConfig{Now: clock.Now}) // the default MaxKeys, far from full
	lim := func(i int) Limit { return Limit{Name: fmt.Sprintf("asg-%d", i), Rate: 30, Per: time.Minute, Burst: 10} }
	for i := range 20_000 {
		l.Allow(lim(i))
	}
	if n := l.Len(); n != 20_000 {
		t.Fatalf("%d keys kept, want the 20,000 just used", n)
	}
	// Their bursts are whole again two seconds later: new keys landing in
	// every shard drop them.
	clock.Advance(3 * time.Second)
	for i := range 1000 {
		l.Allow(lim(1_000_000 + i))
	}
	if n := l.Len(); n > 1500 {
		t.Errorf("%d keys kept, want about the 1,000 in use (the 20,000 whole again dropped)", n)
	}
}
