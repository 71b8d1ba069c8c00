package landing_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

var ctx = context.Background()

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       20 * time.Second,
}

type answer struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// serveLanding serves a landing for env at /start.
func serveLanding(t *testing.T, env *sessiontest.Env, adjust func(*landing.Config)) string {
	t.Helper()
	cfg := landing.Config{Sessions: env.Sessions, Log: slog.New(slog.DiscardHandler)}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := landing.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /start", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/start"
}

func limiter(t *testing.T, env *sessiontest.Env) *ratelimit.Limiter {
	t.Helper()
	l, err := ratelimit.New(ratelimit.Config{Client: env.LandingRedis, Prefix: env.Redis.Prefix + "ratelimit:", MaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func poolHex(tolokaPoolID string) string {
	n, _ := strconv.ParseUint(tolokaPoolID, 10, 64)
	s := strconv.FormatUint(n, 16)
	return strings.Repeat("0", 10-len(s)) + s
}

// checkPage checks an HTML error page: status, title, headers, no leaks.
func checkPage(t *testing.T, a answer, status int, title string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status %d, want %d; body %s", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.Contains(a.body, "<title>"+title+"</title>") {
		t.Errorf("page %q lacks title %q", a.body, title)
	}
	if loc := a.header.Get("Location"); loc != "" {
		t.Errorf("an error page redirects to %q", loc)
	}
	for _, leak := range []string{"goroutine", "panic", ".go:", "redis", "toloka:", "assignment_id"} {
		if strings.Contains(strings.ToLower(a.body), leak) {
			t.Errorf("page shows %q: %s", leak, a.body)
		}
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Cache-Control"} {
		if a.header.Get(h) == "" {
			t.Errorf("page without %s", h)
		}
	}
}

func TestRedirectsToThePlatformWithACode(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{PlatformURL: "https://platform.example/toloka?src=crowdgate"})
	start := serveLanding(t, env, func(c *landing.Config) { c.Limiter = limiter(t, env) })
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")

	// Toloka may add parameters; none of them steers the redirect or the user.
	q := url.Values{"assignment_id": {aid}, "user_id": {"mallory"}, "redirect_url": {"https://evil.example/"},
		"platform_url": {"https://evil.example/"}, "next": {"//evil.example"}, "code": {"x"}}
	a := get(t, noRedirects, start+"?"+q.Encode())
	if a.status != http.StatusSeeOther {
		t.Fatalf("status %d, want 303; body %s", a.status, a.body)
	}
	loc, err := url.Parse(a.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Scheme != "https" || loc.Host != "platform.example" || loc.Path != "/toloka" || loc.Query().Get("src") != "crowdgate" {
		t.Errorf("redirected to %s, want the project's platform URL", loc)
	}
	code := loc.Query().Get("code")
	if code == "" || code == "x" || len(loc.Query()) != 2 {
		t.Errorf("redirect query %v, want src and a fresh code only", loc.Query())
	}
	if a.header.Get("Cache-Control") != "no-store" || a.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("redirect headers %v", a.header)
	}
	if strings.Count(code, ".") == 2 || strings.HasPrefix(code, "ey") {
		t.Errorf("the redirect carries a JWT, not a code: %s", code)
	}
	resp, err := env.Sessions.Exchange(ctx, tenant.Default, code)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSession().GetUserId() != "toloker-1" {
		t.Errorf("session of %q, want Toloka's toloker-1", resp.GetSession().GetUserId())
	}
	// A reload: same session, new code, Toloka not asked again.
	b := get(t, noRedirects, start+"?assignment_id="+aid)
	loc2, _ := url.Parse(b.header.Get("Location"))
	if b.status != http.StatusSeeOther || loc2.Query().Get("code") == code {
		t.Errorf("reload: %d %s", b.status, b.header.Get("Location"))
	}
	if n := env.AssignmentGets(aid); n != 1 {
		t.Errorf("Toloka asked %d times", n)
	}
}

func TestErrorPages(t *testing.T) {
	simClock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Sim: func(c *tolokasim.Config) { c.Now = simClock.Now }})
	start := serveLanding(t, env, func(c *landing.Config) { c.Limiter = limiter(t, env) })
	pool := env.NewPool(t, tenant.Default, func(prj *crowdgatev1.Project, _ *crowdgatev1.Pool) {
		prj.ReturnUrl = "https://toloka.ai/tasks?from=platform"
	})
	foreign := env.StartAssignment(t, env.NewUnmanagedPool(t, "stranger"), "toloker-f")
	submitted := env.StartAssignment(t, pool, "toloker-s")
	env.Submit(t, pool, "toloker-s", true)
	ended := env.StartAssignment(t, pool, "toloker-d")
	l, err := env.Sessions.Land(ctx, ended)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Sessions.End(ctx, tenant.Default, sess.GetSession().GetSessionId(), crowdgatev1.EndReason_END_REASON_CLOSE_SESSION); err != nil {
		t.Fatal(err)
	}
	expired := env.StartAssignment(t, pool, "toloker-e")
	simClock.Advance(601 * time.Second)

	for _, tc := range []struct {
		name   string
		query  string
		status int
		title  string
	}{
		{"no assignment id", "", http.StatusBadRequest, "This link is not valid"},
		{"malformed", "?assignment_id=%3Cscript%3Ealert(1)%3C/script%3E", http.StatusBadRequest, "This link is not valid"},
		{"unknown", "?assignment_id=" + poolHex(pool.TolokaPoolId) + "--" + strings.Repeat("0", 24), http.StatusNotFound, "Task not found"},
		{"foreign", "?assignment_id=" + foreign, http.StatusNotFound, "Task not found"},
		{"already submitted", "?assignment_id=" + submitted, http.StatusConflict, "Task already submitted"},
		{"expired", "?assignment_id=" + expired, http.StatusGone, "Task expired"},
		{"session ended", "?assignment_id=" + ended, http.StatusGone, "Your session has ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, noRedirects, start+tc.query)
			checkPage(t, a, tc.status, tc.title)
			if tc.name == "session ended" && !strings.Contains(a.body, `href="https://toloka.ai/tasks?from=platform"`) {
				t.Errorf("the ended page does not link back to the project's return URL: %s", a.body)
			}
		})
	}

	t.Run("Toloka unreachable", func(t *testing.T) {
		aid := env.StartAssignment(t, pool, "toloker-u")
		if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/assignments", ErrorRates: map[int]float64{503: 1}}); err != nil {
			t.Fatal(err)
		}
		defer env.Sim.ClearFaults()
		a := get(t, noRedirects, start+"?assignment_id="+aid)
		checkPage(t, a, http.StatusServiceUnavailable, "Temporarily unavailable")
		if a.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})
}

