package crowdload

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A report as wrk 4.1 prints it with --latency.
const wrkReport = `Running 10s test @ http://127.0.0.1:42353
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.92ms  447.09us   9.41ms   77.01%
    Req/Sec    34.84k     2.74k   39.21k    71.00%
  Latency Distribution
     50%  810.00us
     75%    1.09ms
     90%    1.45ms
     99%    2.65ms
  346880 requests in 10.01s, 83.37MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  34653.02
Transfer/sec:      8.33MB
`

func TestParseWrk(t *testing.T) {
	var got PhaseResult
	if err := parseWrk(wrkReport, &got); err != nil {
		t.Fatal(err)
	}
	want := PhaseResult{Requests: 346880 - 12, Other: 12 + 3 + 1, Elapsed: 10010 * time.Millisecond,
		P50: 810 * time.Microsecond, P99: 2650 * time.Microsecond}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseWrk (-want +got):\n%s", diff)
	}
	if got.Rate() < 34650 || got.Rate() > 34656 {
		t.Errorf("rate %.1f, want what wrk printed (34653)", got.Rate())
	}
	for _, bad := range []string{"", "unable to connect to 127.0.0.1:1 Connection refused", strings.Replace(wrkReport, "     99%    2.65ms\n", "", 1)} {
		if err := parseWrk(bad, &PhaseResult{}); err == nil {
			t.Errorf("parseWrk accepted %q", bad)
		}
	}
}

func TestWriteWrkScript(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"0000000002--000000000000000000000001", "0000000002--000000000000000000000002"}
	path, err := writeWrkScript(dir, ids)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	for _, want := range []string{
		`{"0000000002--000000000000000000000001", "10.77.0.0"}`,
		`{"0000000002--000000000000000000000002", "10.77.0.1"}`,
		"function init(args)", // requests are formatted once wrk has set Host
		`wrk.format("GET", "/start?assignment_id=" .. v[1], {["X-Forwarded-For"] = v[2]})`,
		"function request()",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %s:\n%s", want, script)
		}
	}
	if benchIP(65536) != benchIP(0) || benchIP(257) != "10.77.1.1" {
		t.Errorf("benchIP: %s, %s", benchIP(65536), benchIP(257))
	}
}

func TestLandingOutcomes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `# HELP crowdgate_landings_total Toloker landings (GET /start), by outcome.
# TYPE crowdgate_landings_total counter
crowdgate_landings_total{outcome="rate_limited"} 3
crowdgate_landings_total{outcome="redirect"} 1.2345e+06
crowdgate_landing_seconds_bucket{le="0.0005"} 9
`)
	}))
	defer srv.Close()
	got, err := landingOutcomes(t.Context(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]float64{"rate_limited": 3, "redirect": 1234500}, got); diff != "" {
		t.Errorf("landingOutcomes (-want +got):\n%s", diff)
	}
}

