package crowdload

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LandingConfig is one run of the landing benchmark (crowdload landing).
//
// The benchmark starts Redis, the emulator and one gateway, creates
// Assignments assignments in an open pool, then measures, in one run on
// one machine:
//
//  1. the ceiling: wrk against a bare Go redirect handler (net/http, one
//     http.Redirect-like answer, nothing else) with the same requests;
//  2. cold landings: each assignment's first landing (Toloka asked once,
//     the session created), which also makes every session; then the
//     emulator alone serving GET /api/v1/assignments/{id} to the same
//     account, with Toloka's documented rate limits, for as long (what a
//     cold landing must ask);
//  3. warm landings: wrk cycling over those assignments (repeat clicks),
//     each request from one of 65,536 client addresses (X-Forwarded-For),
//     with the gateway's default rate limits on.
//
// Phase 2 is bounded by the Toloka account's rate limit and uses a Go
// client; phases 1 and 3 are CPU-bound and use wrk, whose cost per
// request is small and the same for both.
//
// With Accounts > 1 the emulator has that many requester accounts, each
// with its own API key and Toloka's 300 requests/s, and the gateway one
// credential, project and open pool per account (all in the tenant the
// gateway gives unauthenticated calls); the assignments are spread over
// the pools round-robin, so the cold phase lands in every pool at once and
// one account's cap no longer bounds its rate (the gateway's and Redis's
// CPU do, or, at few connections, each landing's sequential Redis round
// trips, each waiting for appendfsync always). The emulator phase then
// asks with every account's key.
type LandingConfig struct {
	// Duration is how long each wrk phase and the emulator phase run.
	Duration time.Duration
	// Connections is the number of keep-alive connections of each phase.
	Connections int
	// Assignments is how many assignments are created, landed cold once
	// each, and cycled over by the warm phase. The gateway lets one
	// assignment land 10 times at once and 30 a minute, so it should be
	// at least a fifteenth of the warm landings expected in Duration.
	Assignments int
	// Accounts is how many Toloka requester accounts (each with its own
	// pool in the gateway) the assignments are spread over.
	Accounts int
	// Wrk is the wrk binary.
	Wrk string
	// TolokaRateLimits keeps the emulator's documented rate limits.
	TolokaRateLimits bool
	// GatewayEnv, RedisServer, Tolokasim, Crowdgate, Repo, WorkDir and
	// Keep are as in Config.
	GatewayEnv                                       []string
	RedisServer, Tolokasim, Crowdgate, Repo, WorkDir string
	Keep                                             bool
	// CompareWith, when set, is a second gateway binary: the benchmark
	// runs Pairs times with each, alternately (RunLandingPairs).
	CompareWith string
	// Pairs is how many runs of each binary a comparison makes.
	Pairs int
}

// bareHandlerProcess names crowdload's own process while it serves the
// ceiling's bare redirect handler.
const bareHandlerProcess = "crowdload (bare handler)"