// fakeSessions answers every landing with err, or panics: from Find when
// warm, else from Land.
type fakeSessions struct {
	err   error
	panic bool
	warm  bool
}

func (f fakeSessions) Find(context.Context, string) (*session.Landing, error) {
	if !f.warm {
		return nil, session.ErrNoSession
	}
	return f.Land(context.Background(), "")
}

func (f fakeSessions) Land(context.Context, string) (*session.Landing, error) {
	if f.panic {
		panic("boom")
	}
	return nil, f.err
}

func TestErrorPagesForEveryAnswer(t *testing.T) {
	aid := "0000000007--" + strings.Repeat("1", 24)
	for _, tc := range []struct {
		name   string
		s      fakeSessions
		status int
		title  string
	}{
		{"skipped", fakeSessions{err: &session.NotActiveError{AssignmentID: aid, Status: "SKIPPED"}}, http.StatusGone, "Task skipped"},
		{"accepted", fakeSessions{err: &session.NotActiveError{AssignmentID: aid, Status: "ACCEPTED"}}, http.StatusConflict, "Task already submitted"},
		{"rejected", fakeSessions{err: &session.NotActiveError{AssignmentID: aid, Status: "REJECTED"}}, http.StatusConflict, "Task already submitted"},
		{"session expired", fakeSessions{err: &session.EndedError{Session: &crowdgatev1.Session{EndReason: crowdgatev1.EndReason_END_REASON_EXPIRED}}}, http.StatusGone, "Your session has expired"},
		{"revoked", fakeSessions{err: &session.EndedError{Session: &crowdgatev1.Session{EndReason: crowdgatev1.EndReason_END_REASON_REVOKED}}}, http.StatusGone, "Your session has ended"},
		{"bound to another Toloker", fakeSessions{err: serviceerror.NewFailedPrecondition("assignment %s is bound to another Toloker's session", aid)}, http.StatusConflict, "This task cannot be opened"},
		{"unknown", fakeSessions{err: &serviceerror.NotFound{Resource: "assignment", ID: aid}}, http.StatusNotFound, "Task not found"},
		{"archived pool", fakeSessions{err: &session.ClosedError{AssignmentID: aid, What: "pool"}}, http.StatusGone, "Task closed"},
		{"banned Toloker", fakeSessions{err: &session.BannedError{AssignmentID: aid, Scope: "project"}}, http.StatusForbidden, "You cannot take this task"},
		{"unknown-id budget spent", fakeSessions{err: &session.BudgetError{RetryAfter: 40 * time.Second}}, http.StatusTooManyRequests, "Too many attempts"},
		{"the assignment's shared limit", fakeSessions{err: &session.LimitedError{AssignmentID: aid,
			Exhausted: &serviceerror.ResourceExhausted{Message: "rate limit reached", RetryAfter: 20 * time.Second}}}, http.StatusTooManyRequests, "Too many attempts"},
		{"Toloka unavailable", fakeSessions{err: &serviceerror.Unavailable{Message: "toloka: x"}}, http.StatusServiceUnavailable, "Temporarily unavailable"},
		{"an unexpected error", fakeSessions{err: io.ErrUnexpectedEOF}, http.StatusServiceUnavailable, "Temporarily unavailable"},
		{"a panic", fakeSessions{panic: true}, http.StatusServiceUnavailable, "Temporarily unavailable"},
	} {
		for _, warm := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/warm=%v", tc.name, warm), func(t *testing.T) {
				tc.s.warm = warm
				h, err := landing.New(landing.Config{Sessions: tc.s, Log: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer(h)
				defer srv.Close()
				checkPage(t, get(t, noRedirects, srv.URL+"/start?assignment_id="+aid), tc.status, tc.title)
			})
		}
	}
}

