package toloka

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// recordingLimiter records Wait calls and answers with err.
type recordingLimiter struct {
	mu    sync.Mutex
	calls []limiterCall
	err   error
}

type limiterCall struct {
	Key    string
	Limits []string
}

func (l *recordingLimiter) Wait(_ context.Context, key string, limits ...ratelimit.Limit) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := limiterCall{Key: key}
	for _, lim := range limits {
		c.Limits = append(c.Limits, lim.Name)
	}
	l.calls = append(l.calls, c)
	return l.err
}

func TestLimiterReservations(t *testing.T) {
	t.Parallel()
	lim := &recordingLimiter{}
	h := newHarness(t, func(c *Config) { c.Limiter = lim },
		tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", ""),
		reply(http.StatusCreated, `{"id":"1"}`),
		reply(http.StatusCreated, `{"id":"2"}`),
		okProject)
	ctx := context.Background()
	if _, err := h.account.CreateProject(ctx, &Project{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.account.CreatePool(ctx, &Pool{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.account.GetProject(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	key := h.account.Key()
	want := []limiterCall{
		{key, []string{"toloka-requests", "toloka-create-project-minute", "toloka-create-project-day"}},
		{key, []string{"toloka-requests"}}, // the retry after 429 counts once against creates
		{key, []string{"toloka-requests", "toloka-create-pool-minute", "toloka-create-pool-day"}},
		{key, []string{"toloka-requests"}},
	}
	if diff := cmp.Diff(want, lim.calls); diff != "" {
		t.Errorf("limiter calls (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(key, "toloka:production:") || containsSecret(key) {
		t.Errorf("account key %q: want a hash under toloka:production:", key)
	}
}

func TestLimiterRefusalSendsNothing(t *testing.T) {
	t.Parallel()
	lim := &recordingLimiter{err: &serviceerror.ResourceExhausted{Message: "rate limit reached", RetryAfter: 40 * time.Second}}
	h := newHarness(t, func(c *Config) { c.Limiter = lim })
	_, err := h.account.CreateProject(context.Background(), &Project{})
	var re *serviceerror.ResourceExhausted
	if !errors.As(err, &re) || re.RetryAfter != 40*time.Second {
		t.Fatalf("got %v, want ResourceExhausted after 40s", err)
	}
	if code := serviceerror.ToStatus(err).Code(); code != codes.ResourceExhausted {
		t.Errorf("code %s", code)
	}
	if n := len(h.fake.requests()); n != 0 {
		t.Errorf("%d requests reached Toloka, want 0", n)
	}
}

func TestLimiterFailureFailsOpen(t *testing.T) {
	t.Parallel()
	lim := &recordingLimiter{err: errors.New("redis: connection refused")}
	h := newHarness(t, func(c *Config) { c.Limiter = lim }, okProject)
	if _, err := h.account.GetProject(context.Background(), "7"); err != nil {
		t.Fatalf("got %v, want the call to proceed without the limiter", err)
	}
	if !strings.Contains(h.logs.String(), "rate limiter failed") {
		t.Errorf("no warning logged:\n%s", h.logs)
	}
}

func TestSharedRedisLimiter(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	clock := newTestClock()
	newLimiter := func() *ratelimit.Limiter {
		l, err := ratelimit.New(ratelimit.Config{Client: r.Client, Prefix: r.Prefix, Now: clock.Now, Sleep: clock.Sleep})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	limits := Limits{CreateProject: []ratelimit.Limit{
		{Name: "create-project-minute", Rate: 2, Per: time.Minute},
		{Name: "create-project-day", Rate: 3, Per: 24 * time.Hour},
	}}
	created := reply(http.StatusCreated, `{"id":"1"}`)
	// Two replicas (two Clients, two limiters) share one Redis.
	h1 := newHarness(t, func(c *Config) { c.Limiter, c.Limits = newLimiter(), limits }, created, created)
	h2 := newHarness(t, func(c *Config) { c.Limiter, c.Limits = newLimiter(), limits }, created)
	ctx := context.Background()
	var got []string
	for _, a := range []*Account{h1.account, h2.account, h2.account} {
		_, err := a.CreateProject(ctx, &Project{})
		got = append(got, retryAfterOf(err))
	}
	clock.Sleep(ctx, time.Minute)
	for _, a := range []*Account{h1.account, h2.account} {
		_, err := a.CreateProject(ctx, &Project{})
		got = append(got, retryAfterOf(err))
	}
	want := []string{"ok", "ok", "1m0s", "ok", "23h59m0s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if n := len(h1.fake.requests()) + len(h2.fake.requests()); n != 3 {
		t.Errorf("%d creates reached Toloka, want 3", n)
	}
}

func retryAfterOf(err error) string {
	if err == nil {
		return "ok"
	}
	var re *serviceerror.ResourceExhausted
	if errors.As(err, &re) {
		return re.RetryAfter.String()
	}
	return err.Error()
}