// ParseLandingFlags reads crowdload landing's command line.
func ParseLandingFlags(args []string, out io.Writer) (LandingConfig, error) {
	var c LandingConfig
	fs := flag.NewFlagSet("crowdload landing", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of each measured phase")
	fs.IntVar(&c.Connections, "connections", 32, "keep-alive connections of each phase (at 64 the 2 cores are saturated and latency is mostly queueing)")
	fs.IntVar(&c.Assignments, "assignments", 30000, "assignments landed cold once each, then cycled over by the warm phase (at least a fifteenth of the warm landings expected, for the per-assignment limit)")
	fs.IntVar(&c.Accounts, "accounts", 1, "Toloka requester accounts, each with its own API key, 300 requests/s and pool in the gateway; the assignments are spread over them round-robin, so above 1 one account's cap no longer bounds the cold phase")
	fs.StringVar(&c.Wrk, "wrk", "wrk", "wrk binary (Debian: apt-get install wrk)")
	fs.BoolVar(&c.TolokaRateLimits, "toloka-rate-limits", true, "keep the emulator's documented Toloka rate limits (300 requests/s per account), as in production")
	fs.Var(envFlag{&c.GatewayEnv}, "gateway-env", "extra KEY=VALUE environment for the gateway, comma-separated or repeated (e.g. CROWDGATE_LANDING_LIMIT_ASSIGNMENT=100/s,burst=100 for short runs on few assignments)")
	fs.StringVar(&c.RedisServer, "redis-server", "redis-server", "redis-server binary (started with appendonly yes, appendfsync always)")
	fs.StringVar(&c.Tolokasim, "tolokasim-bin", "", "tolokasim binary; empty builds ./cmd/tolokasim")
	fs.StringVar(&c.Crowdgate, "crowdgate-bin", "", "crowdgate binary; empty builds ./cmd/crowdgate")
	fs.StringVar(&c.Repo, "repo", "", "Crowdgate source tree (default: found upwards from the working directory)")
	fs.StringVar(&c.WorkDir, "work-dir", "", "directory for logs, binaries and the wrk script (default: a temporary one, removed after the run unless --keep)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work directory")
	compareFlags(fs, &c.CompareWith, &c.Pairs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `crowdload landing: landing throughput and latency, with their ceilings, in one run.

Phases: a bare Go redirect handler under wrk (the ceiling of warm landings);
the emulator alone answering GET /api/v1/assignments/{id} (the ceiling of
cold landings); cold landings (each assignment's first); warm landings
(repeat clicks) under wrk. With --accounts N the assignments are spread
over N Toloka accounts, each with its own pool and 300 requests/s, and the
report gives the gateway's and Redis's CPU and Redis's commands per cold
landing. With --compare-bin the whole run is made --pairs times with each
of two gateway binaries, alternately, and the report gives each figure's
median and range for both: on a shared machine, alternating is what tells
a change from the neighbours' load.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return LandingConfig{}, err
	}
	if fs.NArg() > 0 {
		return LandingConfig{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if c.Duration < time.Second {
		errs = append(errs, fmt.Errorf("--duration must be at least 1s, got %s", c.Duration))
	}
	if c.Connections < 1 || c.Connections > 4096 {
		errs = append(errs, fmt.Errorf("--connections must be within 1..4096, got %d", c.Connections))
	}
	if err := checkPairs(c.CompareWith, c.Pairs); err != nil {
		errs = append(errs, err)
	}
	if c.Assignments < 1 || c.Assignments > 1_000_000 {
		errs = append(errs, fmt.Errorf("--assignments must be within 1..1,000,000, got %d", c.Assignments))
	}
	switch {
	case c.Accounts < 1 || c.Accounts > maxLandingAccounts:
		errs = append(errs, fmt.Errorf("--accounts must be within 1..%d, got %d", maxLandingAccounts, c.Accounts))
	case c.Assignments >= 1 && c.Accounts > c.Assignments:
		errs = append(errs, fmt.Errorf("--accounts (%d) must not exceed --assignments (%d): every account's pool gets cold landings", c.Accounts, c.Assignments))
	}
	for _, kv := range c.GatewayEnv {
		if k, _, _ := strings.Cut(kv, "="); slices.Contains(harnessEnv, k) {
			errs = append(errs, fmt.Errorf("--gateway-env cannot set %s: crowdload sets it", k))
		}
	}
	return c, errors.Join(errs...)
}

// PhaseResult is one measured phase.
type PhaseResult struct {
	// Name names the phase.
	Name string
	// Requests counts the answers counted (the wanted status); Other
	// counts other answers (429s of a rate-limited emulator) and errors.
	Requests, Other int64
	// Elapsed is the phase's wall time.
	Elapsed time.Duration
	// P50 and P99 are latency percentiles of the counted answers (wrk's
	// for wrk phases, which include every answer).
	P50, P99 time.Duration
	// CPU is the CPU time each process used during the phase, by name.
	CPU map[string]time.Duration
	// Report is wrk's report of a wrk phase.
	Report string
}

// Rate is counted answers per second.
func (p PhaseResult) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Requests) / p.Elapsed.Seconds()
}

// LandingResult is what the landing benchmark measured.
type LandingResult struct {
	// Config is the run's configuration.
	Config LandingConfig
	// Ceiling is the bare redirect handler, Emulator the emulator alone,
	// Cold and Warm the gateway's landings.
	Ceiling, Emulator, Cold, Warm PhaseResult
	// WorkDir holds the logs and the wrk script.
	WorkDir string
	// CPUs is how many CPUs the machine has.
	CPUs int
	// RedirectsCounted and OtherOutcomes are the gateway's own count of
	// landings (crowdgate_landings_total) over the cold and warm phases:
	// redirects, and everything else (which fails the run).
	RedirectsCounted, OtherOutcomes float64
	// Accounts are the Toloka accounts and their pools, with the cold
	// landings each pool got.
	Accounts []*LandingAccount
	// ColdRedis is what Redis ran during the cold phase (INFO
	// commandstats after minus before), over every client of the run's
	// Redis: the gateway's landings and its background work alike.
	ColdRedis RedisCommandStats
}

// Cold landing targets (issue 21 item 2): CPU per cold landing.
const (
	coldTargetGatewayCPU = 400 * time.Microsecond
	coldTargetRedisCPU   = 150 * time.Microsecond
)

// coldCPU is the CPU a process used per cold landing (0 when unknown).
func (r *LandingResult) coldCPU(name string) time.Duration {
	if r.Cold.Requests <= 0 {
		return 0
	}
	return r.Cold.CPU[name] / time.Duration(r.Cold.Requests)
}

// Landing targets (issue: Toloker landing).
const (
	warmTargetRate = 30000
	warmTargetP99  = 5 * time.Millisecond
	coldTargetPart = 0.8
)

// WriteSummary prints the figures and the targets.
func (r *LandingResult) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "crowdload landing: %d connections, %s phases, %d assignments, %d CPUs, %s\n",
		r.Config.Connections, r.Config.Duration, r.Config.Assignments, r.CPUs, plural(max(len(r.Accounts), r.Config.Accounts), "Toloka account"))
	fmt.Fprintf(w, "  %-44s %10s %9s %9s  %s\n", "phase", "answers/s", "p50", "p99", "CPU per answer")
	for _, p := range []PhaseResult{r.Ceiling, r.Warm, r.Emulator, r.Cold} {
		fmt.Fprintf(w, "  %-44s %10.0f %9s %9s  %s\n", p.Name, p.Rate(), ms(p.P50), ms(p.P99), cpuPer(p.CPU, p.Requests))
	}
	warmOK := r.Warm.Rate() >= warmTargetRate && r.Warm.P99 < warmTargetP99
	fmt.Fprintf(w, "warm landings: %.0f/s p99 %s = %.0f%% of the ceiling; target >= %d/s with p99 < %s: %s\n",
		r.Warm.Rate(), ms(r.Warm.P99), 100*r.Warm.Rate()/max(r.Ceiling.Rate(), 1), warmTargetRate, ms(warmTargetP99), verdict(warmOK))
	part := r.Cold.Rate() / max(r.Emulator.Rate(), 1)
	fmt.Fprintf(w, "cold landings: %.0f/s = %.0f%% of the emulator's GET /assignments/{id}; target >= %.0f%%: %s\n",
		r.Cold.Rate(), 100*part, 100*coldTargetPart, verdict(part >= coldTargetPart))
	gw, rd := r.coldCPU("gateway"), r.coldCPU("redis")
	fmt.Fprintf(w, "cold landings CPU: %.0f/s over %s; gateway %s, Redis %s of CPU each; issue 21 targets <= %s and <= %s: %s\n",
		r.Cold.Rate(), plural(len(r.Accounts), "account"), ms(gw), ms(rd), ms(coldTargetGatewayCPU), ms(coldTargetRedisCPU),
		verdict(r.Cold.Requests > 0 && gw <= coldTargetGatewayCPU && rd <= coldTargetRedisCPU))
	if len(r.Accounts) > 1 {
		var per []string
		for _, a := range r.Accounts {
			per = append(per, strconv.FormatInt(a.ColdLandings, 10))
		}
		fmt.Fprintf(w, "cold landings per account's pool: %s\n", strings.Join(per, " "))
	}
	if r.ColdRedis != nil && r.Cold.Requests > 0 {
		fmt.Fprintf(w, "Redis per cold landing: %s\n", r.ColdRedis.Summary(r.Cold.Requests))
	}
	fmt.Fprintf(w, "gateway counted %.0f redirects and %.0f other answers over both landing phases\n", r.RedirectsCounted, r.OtherOutcomes)
}

// cpuPer renders the CPU each process spent per operation, by name:
// "gateway 50.7us, redis 5.2us"; "" when ops is 0.
func cpuPer(cpu map[string]time.Duration, ops int64) string {
	if ops <= 0 {
		return ""
	}
	var out []string
	for _, name := range slices.Sorted(mapKeys(cpu)) {
		out = append(out, fmt.Sprintf("%s %.1fus", name, float64(cpu[name].Microseconds())/float64(ops)))
	}
	return strings.Join(out, ", ")
}

// plural is "1 account", "8 accounts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// RunLanding runs the landing benchmark. An error means the run could not
// be carried out or an answer was wrong (a landing not redirected).
func RunLanding(ctx context.Context, cfg LandingConfig, progress io.Writer) (*LandingResult, error) {
	if progress == nil {
		progress = io.Discard
	}
	wrk, err := exec.LookPath(cfg.Wrk)
	if err != nil {
		return nil, fmt.Errorf("wrk not found (%v): install it (Debian: apt-get install wrk) or pass --wrk", err)
	}
	// The harness's runner starts the processes and creates the pool.
	base := Config{
		Mode: ModeThroughput, API: APIREST, Replicas: 1, Concurrency: cfg.Connections,
		RequestTimeout: 30 * time.Second, AssignmentDuration: 2 * time.Hour,
		RedisServer: cfg.RedisServer, Tolokasim: cfg.Tolokasim, Crowdgate: cfg.Crowdgate,
		TolokaRateLimits: cfg.TolokaRateLimits, Repo: cfg.Repo, WorkDir: cfg.WorkDir, Keep: cfg.Keep,
		GatewayEnv: cfg.GatewayEnv,
	}
	r, closeRunner := newRunner(base, progress)
	var runErr error
	defer func() { closeRunner(runErr) }()
	res := &LandingResult{Config: cfg, CPUs: runtime.NumCPU()}
	runErr = func() error {
		if err := r.setupInfra(ctx, nil); err != nil {
			return err
		}
		if err := r.setupResources(ctx); err != nil {
			return err
		}
		res.WorkDir = r.workDir
		accounts, err := r.setupLandingAccounts(ctx, max(cfg.Accounts, 1))
		if err != nil {
			return err
		}
		res.Accounts = accounts
		r.logf("creating %d assignments in %d pools", cfg.Assignments, len(accounts))
		ids, err := r.createAssignments(ctx, cfg.Assignments, func(i int) string {
			return accounts[accountOf(i, len(accounts))].TolokaPoolID
		})
		if err != nil {
			return err
		}
		for i, a := range accounts {
			a.Assignments = int64(len(ids) / len(accounts))
			if i < len(ids)%len(accounts) {
				a.Assignments++
			}
		}
		gw := r.ownReplicas[0]
		procs := map[string]int{"gateway": gw.PID(), "redis": r.ownRedis.proc.pid(), "emulator": r.ownToloka.proc.pid()}

		// 1. The ceiling: a bare redirect handler, in this otherwise idle
		// process.
		bare, err := serveBareRedirect()
		if err != nil {
			return err
		}
		defer bare.Close()
		script, err := writeWrkScript(r.workDir, ids)
		if err != nil {
			return err
		}
		r.logf("ceiling: wrk against a bare Go redirect handler")
		procs[bareHandlerProcess] = os.Getpid()
		res.Ceiling, err = runWrk(ctx, wrk, cfg, script, "http://"+bare.Addr().String(), procs)
		delete(procs, bareHandlerProcess)
		if err != nil {
			return err
		}
		if res.Ceiling.Other > 0 {
			return fmt.Errorf("ceiling: %d answers were not a redirect; wrk's report:\n%s", res.Ceiling.Other, res.Ceiling.Report)
		}
		res.Ceiling.Name = "ceiling: bare Go redirect handler (wrk)"

		before, err := landingOutcomes(ctx, r.hc, gw.HTTPURL())
		if err != nil {
			return err
		}
		// 2. Cold landings: every assignment once, spread over the
		// accounts' pools.
		r.logf("cold: the first landing of each of %d assignments, over %d accounts", len(ids), len(accounts))
		start := gw.HTTPURL() + "/start?assignment_id="
		redisBefore, err := redisCommandStats(ctx, r.rdb)
		if err != nil {
			return err
		}
		perPool := make([]atomic.Int64, len(accounts))
		res.Cold, err = runClient(ctx, cfg.Connections, 0, len(ids), func(i int) string { return start + ids[i] }, nil, http.StatusSeeOther, procs,
			func(i int) { perPool[accountOf(i, len(accounts))].Add(1) })
		if err != nil {
			return err
		}
		redisAfter, err := redisCommandStats(ctx, r.rdb)
		if err != nil {
			return err
		}
		res.ColdRedis = redisAfter.Sub(redisBefore)
		for i, a := range accounts {
			a.ColdLandings = perPool[i].Load()
		}
		res.Cold.Name = "cold landings (first of each assignment)"
		if res.Cold.Other > 0 {
			return fmt.Errorf("cold landings: %d answers were not a redirect (see %s)", res.Cold.Other, gw.proc.logPath)
		}
		// Every pool's cold landings, as the gateway recorded them: each
		// assignment is a Toloker of its own.
		for _, a := range accounts {
			if a.Tolokers, err = r.tolokersInPool(ctx, a.PoolID); err != nil {
				return fmt.Errorf("pool %s: %w", a.PoolID, err)
			}
			if a.Tolokers != a.Assignments || a.ColdLandings != a.Assignments {
				return fmt.Errorf("pool %s: %d assignments, %d cold landings redirected, %d Tolokers in the gateway's registry; want them equal", a.PoolID, a.Assignments, a.ColdLandings, a.Tolokers)
			}
		}

		// The emulator alone, for whole seconds of the clock at least as
		// long as the cold phase took: Toloka's limit counts fixed
		// one-second windows, so a phase that starts mid-second would get
		// part of one more window's worth.
		r.logf("emulator: GET /api/v1/assignments/{id} with the accounts' keys")
		emuURL := r.emu.apiURL() + "/assignments/"
		hdrs := make([]http.Header, len(accounts))
		for i, a := range accounts {
			hdrs[i] = http.Header{"Authorization": {"ApiKey " + a.Key}}
		}
		hdr := func(i int) http.Header { return hdrs[accountOf(i%len(ids), len(accounts))] }
		if !sleepCtx(ctx, time.Until(time.Now().Truncate(time.Second).Add(time.Second))) {
			return ctx.Err()
		}
		emuFor := max(cfg.Duration, res.Cold.Elapsed).Round(time.Second)
		res.Emulator, err = runClient(ctx, cfg.Connections, emuFor, len(ids), func(i int) string { return emuURL + ids[i%len(ids)] }, hdr, http.StatusOK, procs, nil)
		if err != nil {
			return err
		}
		res.Emulator.Name = "emulator alone: GET /assignments/{id}"

		// 3. Warm landings.
		r.logf("warm: wrk, repeat landings on the %d assignments", len(ids))
		res.Warm, err = runWrk(ctx, wrk, cfg, script, gw.HTTPURL(), procs)
		if err != nil {
			return err
		}
		res.Warm.Name = "warm landings (repeat clicks, wrk)"
		after, err := landingOutcomes(ctx, r.hc, gw.HTTPURL())
		if err != nil {
			return err
		}
		for outcome, n := range after {
			if outcome == "redirect" {
				res.RedirectsCounted = n - before[outcome]
			} else {
				res.OtherOutcomes += n - before[outcome]
			}
		}
		if res.Warm.Other > 0 || res.OtherOutcomes > 0 {
			return fmt.Errorf("warm landings: %d answers (gateway: %.0f) were not a redirect; wrk's report:\n%s", res.Warm.Other, res.OtherOutcomes, res.Warm.Report)
		}
		return nil
	}()
	return res, runErr
}

// newRunID returns a run's random id.
func newRunID() string {
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	return hex.EncodeToString(id)
}

// newRunner returns a runner for cfg and its teardown.
func newRunner(cfg Config, progress io.Writer) (*runner, func(error)) {
	r := &runner{
		cfg: cfg, progress: &syncWriter{w: progress},
		res:      &Result{Config: cfg, RunID: newRunID(), FailedAttempts: map[string]int64{}},
		failures: map[string]int64{}, examples: map[string]string{},
		memory: map[string]*ReplicaMemory{}, lastPID: map[string]int{},
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * (cfg.Concurrency + 16),
		MaxIdleConnsPerHost: 2 * (cfg.Concurrency + 16),
		IdleConnTimeout:     90 * time.Second,
	}
	r.hc = &http.Client{Transport: transport}
	r.browser = &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return r, func(err error) {
		r.teardown(err)
		transport.CloseIdleConnections()
	}
}

// createAssignments starts n assignments in parallel, the i-th in the
// Toloka pool pool(i).
func (r *runner) createAssignments(ctx context.Context, n int, pool func(i int) string) ([]string, error) {
	ids := make([]string, n)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				id, err := r.emu.createAssignment(ctx, pool(i), fmt.Sprintf("bench-%s-%07d", r.res.RunID, i))
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("creating assignments: %w", errs[0])
	}
	return ids, ctx.Err()
}

// serveBareRedirect serves the ceiling: what any Go redirect costs.
func serveBareRedirect() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	location := []string{"http://127.0.0.1:9/work?code=" + strings.Repeat("x", 71)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.URL.Query().Get("assignment_id")
		w.Header()["Location"] = location
		w.WriteHeader(http.StatusSeeOther)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln, nil
}

// writeWrkScript writes a wrk script whose requests cycle over the
// assignments, each from the next of 65,536 client addresses; the requests
// are formatted once, up front, so wrk's cost per request stays small.
func writeWrkScript(dir string, ids []string) (string, error) {
	var b strings.Builder
	b.WriteString("local ids = {\n")
	for i, id := range ids {
		fmt.Fprintf(&b, "  {%q, %q},\n", id, benchIP(i))
	}
	// init runs once wrk has set the Host header wrk.format adds.
	b.WriteString(`}
local reqs = {}
function init(args)
  for i, v in ipairs(ids) do
    reqs[i] = wrk.format("GET", "/start?assignment_id=" .. v[1], {["X-Forwarded-For"] = v[2]})
  end
end
local i = 0
function request()
  i = i % #reqs + 1
  return reqs[i]
end
`)
	path := filepath.Join(dir, "landing.lua")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// benchIP is the i-th of 65,536 client addresses.
func benchIP(i int) string { return fmt.Sprintf("10.77.%d.%d", (i>>8)&0xff, i&0xff) }

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m),`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk runs wrk with the script against base and reads its report.
func runWrk(ctx context.Context, wrk string, cfg LandingConfig, script, base string, procs map[string]int) (PhaseResult, error) {
	cmd := exec.CommandContext(ctx, wrk, "-t1", "-c"+strconv.Itoa(cfg.Connections),
		"-d"+strconv.Itoa(int(cfg.Duration/time.Second))+"s", "--latency", "-s", script, base)
	cmd.Dir = filepath.Dir(script)
	before := cpuTimes(procs)
	out, err := cmd.CombinedOutput()
	res := PhaseResult{CPU: cpuSince(procs, before)}
	if cmd.ProcessState != nil {
		res.CPU["wrk"] = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return res, fmt.Errorf("wrk: %v: %s", err, out)
	}
	res.Report = string(out)
	return res, parseWrk(string(out), &res)
}

// parseWrk reads wrk's report into res.
func parseWrk(out string, res *PhaseResult) error {
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("wrk's report has no request count: %s", out)
	}
	res.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	res.Elapsed = wrkDuration(m[2], m[3])
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		res.Other += n
		res.Requests -= n
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			res.Other += n
		}
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		d := wrkDuration(m[2], m[3])
		if m[1] == "50" {
			res.P50 = d
		} else {
			res.P99 = d
		}
	}
	if res.P99 == 0 {
		return fmt.Errorf("wrk's report has no latency distribution: %s", out)
	}
	return nil
}