func TestRateLimits(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	start := serveLanding(t, env, func(c *landing.Config) {
		c.Limiter = limiter(t, env)
		c.PerIP = ratelimit.Limit{Rate: 3, Per: time.Hour, Burst: 3}
		c.PerAssignment = ratelimit.Limit{Rate: 2, Per: time.Hour, Burst: 2}
		c.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
	})
	a1 := env.StartAssignment(t, pool, "toloker-1")
	a2 := env.StartAssignment(t, pool, "toloker-2")
	a3 := env.StartAssignment(t, pool, "toloker-3")

	// Per assignment: the third click on one assignment is refused, from
	// any address.
	for i, want := range []int{303, 303, 429} {
		a := get(t, noRedirects, start+"?assignment_id="+a1, "X-Test-Client", "10.0.0."+strconv.Itoa(i+1))
		if a.status != want {
			t.Fatalf("click %d on one assignment: %d, want %d", i+1, a.status, want)
		}
		if want == 429 {
			checkPage(t, a, http.StatusTooManyRequests, "Too many attempts")
			if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
			}
		}
	}
	// Per address: 3 landings, whatever the assignments; another address is
	// not affected.
	for i, aid := range []string{a2, a2, a3, a3} {
		want := http.StatusSeeOther
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if a := get(t, noRedirects, start+"?assignment_id="+aid, "X-Test-Client", "192.0.2.7"); a.status != want {
			t.Errorf("landing %d from one address: %d, want %d", i+1, a.status, want)
		}
	}
	if a := get(t, noRedirects, start+"?assignment_id="+a3, "X-Test-Client", "192.0.2.8"); a.status != http.StatusSeeOther {
		t.Errorf("another address: %d, want 303", a.status)
	}
	// A malformed id is refused before any limit is spent.
	for range 10 {
		if a := get(t, noRedirects, start+"?assignment_id=x", "X-Test-Client", "192.0.2.9"); a.status != http.StatusBadRequest {
			t.Fatalf("malformed: %d", a.status)
		}
	}
}

