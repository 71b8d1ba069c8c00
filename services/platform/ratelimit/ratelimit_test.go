package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// fakeClock is a settable clock whose Sleep advances it instead of sleeping.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)) }

func newLimiter(t *testing.T, r *redistest.Redis, clock *fakeClock, maxWait time.Duration) *Limiter {
	t.Helper()
	l, err := New(Config{Client: r.Client, Prefix: r.Prefix, MaxWait: maxWait, Now: clock.Now, Sleep: clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// outcome is what one Wait call did, in a form cmp can compare.
type outcome struct {
	OK         bool
	RetryAfter time.Duration
	Slept      time.Duration
}

func waitOutcome(t *testing.T, l *Limiter, clock *fakeClock, key string, limits ...Limit) outcome {
	t.Helper()
	before := len(clock.Sleeps())
	err := l.Wait(context.Background(), key, limits...)
	var slept time.Duration
	for _, d := range clock.Sleeps()[before:] {
		slept += d
	}
	if err == nil {
		return outcome{OK: true, Slept: slept}
	}
	var re *serviceerror.ResourceExhausted
	if !errors.As(err, &re) {
		t.Fatalf("Wait: %v, want nil or ResourceExhausted", err)
	}
	return outcome{RetryAfter: re.RetryAfter, Slept: slept}
}

func TestSlidingWindow(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	l := newLimiter(t, r, clock, time.Second)
	perMinute := Limit{Name: "create-minute", Rate: 3, Per: time.Minute}

	var got []outcome
	for range 3 {
		got = append(got, waitOutcome(t, l, clock, "acct", perMinute))
		clock.Advance(10 * time.Second)
	}
	// Three slots were taken at 0s, 10s and 20s; at 30s the next frees at 60s.
	got = append(got, waitOutcome(t, l, clock, "acct", perMinute))
	clock.Advance(29*time.Second + 500*time.Millisecond) // 59.5s: within MaxWait of 60s
	got = append(got, waitOutcome(t, l, clock, "acct", perMinute))
	// The waited-for slot is at 60s; the clock is at 60s now. The next frees at 70s.
	got = append(got, waitOutcome(t, l, clock, "acct", perMinute))
	// Another key is independent.
	got = append(got, waitOutcome(t, l, clock, "other", perMinute))

	want := []outcome{
		{OK: true}, {OK: true}, {OK: true},
		{RetryAfter: 30 * time.Second},
		{OK: true, Slept: 500 * time.Millisecond},
		{RetryAfter: 10 * time.Second},
		{OK: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

func TestGCRA(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		maxWait time.Duration
		want    []outcome
	}{
		{
			name:    "waits for short slots",
			maxWait: time.Second,
			// 10/s with a burst of 2: two at once, then one every 100ms.
			want: []outcome{{OK: true}, {OK: true}, {OK: true, Slept: 100 * time.Millisecond}, {OK: true, Slept: 100 * time.Millisecond}},
		},
		{
			name:    "refuses slots beyond MaxWait",
			maxWait: 50 * time.Millisecond,
			want:    []outcome{{OK: true}, {OK: true}, {RetryAfter: 100 * time.Millisecond}, {RetryAfter: 100 * time.Millisecond}},
		},
		{
			name:    "negative MaxWait never waits",
			maxWait: -1,
			want:    []outcome{{OK: true}, {OK: true}, {RetryAfter: 100 * time.Millisecond}, {RetryAfter: 100 * time.Millisecond}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			clock := newFakeClock()
			l := newLimiter(t, r, clock, tc.maxWait)
			rate := Limit{Name: "requests", Rate: 10, Per: time.Second, Burst: 2}
			var got []outcome
			for range len(tc.want) {
				got = append(got, waitOutcome(t, l, clock, "acct", rate))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGCRARecovers(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	l := newLimiter(t, r, clock, -1)
	rate := Limit{Name: "requests", Rate: 4, Per: time.Second, Burst: 4}
	for i := range 4 {
		if o := waitOutcome(t, l, clock, "acct", rate); !o.OK {
			t.Fatalf("reservation %d refused: %+v", i, o)
		}
	}
	if o := waitOutcome(t, l, clock, "acct", rate); o.OK || o.RetryAfter != 250*time.Millisecond {
		t.Fatalf("fifth reservation: %+v, want refusal with RetryAfter 250ms", o)
	}
	clock.Advance(time.Second) // fully idle again: the whole burst is back
	for i := range 4 {
		if o := waitOutcome(t, l, clock, "acct", rate); !o.OK {
			t.Fatalf("after a second, reservation %d refused: %+v", i, o)
		}
	}
}

func TestAllOrNothing(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	l := newLimiter(t, r, clock, -1)
	minute := Limit{Name: "minute", Rate: 5, Per: time.Minute}
	day := Limit{Name: "day", Rate: 2, Per: 24 * time.Hour}

	// Use up the day limit.
	for range 2 {
		if o := waitOutcome(t, l, clock, "acct", minute, day); !o.OK {
			t.Fatalf("refused early: %+v", o)
		}
	}
	clock.Advance(time.Hour)
	// Both limits asked together: the day limit refuses, and must not take a
	// slot from the minute limit.
	for range 5 {
		o := waitOutcome(t, l, clock, "acct", minute, day)
		if want := 23 * time.Hour; o.OK || o.RetryAfter != want {
			t.Fatalf("got %+v, want refusal with RetryAfter %s", o, want)
		}
	}
	// The minute limit alone still has all five slots (two taken an hour ago
	// have expired), so the refusals above reserved nothing.
	for i := range 5 {
		if o := waitOutcome(t, l, clock, "acct", minute); !o.OK {
			t.Fatalf("minute slot %d refused: %+v (refusals leaked reservations)", i, o)
		}
	}
	if o := waitOutcome(t, l, clock, "acct", minute); o.OK {
		t.Fatalf("sixth minute slot granted")
	}
}

func TestRefusalNamesTightestLimit(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	l := newLimiter(t, r, clock, -1)
	rate := Limit{Name: "requests", Rate: 100, Per: time.Second, Burst: 10}
	minute := Limit{Name: "create-minute", Rate: 1, Per: time.Minute}
	day := Limit{Name: "create-day", Rate: 1, Per: 24 * time.Hour}
	if err := l.Wait(context.Background(), "acct", rate, minute, day); err != nil {
		t.Fatal(err)
	}
	err := l.Wait(context.Background(), "acct", rate, minute, day)
	var re *serviceerror.ResourceExhausted
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	want := &serviceerror.ResourceExhausted{Message: "rate limit reached (create-day: 1 per 24h0m0s)", RetryAfter: 24 * time.Hour}
	if diff := cmp.Diff(want, re); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if got := serviceerror.ToStatus(err).Code().String(); got != "ResourceExhausted" {
		t.Errorf("gRPC code %s, want ResourceExhausted", got)
	}
}

func TestReplicasShareBudget(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	a := newLimiter(t, r, clock, -1)
	b := newLimiter(t, r, clock, -1)
	limit := Limit{Name: "create-minute", Rate: 4, Per: time.Minute}
	var got []bool
	for _, l := range []*Limiter{a, b, a, b, a, b} {
		got = append(got, waitOutcome(t, l, clock, "acct", limit).OK)
	}
	want := []bool{true, true, true, true, false, false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("granted (-want +got):\n%s", diff)
	}
}

func TestConcurrentReservationsNeverExceedRate(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	// Two "replicas", many goroutines each, racing for 20 window slots and a
	// GCRA burst of 30.
	replicas := []*Limiter{newLimiter(t, r, clock, -1), newLimiter(t, r, clock, -1)}
	tests := []struct {
		name  string
		limit Limit
		want  int64
	}{
		{"window", Limit{Name: "w", Rate: 20, Per: time.Minute}, 20},
		{"gcra", Limit{Name: "g", Rate: 1, Per: time.Hour, Burst: 30}, 30},
	}
	for _, tc := range tests {
		var granted atomic.Int64
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				if err := replicas[i%2].Wait(context.Background(), "acct", tc.limit); err == nil {
					granted.Add(1)
				}
			})
		}
		wg.Wait()
		if got := granted.Load(); got != tc.want {
			t.Errorf("%s: %d reservations granted, want %d", tc.name, got, tc.want)
		}
	}
}

func TestDeadlineShorterThanWaitReservesNothing(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	l := newLimiter(t, r, clock, time.Hour)
	limit := Limit{Name: "window", Rate: 1, Per: 10 * time.Minute}
	if err := l.Wait(context.Background(), "acct", limit); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := l.Wait(ctx, "acct", limit)
	var re *serviceerror.ResourceExhausted
	if !errors.As(err, &re) || re.RetryAfter != 10*time.Minute {
		t.Fatalf("got %v, want ResourceExhausted after 10m", err)
	}
	if got := clock.Sleeps(); len(got) != 0 {
		t.Errorf("slept %v, want no sleep", got)
	}
	// Without the deadline the slot 10 minutes out is within MaxWait: it is
	// reserved and waited for, which shows the refusal above reserved nothing.
	if o := waitOutcome(t, l, clock, "acct", limit); !o.OK || o.Slept != 10*time.Minute {
		t.Errorf("got %+v, want a 10m wait", o)
	}
}

func TestCanceledDuringSleep(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := New(Config{
		Client: r.Client, Prefix: r.Prefix, Now: clock.Now,
		Sleep: func(context.Context, time.Duration) error { cancel(); return context.Canceled },
	})
	if err != nil {
		t.Fatal(err)
	}
	limit := Limit{Name: "g", Rate: 10, Per: time.Second, Burst: 1}
	if err := l.Wait(ctx, "acct", limit); err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(ctx, "acct", limit); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestServerClock(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	if r.Mini != nil {
		r.Mini.SetTime(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC))
	}
	l, err := New(Config{Client: r.Client, Prefix: r.Prefix, MaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	limit := Limit{Name: "day", Rate: 2, Per: 24 * time.Hour}
	for range 2 {
		if err := l.Wait(context.Background(), "acct", limit); err != nil {
			t.Fatal(err)
		}
	}
	err = l.Wait(context.Background(), "acct", limit)
	var re *serviceerror.ResourceExhausted
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	if re.RetryAfter <= 23*time.Hour || re.RetryAfter > 24*time.Hour {
		t.Errorf("RetryAfter %s, want just under 24h", re.RetryAfter)
	}
}

func TestKeysUseHashTagAndExpire(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newFakeClock()
	l := newLimiter(t, r, clock, -1)
	if err := l.Wait(context.Background(), "toloka:sandbox:abc",
		Limit{Name: "requests", Rate: 300, Per: time.Second, Burst: 20},
		Limit{Name: "create-day", Rate: 100, Per: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"requests", "create-day"} {
		key := r.Prefix + "{toloka:sandbox:abc}:" + name
		ttl, err := r.Client.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > 24*time.Hour+2*time.Second {
			t.Errorf("%s: TTL %s, want a positive TTL no longer than the window", key, ttl)
		}
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := newLimiter(t, r, newFakeClock(), 0)
	ok := Limit{Name: "x", Rate: 1, Per: time.Second}
	tests := []struct {
		name   string
		key    string
		limits []Limit
	}{
		{"empty key", "", []Limit{ok}},
		{"key with brace", "a}b", []Limit{ok}},
		{"no name", "k", []Limit{{Rate: 1, Per: time.Second}}},
		{"zero rate", "k", []Limit{{Name: "x", Per: time.Second}}},
		{"zero period", "k", []Limit{{Name: "x", Rate: 1}}},
		{"negative burst", "k", []Limit{{Name: "x", Rate: 1, Per: time.Second, Burst: -1}}},
		{"duplicate name", "k", []Limit{ok, ok}},
		{"brace in name", "k", []Limit{{Name: "{x}", Rate: 1, Per: time.Second}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := l.Wait(context.Background(), tc.key, tc.limits...); err == nil {
				t.Error("Wait succeeded, want an error")
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a client succeeded")
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	if r.Mini == nil {
		t.Skip("needs miniredis to stop the server")
	}
	// A client that does not retry, so the test does not wait out backoffs.
	c := redis.NewClient(&redis.Options{Addr: r.Mini.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	l, err := New(Config{Client: c, Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	r.Mini.Close()
	err = l.Wait(context.Background(), "acct", Limit{Name: "x", Rate: 1, Per: time.Second})
	var un *serviceerror.Unavailable
	if !errors.As(err, &un) {
		t.Fatalf("got %v, want Unavailable", err)
	}
}
