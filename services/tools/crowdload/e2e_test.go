package crowdload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// e2eConfig is a tiny run against real binaries: crowdgate and tolokasim
// built from this tree, and Redis from REDIS_URL or a redis-server started
// by the harness.
func e2eConfig(t *testing.T, mode Mode) Config {
	t.Helper()
	cfg, err := ParseFlags([]string{"--mode=" + string(mode)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Crowdgate = binary(t, "crowdgate")
	cfg.Tolokasim = binary(t, "tolokasim")
	cfg.WorkDir = t.TempDir()
	if os.Getenv("CROWDLOAD_KEEP_LOGS") != "" {
		// Logs that outlive the test, to read after a failure.
		d, err := os.MkdirTemp("", "crowdload-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		cfg.WorkDir = d
		t.Logf("CROWDLOAD_KEEP_LOGS: logs in %s", d)
	}
	cfg.Progress = 0
	cfg.Duration = 25 * time.Second
	cfg.DrainTimeout = 20 * time.Second
	if url := os.Getenv("REDIS_URL"); url != "" {
		cfg.RedisURL = url
		cfg.RedisRestarts = 0
	} else {
		cfg.RedisServer = redisServerBin(t)
	}
	return cfg
}

// runE2E runs cfg, skipping the test while the gateway answers
// UNIMPLEMENTED for an RPC the flow needs.
func runE2E(t *testing.T, cfg Config, hooks *testHooks) *Result {
	t.Helper()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := run(ctx, cfg, &progress, hooks)
	if errors.Is(err, ErrUnimplemented) {
		t.Skipf("the gateway does not implement the flow yet (%v); this test turns itself on once it does", err)
	}
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	return res
}

func summary(r *Result) string {
	var b bytes.Buffer
	r.WriteSummary(&b)
	return b.String()
}

// A tiny healthy run, over REST and over gRPC: every Toloker lands and
// finishes, every submit is paid exactly once, and the measurements are
// there.
func TestEndToEndThroughput(t *testing.T) {
	for _, api := range []API{APIREST, APIGRPC} {
		t.Run(string(api), func(t *testing.T) {
			cfg := e2eConfig(t, ModeThroughput)
			cfg.API = api
			cfg.Tolokers, cfg.Submits, cfg.Concurrency = 6, 3, 3
			// The receiver registers and the log is read over this API
			// too (CreateWebhookEndpoint, ListEvents, over REST or gRPC).
			cfg.Webhook = true
			res := runE2E(t, cfg, nil)
			out := summary(res)
			if res.ExitCode() != 0 {
				t.Fatalf("exit code %d, want 0:\n%s", res.ExitCode(), out)
			}
			rec := res.Reconciliation
			if rec.Sent != 18 || rec.Accepted != 18 || rec.Paid != 18 || rec.DuplicatesRefused != 0 {
				t.Errorf("sent %d, accepted %d, paid %d, duplicates refused %d; want 18, 18, 18, 0", rec.Sent, rec.Accepted, rec.Paid, rec.DuplicatesRefused)
			}
			want := money.Zero
			for i := range cfg.Tolokers {
				for _, s := range plannedSubmits(res.RunID, cfg.Seed, i, cfg.Submits) {
					want = want.Add(s.reward)
				}
			}
			if rec.PaidTotal.Cmp(want) != 0 || rec.ExpectedTotal.Cmp(want) != 0 {
				t.Errorf("paid %s, expected %s; want %s", rec.PaidTotal, rec.ExpectedTotal, want)
			}
			if res.Landed != 6 || res.TolokersDone != 6 || res.Landing.Count < 6 || res.Exchange.Count < 6 || res.Submit.Count != 18 {
				t.Errorf("landed %d, done %d, landing latencies %d, exchanges %d, submit latencies %d", res.Landed, res.TolokersDone, res.Landing.Count, res.Exchange.Count, res.Submit.Count)
			}
			if res.Totals == nil || res.Totals.Delivered+res.Totals.Queued != 18 || !res.Drained {
				t.Errorf("gateway totals %+v, drained %v", res.Totals, res.Drained)
			}
			if len(res.Gateways) != 1 || res.Gateways[0].Source != "VmRSS" || res.Gateways[0].RSS.Peak == 0 {
				t.Errorf("gateway memory %+v, want one replica's VmRSS", res.Gateways)
			}
			if res.Redis.Known && (res.Redis.LiveSessions != 6 || res.Redis.After == 0) {
				t.Errorf("redis memory %+v, want 6 live sessions measured", res.Redis)
			}
			if e := res.EventCheck; e == nil || e.Webhook == nil || e.Delivered != 18 || e.SessionsEnded != 6 || e.Webhook.Stats.Distinct != int64(e.Events) {
				t.Errorf("events: %+v:\n%s", e, out)
			}
			for _, want := range []string{"landing (GET /start)", "submit (accepted)", "per live session", "gateway RSS", "each received by the webhook", "PASS"} {
				if !strings.Contains(out, want) {
					t.Errorf("summary lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// A tiny chaos run: Toloka faults, a replica SIGKILLed and restarted,
// Redis SIGKILLed and restarted (when the harness started it), and still
// every submit paid exactly once.
func TestEndToEndChaos(t *testing.T) {
	cfg := e2eConfig(t, ModeChaos)
	cfg.Tolokers, cfg.Submits, cfg.Concurrency = 16, 3, 8
	cfg.FaultHang = 300 * time.Millisecond
	cfg.RestartDelay = 100 * time.Millisecond
	cfg.ThrottleBurst, cfg.ThrottleEvery = 5, 3*time.Second
	// The killed replica's outbox entries are reclaimed after 3s instead
	// of 30s, and retries back off at most 3s: the same paths, in seconds.
	cfg.GatewayEnv = []string{"CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT=3s", "CROWDGATE_SUBMIT_MAX_BACKOFF=3s"}
	res := runE2E(t, cfg, nil)
	out := summary(res)
	if res.ExitCode() != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", res.ExitCode(), out)
	}
	kills, restarts := 0, 0
	for _, e := range res.Events {
		switch {
		case e.Err != "":
			t.Errorf("chaos event failed: %+v", e)
		case e.Kind == "kill":
			kills++
		default:
			restarts++
		}
	}
	if kills != 1 || restarts != cfg.RedisRestarts {
		t.Errorf("%d kills and %d Redis restarts, want 1 and %d:\n%s", kills, restarts, cfg.RedisRestarts, out)
	}
	if rec := res.Reconciliation; rec.Paid != 48 || rec.Accepted != 48 {
		t.Errorf("paid %d, accepted %d; want 48:\n%s", rec.Paid, rec.Accepted, out)
	}
	// Chaos mode reconciles events too, through a receiver that answers
	// 30% of deliveries 503 and verifies each with the Standard Webhooks
	// library, while a replica is SIGKILLed.
	e := res.EventCheck
	if e == nil || e.Webhook == nil {
		t.Fatalf("no event reconciliation:\n%s", out)
	}
	if e.Delivered != 48 || e.Dead != 0 || e.SessionsStarted != 16 || e.SessionsEnded != 16 || e.EndReasons["CLOSE_SESSION"] != 16 {
		t.Errorf("events: %d delivered, %d dead, %d sessions started, %d ended (%v); want 48, 0, 16, 16 closed:\n%s",
			e.Delivered, e.Dead, e.SessionsStarted, e.SessionsEnded, e.EndReasons, out)
	}
	w := e.Webhook
	if !w.CaughtUp || len(w.Missing) != 0 || len(w.Extra) != 0 || w.Stats.Distinct != int64(w.Expected) || w.Expected != e.Events {
		t.Errorf("webhook: caught up %v, expected %d of %d events, received %d, missing %v, extra %v:\n%s",
			w.CaughtUp, w.Expected, e.Events, w.Stats.Distinct, w.Missing, w.Extra, out)
	}
	if w.Stats.FailedOnPurpose == 0 || w.Stats.BadSignature != 0 || w.Stats.Malformed != 0 {
		t.Errorf("webhook: %+v; want some deliveries failed on purpose and none refused:\n%s", w.Stats, out)
	}
	if !strings.Contains(out, "each received by the webhook") {
		t.Errorf("summary does not say the events reconcile:\n%s", out)
	}
}

// With --webhook, a run that leaves sessions open (Tolokers who landed and
// never submitted) ends them with EndSession while settling, and each has
// one session.started and one session.ended event, received by the
// webhook; the run is incomplete (submits never sent), not wrong.
func TestEndToEndWebhookEndsOpenSessions(t *testing.T) {
	cfg := e2eConfig(t, ModeThroughput)
	cfg.Tolokers, cfg.Submits, cfg.Concurrency = 5, 2, 3
	cfg.Webhook, cfg.WebhookFailRate, cfg.WebhookWait = true, 0.3, 30*time.Second
	res := runE2E(t, cfg, &testHooks{landOnly: 2})
	out := summary(res)
	if res.ExitCode() != 4 {
		t.Fatalf("exit code %d, want 4 (incomplete: 4 submits never sent):\n%s", res.ExitCode(), out)
	}
	if n := res.Reconciliation.Count(ProblemEventLog) + res.Reconciliation.Count(ProblemWebhook); n != 0 {
		t.Errorf("%d event problems:\n%s", n, out)
	}
	e := res.EventCheck
	if e == nil || e.Webhook == nil {
		t.Fatalf("no event reconciliation:\n%s", out)
	}
	if e.EndedAtSettle != 2 || e.SessionsStarted != 5 || e.SessionsEnded != 5 || e.EndReasons["ENDED"] != 2 || e.EndReasons["CLOSE_SESSION"] != 3 || e.Delivered != 6 {
		t.Errorf("ended at settle %d, sessions %d started and %d ended (%v), %d delivered; want 2, 5, 5 (3 closed, 2 ended), 6:\n%s",
			e.EndedAtSettle, e.SessionsStarted, e.SessionsEnded, e.EndReasons, e.Delivered, out)
	}
	if w := e.Webhook; !w.CaughtUp || w.Stats.Distinct != int64(w.Expected) || w.Expected != e.Events {
		t.Errorf("webhook: caught up %v, %d of %d expected received, %d events in the log:\n%s", w.CaughtUp, w.Stats.Distinct, w.Expected, e.Events, out)
	}
}

// tamperer sits between the gateways and the emulator and breaks the money
// on purpose, once each: it pays one submit a second time under a new
// retry_id, answers one as paid without forwarding it, and forwards one
// with a cent more. The harness must name exactly those.
type tamperer struct {
	target string
	hc     *http.Client

	mu       sync.Mutex
	actions  []string          // still to hand out, in order
	assigned map[string]string // retry_id -> action
	dupDone  bool
}

func (tp *tamperer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method == http.MethodPost && r.URL.Path == "/api/v1/tasks/external/submit" {
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&obj) == nil {
			id, _ := obj["retry_id"].(string)
			closing, _ := obj["close_session"].(bool)
			tp.mu.Lock()
			action, ok := tp.assigned[id]
			if !ok && !closing && id != "" && len(tp.actions) > 0 {
				action, tp.actions = tp.actions[0], tp.actions[1:]
				tp.assigned[id] = action
			}
			dup := action == "duplicate" && !tp.dupDone
			if dup {
				tp.dupDone = true
			}
			tp.mu.Unlock()
			switch action {
			case "swallow":
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"speed_quality_balance_match":false,"restriction_match":false,"filter_match":true}`)
				return
			case "reprice":
				d, _ := money.Parse(string(obj["reward"].(json.Number)))
				obj["reward"] = json.Number(d.Add(money.MustParse("0.01")).String())
				body, _ = json.Marshal(obj)
			case "duplicate":
				if dup {
					copy := map[string]any{}
					for k, v := range obj {
						copy[k] = v
					}
					copy["retry_id"] = id + "-dup"
					b, _ := json.Marshal(copy)
					if resp, err := tp.forward(r, b); err == nil {
						resp.Body.Close()
					}
				}
			}
		}
	}
	resp, err := tp.forward(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (tp *tamperer) forward(r *http.Request, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, tp.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	return tp.hc.Do(req)
}

func (tp *tamperer) idOf(action string) string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for id, a := range tp.assigned {
		if a == action {
			return id
		}
	}
	return ""
}

// The harness is only worth something if it fails when the money is wrong:
// with a double payment, a lost payment and a wrong amount slipped in
// between the gateway and Toloka, it exits 1 and names each one.
func TestEndToEndDetectsWrongMoney(t *testing.T) {
	cfg := e2eConfig(t, ModeThroughput)
	cfg.Tolokers, cfg.Submits, cfg.Concurrency = 4, 3, 2
	// The emulator the harness reads the ledger from, started here so the
	// tamperer can sit in front of it for the gateways.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts, err := startTolokasim(ctx, cfg.Tolokasim, t.TempDir(), false, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.close()
	cfg.TolokaURL, cfg.Tolokasim = ts.url, ""
	tp := &tamperer{target: ts.url, hc: &http.Client{}, actions: []string{"duplicate", "swallow", "reprice"}, assigned: map[string]string{}}
	proxy := httptest.NewServer(tp)
	defer proxy.Close()

	res := runE2E(t, cfg, &testHooks{gatewayToloka: proxy.URL})
	out := summary(res)
	if res.ExitCode() != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", res.ExitCode(), out)
	}
	rec := res.Reconciliation
	dup, swallowed, repriced := tp.idOf("duplicate"), tp.idOf("swallow"), tp.idOf("reprice")
	if dup == "" || swallowed == "" || repriced == "" {
		t.Fatalf("the tamperer did not get to act: %v", tp.assigned)
	}
	checks := []struct {
		kind ProblemKind
		want []string
	}{
		{ProblemUnexpected, []string{dup + "-dup"}},
		{ProblemMissing, []string{swallowed}},
		{ProblemAmount, []string{repriced}},
		{ProblemDuplicate, nil},
		{ProblemRefused, nil},
	}
	for _, c := range checks {
		if got := rec.RetryIDs(c.kind); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q:\n%s", c.kind, got, c.want, out)
		}
	}
	if rec.Count(ProblemTotal) == 0 {
		t.Errorf("no total mismatch reported:\n%s", out)
	}
	if !strings.Contains(out, "FAIL: money is wrong") {
		t.Errorf("summary does not say FAIL:\n%s", out)
	}
}