// Each replica counts every landing in memory; landings that ask Toloka are
// also counted across replicas in Redis.
func TestRateLimitsAcrossReplicas(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	replica := func() string {
		return serveLanding(t, env, func(c *landing.Config) {
			c.Limiter = limiter(t, env)
			c.PerIP = ratelimit.Limit{Rate: 2, Per: time.Hour, Burst: 2}
			c.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
		})
	}
	a, b := replica(), replica()
	aids := []string{env.StartAssignment(t, pool, "toloker-1"), env.StartAssignment(t, pool, "toloker-2"), env.StartAssignment(t, pool, "toloker-3")}
	for _, step := range []struct {
		name    string
		replica string
		aid     string
		want    int
	}{
		{"first landing on replica a", a, aids[0], http.StatusSeeOther},
		{"first landing on replica b", b, aids[1], http.StatusSeeOther},
		// b has counted one landing from the address, but Redis two.
		{"a third first landing, on b", b, aids[2], http.StatusTooManyRequests},
		// A repeat landing asks nobody: only a's own count applies.
		{"a repeat landing on a", a, aids[0], http.StatusSeeOther},
		{"a's count is spent", a, aids[0], http.StatusTooManyRequests},
	} {
		got := get(t, noRedirects, step.replica+"?assignment_id="+step.aid, "X-Test-Client", "192.0.2.7")
		if got.status != step.want {
			t.Fatalf("%s: %d, want %d; body %s", step.name, got.status, step.want, got.body)
		}
	}
	if n := len(env.Sim.Requests("/api/v1/assignments/")); n != 2 {
		t.Errorf("Toloka was asked %d times, want 2 (one per first landing let through)", n)
	}
}

// X-Forwarded-For is believed only from the proxies the operator trusts:
// read right to left, trusted hops skipped; a client that connects
// directly is limited by its own address whatever it writes.
func TestClientIPTrustsOnlyConfiguredProxies(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"no proxy", lb, "198.51.100.7:5123", nil, "198.51.100.7"},
		{"nothing trusted: a spoofed header is ignored", nil, "198.51.100.7:5123", []string{"203.0.113.9"}, "198.51.100.7"},
		{"an untrusted peer's header is ignored", lb, "198.51.100.7:5123", []string{"203.0.113.9"}, "198.51.100.7"},
		{"one trusted proxy", lb, "10.0.0.2:443", []string{"203.0.113.9"}, "203.0.113.9"},
		{"a client-written entry before the proxy's", lb, "10.0.0.2:443", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"several headers", lb, "10.0.0.2:443", []string{"1.2.3.4", "203.0.113.9"}, "203.0.113.9"},
		{"trusted hops are skipped", lb, "10.0.0.2:443", []string{"1.2.3.4, 203.0.113.9, 10.1.1.1", "10.2.2.2"}, "203.0.113.9"},
		{"IPv6", lb, "[2001:db8:ffff::1]:80", []string{"2001:db8::1"}, "2001:db8::1"},
		{"every hop trusted: the first one", lb, "10.0.0.2:443", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"garbage from a trusted proxy falls back to the connection", lb, "10.0.0.2:443", []string{"{evil}"}, "10.0.0.2"},
		// Some proxies write the client's port too (IIS ARR, Azure's
		// Application Gateway): it used to end the walk, and every client
		// was limited as the proxy.
		{"an entry with a port", lb, "10.0.0.2:443", []string{"203.0.113.9:51234"}, "203.0.113.9"},
		{"an IPv6 entry with a port", lb, "10.0.0.2:443", []string{"[2001:db8::1]:51234"}, "2001:db8::1"},
		{"a trusted hop with a port is skipped", lb, "10.0.0.2:443", []string{"203.0.113.9, 10.1.1.1:8080"}, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/start", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := landing.ClientIP(tc.trusted)(r); got != tc.want {
				t.Errorf("client address = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewRefusesLimitsWithoutABurst(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	// Burst 0 is a sliding window to the shared limiter but "one at once"
	// to the in-replica one: refused rather than read two ways.
	_, err := landing.New(landing.Config{Sessions: env.Sessions, Settings: landing.Settings{PerAssignment: ratelimit.Limit{Rate: 30, Per: time.Minute}}})
	if err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("New with a burst of 0 = %v, want an error about the burst", err)
	}
}