func wrkDuration(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	case "m":
		return time.Duration(f * float64(time.Minute))
	}
	return time.Duration(f * float64(time.Second))
}

// runClient sends GETs over conns keep-alive connections: for d, cycling
// over n URLs, or (d == 0) each of the n URLs once, the i-th request with
// the headers hdr(i) (hdr may be nil). Answers with status want are
// counted and timed, and passed to counted (when not nil) by i.
func runClient(ctx context.Context, conns int, d time.Duration, n int, url func(int) string, hdr func(int) http.Header, want int, procs map[string]int, counted func(i int)) (PhaseResult, error) {
	transport := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.Time{}
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	var (
		next     atomic.Int64
		lat      latencies
		other    atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	before, start := cpuTimes(procs), time.Now()
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if d == 0 && i >= n {
					return
				}
				if d > 0 && time.Now().After(deadline) {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url(i), nil)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				if hdr != nil {
					maps(req.Header, hdr(i))
				}
				if want == http.StatusSeeOther { // a landing: from one of many Tolokers
					req.Header.Set("X-Forwarded-For", benchIP(i))
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == want {
					lat.add(time.Since(t0))
					if counted != nil {
						counted(i)
					}
				} else {
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res := PhaseResult{Elapsed: time.Since(start), CPU: cpuSince(procs, before), Other: other.Load()}
	s := lat.summary()
	res.Requests, res.P50, res.P99 = int64(s.Count), s.P50, s.P99
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) {
		return res, firstErr
	}
	return res, ctx.Err()
}

func maps(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}

// landingOutcomes reads crowdgate_landings_total by outcome.
func landingOutcomes(ctx context.Context, hc *http.Client, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	const prefix = `crowdgate_landings_total{outcome="`
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		outcome, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		out[outcome] = v
	}
	return out, sc.Err()
}

// cpuTimes reads each process's CPU time (user + system).
func cpuTimes(procs map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range procs {
		if d, err := processCPU(pid); err == nil {
			out[name] = d
		}
	}
	return out
}

func cpuSince(procs map[string]int, before map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, d := range cpuTimes(procs) {
		if b, ok := before[name]; ok {
			out[name] = d - b
		}
	}
	return out
}
