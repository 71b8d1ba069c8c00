package toloka

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

// Test tokens. Their middle parts are what leak checks search for.
const (
	oauthToken   = "y0_AgAAAA-OAUTHSECRET-7f3a"
	apiKeyToken  = "ak1.APIKEYSECRET-9b2c.x7Qz"
	secretMarker = "SECRET"
)

// recorded is a request the fake Toloka received.
type recorded struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// step answers one request.
type step func(w http.ResponseWriter, r *http.Request)

// fakeToloka is an httptest server that answers requests with a script of
// steps, in order, and records every request.
type fakeToloka struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	steps []step
	reqs  []recorded
}

func newFakeToloka(t *testing.T, steps ...step) *fakeToloka {
	t.Helper()
	f := &fakeToloka{t: t, steps: steps}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeToloka) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	var s step
	if len(f.steps) > 0 {
		s, f.steps = f.steps[0], f.steps[1:]
	}
	f.mu.Unlock()
	if s == nil {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusTeapot)
		return
	}
	s(w, r)
}

func (f *fakeToloka) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// reply answers with status and a JSON body; headers are name, value pairs.
func reply(status int, body string, headers ...string) step {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		if body != "" && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// tolokaError answers with Toloka's error body.
func tolokaError(status int, code, message, payload string, headers ...string) step {
	if payload == "" {
		payload = "null"
	}
	return reply(status, `{"request_id":"req-`+code+`","code":"`+code+`","message":"`+message+`","payload":`+payload+`}`, headers...)
}

// hangUp reads the request and closes the connection without answering.
func hangUp() step {
	return func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
	}
}

// testClock is a fake clock; Sleep records the wait and advances the clock.
type testClock = fakeclock.Clock

func newTestClock() *testClock { return fakeclock.New(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)) }

// syncBuffer is a bytes.Buffer safe for concurrent writes from a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a client pointed at a fake Toloka, with a fake clock,
// deterministic jitter (the full ceiling) and captured debug logs.
type harness struct {
	fake    *fakeToloka
	clock   *testClock
	logs    *syncBuffer
	client  *Client
	account *Account
}

func newHarness(t *testing.T, configure func(*Config), steps ...step) *harness {
	t.Helper()
	h := &harness{fake: newFakeToloka(t, steps...), clock: newTestClock(), logs: &syncBuffer{}}
	cfg := Config{
		ProductionURL: h.fake.srv.URL + "/api/v1",
		SandboxURL:    h.fake.srv.URL + "/sandbox/api/v1",
		HTTPClient:    h.fake.srv.Client(),
		Logger:        slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:           h.clock.Now,
		Sleep:         h.clock.Sleep,
		Jitter:        func(d time.Duration) time.Duration { return d },
		UserAgent:     "crowdgate-test",
	}
	if configure != nil {
		configure(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.client = c
	h.account, err = c.Account(Credential{Environment: Production, Token: oauthToken})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// jsonDiff compares two JSON documents by value, numbers compared by their
// exact text (so 10.520 differs from 10.52).
func jsonDiff(t *testing.T, want string, got []byte) string {
	t.Helper()
	decode := func(b []byte) any {
		if len(bytes.TrimSpace(b)) == 0 {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		return v
	}
	return cmp.Diff(decode([]byte(want)), decode(got))
}

func containsSecret(s string) bool {
	return strings.Contains(s, "OAUTHSECRET") || strings.Contains(s, "APIKEYSECRET")
}