func TestParseLandingFlags(t *testing.T) {
	c, err := ParseLandingFlags([]string{"--connections=8", "--gateway-env=CROWDGATE_LANDING_LIMIT_IP=1000/s,burst=1000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Connections != 8 || c.Duration != 10*time.Second || c.Assignments != 30000 || !c.TolokaRateLimits || c.Accounts != 1 {
		t.Errorf("config %+v", c)
	}
	if diff := cmp.Diff([]string{"CROWDGATE_LANDING_LIMIT_IP=1000/s,burst=1000"}, c.GatewayEnv); diff != "" {
		t.Errorf("GatewayEnv (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--duration=10ms"}, "--duration"},
		{[]string{"--connections=0"}, "--connections"},
		{[]string{"--assignments=0"}, "--assignments"},
		{[]string{"--gateway-env=REDIS_URL=redis://x"}, "cannot set REDIS_URL"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--accounts=0"}, "--accounts must be within 1..256, got 0"},
		{[]string{"--accounts=-3"}, "--accounts must be within 1..256, got -3"},
		{[]string{"--accounts=257"}, "--accounts must be within 1..256, got 257"},
		{[]string{"--accounts=x"}, "invalid value \"x\" for flag -accounts"},
		{[]string{"--accounts=8", "--assignments=5"}, "--accounts (8) must not exceed --assignments (5)"},
		{[]string{"--compare-bin=/bin/b", "--pairs=0"}, "--pairs must be within 1..50, got 0"},
		{[]string{"--compare-bin=/bin/b", "--pairs=51"}, "--pairs must be within 1..50, got 51"},
	} {
		if _, err := ParseLandingFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseLandingFlags(%q) = %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

// A comparison reports each figure's median and range over each binary's
// runs, the CPU per answer computed from each run's own counts.
func TestLandingComparisonSummary(t *testing.T) {
	run := func(ceiling, warm, cold int64, gatewayWarm, gatewayCold, redisCold time.Duration, commands int64) *LandingResult {
		return &LandingResult{
			Ceiling: PhaseResult{Requests: ceiling, Elapsed: time.Second, CPU: map[string]time.Duration{bareHandlerProcess: time.Duration(ceiling) * 20 * time.Microsecond}},
			Warm: PhaseResult{Requests: warm, Elapsed: time.Second, P99: 4 * time.Millisecond,
				CPU: map[string]time.Duration{"gateway": time.Duration(warm) * gatewayWarm, "redis": time.Duration(warm) * 5 * time.Microsecond}},
			Cold: PhaseResult{Requests: cold, Elapsed: time.Second,
				CPU: map[string]time.Duration{"gateway": time.Duration(cold) * gatewayCold, "redis": time.Duration(cold) * redisCold}},
			ColdRedis: RedisCommandStats{"get": {Calls: cold * commands}},
		}
	}
	c := &Comparison[*LandingResult]{
		Title: "crowdload landing", BinA: "/tmp/cg-before", Metrics: landingMetrics,
		A: []*LandingResult{
			run(40000, 20000, 1300, 48*time.Microsecond, 480*time.Microsecond, 410*time.Microsecond, 51),
			run(50000, 22000, 1442, 50*time.Microsecond, 460*time.Microsecond, 360*time.Microsecond, 51),
			run(30000, 15000, 718, 60*time.Microsecond, 690*time.Microsecond, 490*time.Microsecond, 52),
		},
		B: []*LandingResult{
			run(40000, 21000, 1391, 46*time.Microsecond, 500*time.Microsecond, 350*time.Microsecond, 50),
			run(44000, 23000, 1607, 47*time.Microsecond, 390*time.Microsecond, 310*time.Microsecond, 50),
		},
	}
	summaryHas(t, c, []string{
		"A: /tmp/cg-before", "B: built from the source tree",
		"ceiling: bare handler answers/s      40,000 (30,000–50,000)     42,000 (40,000–44,000)",
		"bare handler CPU per answer (us)     20.0 (20.0–20.0)           20.0 (20.0–20.0)",
		"warm share of the ceiling (%)        50 (44–50)                 52 (52–52)",
		"gateway CPU per warm landing (us)    50.0 (48.0–60.0)           46.5 (46.0–47.0)",
		"cold landings/s                      1,300 (718–1,442)          1,499 (1,391–1,607)",
		"gateway CPU per cold landing (ms)    0.48 (0.46–0.69)           0.45 (0.39–0.50)",
		"Redis CPU per cold landing (ms)      0.41 (0.36–0.49)           0.33 (0.31–0.35)",
		"Redis commands per cold landing      51.0 (51.0–52.0)           50.0 (50.0–50.0)",
	})
}

// The webhook benchmark's comparison reads the backlog beside the ceiling
// and the CPU per backlog event; its flags refuse --pairs out of range.
func TestWebhooksComparison(t *testing.T) {
	run := func(ceiling, backlog int64, gateway time.Duration) *WebhooksResult {
		return &WebhooksResult{
			Ceiling: FanoutPhase{Events: ceiling, Elapsed: time.Second},
			Backlog: FanoutPhase{Events: backlog, Elapsed: time.Second, P99: 3 * time.Second,
				CPU: map[string]time.Duration{"gateway": time.Duration(backlog) * gateway}},
			BacklogRedis: RedisCommandStats{"evalsha": {Calls: 3 * backlog}},
		}
	}
	c := &Comparison[*WebhooksResult]{Title: "crowdload webhooks", BinA: "a", BinB: "b", Metrics: webhookMetrics,
		A: []*WebhooksResult{run(22000, 4400, 110*time.Microsecond)},
		B: []*WebhooksResult{run(25000, 5000, 100*time.Microsecond), run(20000, 5000, 90*time.Microsecond)}}
	summaryHas(t, c, []string{
		"crowdload webhooks, 2 runs of each binary, alternated",
		"backlog share of the ceiling (%)     20.0                       22.5 (20.0–25.0)",
		"gateway CPU per backlog event (us)   110.0                      95.0 (90.0–100.0)",
		"Redis commands per backlog event     3.0                        3.0 (3.0–3.0)",
	})
	if _, err := ParseWebhooksFlags([]string{"--compare-bin=/bin/b", "--pairs=0"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--pairs must be within 1..50") {
		t.Errorf("--pairs=0 = %v, want refused", err)
	}
	if cfg, err := ParseWebhooksFlags([]string{"--compare-bin=/bin/b"}, io.Discard); err != nil || cfg.CompareWith != "/bin/b" || cfg.Pairs != 3 {
		t.Errorf("--compare-bin = %+v, %v; want 3 pairs by default", cfg, err)
	}
}

// summaryHas fails t unless c's summary has every line of want.
func summaryHas[R any](t *testing.T, c *Comparison[R], want []string) {
	t.Helper()
	var b strings.Builder
	c.WriteSummary(&b)
	for _, line := range want {
		if !strings.Contains(b.String(), line) {
			t.Errorf("the summary lacks %q:\n%s", line, b.String())
		}
	}
}

func TestMedianRange(t *testing.T) {
	for _, tc := range []struct {
		vs   []float64
		want string
	}{
		{nil, "-"},
		{[]float64{1234.4}, "1,234"},
		{[]float64{3, 1, 2}, "2 (1–3)"},
		{[]float64{4, 1, 2, 3}, "2 (1–4)"}, // 2.5, rounded by %.0f to even
		{[]float64{-1234567, 0}, "-617,284 (-1,234,567–0)"},
	} {
		if got := medianRange("%.0f", tc.vs); got != tc.want {
			t.Errorf("medianRange(%v) = %q, want %q", tc.vs, got, tc.want)
		}
	}
}

func TestProcessCPU(t *testing.T) {
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	// Burn CPU until the kernel's tick counter moves.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			_ = i * i
		}
		if after, _ := processCPU(os.Getpid()); after > before {
			return
		}
	}
	t.Error("processCPU did not grow while this process used the CPU")
}
