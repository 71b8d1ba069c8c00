package crowdload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// SubmitsConfig is one run of the submit acceptance benchmark (crowdload
// submits).
//
// The benchmark starts Redis (appendonly yes, appendfsync always), the
// emulator and one gateway, lands Sessions Tolokers through the real flow,
// then measures, in one run on one machine:
//
//  1. grpc: Concurrency callers send Submit over gRPC for Duration, each
//     with a new retry_id, round robin over the sessions;
//  2. rest: the same over REST (POST /v1/submissions, JSON);
//  3. ceiling: redis-benchmark against the same redis-server at the same
//     concurrency, EVAL of a script making the accept script's writes
//     (services/toloker/submission/lua/accept.lua) with a record of the
//     size the gateway stored.
//
// Acceptance is measured, not delivery: the gateway runs with
// CROWDGATE_SUBMIT_SYNC_TIMEOUT=-1s (Submit makes no attempt at accept
// time and answers QUEUED once the submit is durable), and the emulator
// holds every POST /tasks/external/submit open, so the delivery workers
// sit in their first Concurrency requests for the whole run. Afterwards
// the pool's totals must count every accepted submit exactly once.
type SubmitsConfig struct {
	// Sessions is how many Tolokers land (the submits go round robin
	// over their sessions).
	Sessions int
	// Concurrency is the callers in flight at once, in each phase, and
	// redis-benchmark's clients.
	Concurrency int
	// Duration is the length of each phase.
	Duration time.Duration
	// RedisBenchmark is the redis-benchmark binary; the ceiling is
	// skipped when it is missing.
	RedisBenchmark string
	// GatewayEnv, RedisServer, Tolokasim, Crowdgate, Repo, WorkDir and
	// Keep are as in Config.
	GatewayEnv                                       []string
	RedisServer, Tolokasim, Crowdgate, Repo, WorkDir string
	Keep                                             bool
}

// submitsFixedEnv are the gateway settings the benchmark depends on:
// --gateway-env cannot change them.
var submitsFixedEnv = []string{"CROWDGATE_SUBMIT_SYNC_TIMEOUT", "CROWDGATE_SUBMIT_ATTEMPT_TIMEOUT"}

// ParseSubmitsFlags reads crowdload submits' command line.
func ParseSubmitsFlags(args []string, out io.Writer) (SubmitsConfig, error) {
	var c SubmitsConfig
	fs := flag.NewFlagSet("crowdload submits", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&c.Sessions, "sessions", 64, "Tolokers landed through the real flow; the submits go round robin over their sessions")
	fs.IntVar(&c.Concurrency, "concurrency", 32, "callers in flight at once in each phase (and redis-benchmark's clients)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of each phase (gRPC, REST)")
	fs.StringVar(&c.RedisBenchmark, "redis-benchmark", "redis-benchmark", "redis-benchmark binary (Debian: apt-get install redis-tools); without it the ceiling is skipped")
	fs.Var(envFlag{&c.GatewayEnv}, "gateway-env", "extra KEY=VALUE environment for the gateway, comma-separated or repeated")
	fs.StringVar(&c.RedisServer, "redis-server", "redis-server", "redis-server binary (started with appendonly yes, appendfsync always)")
	fs.StringVar(&c.Tolokasim, "tolokasim-bin", "", "tolokasim binary; empty builds ./cmd/tolokasim")
	fs.StringVar(&c.Crowdgate, "crowdgate-bin", "", "crowdgate binary; empty builds ./cmd/crowdgate")
	fs.StringVar(&c.Repo, "repo", "", "Crowdgate source tree (default: found upwards from the working directory)")
	fs.StringVar(&c.WorkDir, "work-dir", "", "directory for logs and binaries (default: a temporary one, removed after a passing run unless --keep)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work directory")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `crowdload submits: Submit acceptance over the wire (gRPC and REST) with
Redis's own rate for the same writes, in one run.

Redis runs with appendfsync always. The gateway answers QUEUED once a submit
is durable (CROWDGATE_SUBMIT_SYNC_TIMEOUT=-1s: no attempt at accept time)
and the emulator holds every delivery open, so the durable write is
measured, not Toloka. The ceiling is redis-benchmark EVAL of the accept
script's writes at the same concurrency against the same redis-server. The
pool's totals must count every accepted submit exactly once.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return SubmitsConfig{}, err
	}
	if fs.NArg() > 0 {
		return SubmitsConfig{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if c.Sessions < 1 || c.Sessions > 100_000 {
		errs = append(errs, fmt.Errorf("--sessions must be within 1..100,000, got %d", c.Sessions))
	}
	if c.Concurrency < 1 || c.Concurrency > 4096 {
		errs = append(errs, fmt.Errorf("--concurrency must be within 1..4096, got %d", c.Concurrency))
	}
	if c.Duration < time.Second {
		errs = append(errs, fmt.Errorf("--duration must be at least 1s, got %s", c.Duration))
	}
	for _, kv := range c.GatewayEnv {
		if k, _, _ := strings.Cut(kv, "="); slices.Contains(harnessEnv, k) || slices.Contains(submitsFixedEnv, k) {
			errs = append(errs, fmt.Errorf("--gateway-env cannot set %s: crowdload submits sets it", k))
		}
	}
	return c, errors.Join(errs...)
}

// SubmitPhase is one measured phase of the submit benchmark.
type SubmitPhase struct {
	// Name names the phase.
	Name string
	// Accepted counts submits answered QUEUED (requests for the ceiling);
	// Errors the calls that failed or answered another state.
	Accepted, Errors int64
	// FirstError is an example of Errors.
	FirstError string
	// Elapsed is the window the rate is computed over.
	Elapsed time.Duration
	// P50, P99 and Max are the latencies of the accepted calls.
	P50, P99, Max time.Duration
	// GatewayCPU and RedisCPU are the processes' CPU time during the
	// phase (zero: unknown).
	GatewayCPU, RedisCPU time.Duration
	// Skipped says why the phase was not run.
	Skipped string
}

// Rate is accepted submits (or requests) per second.
func (p SubmitPhase) Rate() float64 { return Rate(int(p.Accepted), p.Elapsed) }

// SubmitsResult is what the submit benchmark measured.
type SubmitsResult struct {
	Config  SubmitsConfig
	CPUs    int
	WorkDir string
	// Sessions is how many Tolokers landed.
	Sessions int
	// GRPC, REST and Ceiling are the three phases.
	GRPC, REST, Ceiling SubmitPhase
	// RecordBytes is the size of a stored record's protobuf (the
	// ceiling's payload).
	RecordBytes int
	// Accepted is every submit answered QUEUED (warm-ups included);
	// Unconfirmed the calls that failed without an answer and may or may
	// not have been stored; Received the pool's totals afterwards.
	Accepted, Unconfirmed, Received int64
}

// TotalsOK says whether the pool's totals count every accepted submit
// once: exactly Accepted when no call went unanswered.
func (r *SubmitsResult) TotalsOK() bool {
	return r.Received >= r.Accepted && r.Received <= r.Accepted+r.Unconfirmed
}

// Submit acceptance targets (issue 21 item 4).
const (
	submitTargetShare = 0.8
	submitTargetP99   = 10 * time.Millisecond
)

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// WriteSummary prints the figures, the ratios and the targets.
func (r *SubmitsResult) WriteSummary(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\ncrowdload submits: %d concurrent callers over %d sessions, %s per phase, one gateway, redis-server appendfsync always; %d CPUs\n",
		c.Concurrency, r.Sessions, c.Duration, r.CPUs)
	fmt.Fprintln(w, "acceptance only: Submit answers QUEUED once durable (CROWDGATE_SUBMIT_SYNC_TIMEOUT=-1s), the emulator holds every delivery open")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tsubmits\tper second\tp50\tp99\tmax\tof ceiling\tgateway CPU/submit\tRedis CPU/submit\t")
	ceil := r.Ceiling.Rate()
	row := func(p SubmitPhase) {
		if p.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t\n", p.Name)
			return
		}
		share := "-"
		if ceil > 0 {
			share = fmt.Sprintf("%.1f%%", 100*p.Rate()/ceil)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.Name, p.Accepted, p.Rate(), ms(p.P50), ms(p.P99), ms(p.Max), share,
			perOp(p.GatewayCPU, p.Accepted), perOp(p.RedisCPU, p.Accepted))
	}
	row(r.GRPC)
	row(r.REST)
	row(r.Ceiling)
	tw.Flush()
	for _, p := range []SubmitPhase{r.GRPC, r.REST} {
		if p.Errors > 0 {
			fmt.Fprintf(w, "%s: %d calls failed, e.g. %s\n", p.Name, p.Errors, p.FirstError)
		}
	}
	if r.Ceiling.Skipped != "" {
		fmt.Fprintf(w, "ceiling skipped: %s\n", r.Ceiling.Skipped)
	}
	for _, p := range []SubmitPhase{r.GRPC, r.REST} {
		if p.Skipped != "" {
			continue
		}
		share := "n/a (no ceiling)"
		ok := false
		if ceil > 0 {
			share = fmt.Sprintf("%.1f%%", 100*p.Rate()/ceil)
			ok = p.Rate() >= submitTargetShare*ceil
		}
		fmt.Fprintf(w, "%s: %s of the ceiling, target >= %.0f%%: %s; p99 %s, target <= %s: %s\n", p.Name, share, 100*submitTargetShare,
			metOrNot(ok), ms(p.P99), ms(submitTargetP99), metOrNot(p.P99 > 0 && p.P99 <= submitTargetP99))
	}
	if r.RecordBytes > 0 {
		fmt.Fprintf(w, "ceiling script: SET NX GET, XADD, HSET of 7 fields (a %d-byte record, as stored), HINCRBY x2, ZADD x2, SADD, PEXPIRE; keys in one hash slot\n", r.RecordBytes)
	}
	fmt.Fprintf(w, "stored exactly once: %d submits accepted (%d unanswered), the pool's totals say %d received: %s\n",
		r.Accepted, r.Unconfirmed, r.Received, metOrNot(r.TotalsOK()))
}

// perOp is d divided over n operations, in µs.
func perOp(d time.Duration, n int64) string {
	if d <= 0 || n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", float64(d)/float64(n)/float64(time.Microsecond))
}

// RunSubmits runs the submit acceptance benchmark. An error means the run
// could not be carried out, or the totals do not count every accepted
// submit once.
func RunSubmits(ctx context.Context, cfg SubmitsConfig, progress io.Writer) (*SubmitsResult, error) {
	if progress == nil {
		progress = io.Discard
	}
	// Deliveries hang at the emulator: a long attempt timeout keeps the
	// workers in their first requests instead of retrying.
	env := append([]string{}, cfg.GatewayEnv...)
	env = append(env, "CROWDGATE_SUBMIT_SYNC_TIMEOUT=-1s", "CROWDGATE_SUBMIT_ATTEMPT_TIMEOUT=10m")
	base := Config{
		Mode: ModeThroughput, API: APIGRPC, Replicas: 1, Tolokers: cfg.Sessions, Submits: 1, Concurrency: min(cfg.Sessions, 16),
		Duration: time.Hour, DrainTimeout: time.Minute, RequestTimeout: 30 * time.Second, AssignmentDuration: 2 * time.Hour,
		RedisServer: cfg.RedisServer, Tolokasim: cfg.Tolokasim, Crowdgate: cfg.Crowdgate,
		Repo: cfg.Repo, WorkDir: cfg.WorkDir, Keep: cfg.Keep, GatewayEnv: env,
	}
	r, closeRunner := newRunner(base, progress)
	var runErr error
	defer func() { closeRunner(runErr) }()
	res := &SubmitsResult{Config: cfg, CPUs: runtime.NumCPU()}
	runErr = func() error {
		if err := r.setupInfra(ctx, nil); err != nil {
			return err
		}
		res.WorkDir = r.workDir
		if err := r.preflight(ctx); err != nil {
			return err
		}
		if err := r.setupResources(ctx); err != nil {
			return err
		}
		r.logf("landing %d Tolokers", cfg.Sessions)
		r.forEach(ctx, func(t *toloker) { r.landToloker(ctx, t) })
		var sessions []string
		for _, t := range r.tolokers {
			if t.sessionID != "" {
				sessions = append(sessions, t.sessionID)
			}
		}
		res.Sessions = len(sessions)
		if len(sessions) < cfg.Sessions {
			return fmt.Errorf("%d of %d Tolokers landed", len(sessions), cfg.Sessions)
		}
		// Park delivery: every submit to the emulator hangs until the
		// gateway gives up (CROWDGATE_SUBMIT_ATTEMPT_TIMEOUT) or stops.
		if err := r.emu.setFaults(ctx, EmulatorFaults{PathPrefix: "/api/v1/tasks/external/submit", TimeoutRate: 1}); err != nil {
			return fmt.Errorf("parking delivery: %w", err)
		}
		rep := r.replicas[0]
		procs := map[string]int{"gateway": rep.PID()}
		if r.ownRedis != nil {
			procs["redis"] = r.ownRedis.proc.pid()
		}
		var accepted, unconfirmed atomic.Int64
		var seq atomic.Int64
		phase := func(name, tag string, api gatewayAPI) SubmitPhase {
			sp := &submitPhaser{api: api, sessions: sessions, concurrency: cfg.Concurrency, prefix: "bench-" + r.res.RunID + "-" + tag, seq: &seq}
			// A short warm-up (counted in the totals, not in the figures).
			warm := sp.run(ctx, min(time.Second, cfg.Duration/5))
			accepted.Add(warm.Accepted)
			unconfirmed.Add(warm.Errors)
			r.logf("%s: %s", name, strings.TrimSpace(fmt.Sprintf("%d callers for %s", cfg.Concurrency, cfg.Duration)))
			before := cpuOf(procs)
			p := sp.run(ctx, cfg.Duration)
			after := cpuOf(procs)
			p.Name = name
			p.GatewayCPU, p.RedisCPU = after["gateway"]-before["gateway"], after["redis"]-before["redis"]
			accepted.Add(p.Accepted)
			unconfirmed.Add(p.Errors)
			r.logf("%s: %d accepted (%.0f/s, p99 %s), %d failed %s", name, p.Accepted, p.Rate(), ms(p.P99), p.Errors, p.FirstError)
			return p
		}
		gc, err := newGRPCClient(rep.GRPCAddr())
		if err != nil {
			return err
		}
		defer gc.close()
		res.GRPC = phase("gRPC Submit", "grpc", gc)
		res.REST = phase("REST POST /v1/submissions", "rest", &restClient{base: rep.HTTPURL(), hc: r.hc})
		res.Accepted, res.Unconfirmed = accepted.Load(), unconfirmed.Load()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if res.GRPC.Accepted == 0 || res.REST.Accepted == 0 {
			return fmt.Errorf("no submit accepted: gRPC %s; REST %s", res.GRPC.FirstError, res.REST.FirstError)
		}

		// Every accepted submit stored once.
		tot, err := r.poolTotals(ctx, 0)
		if err != nil {
			return fmt.Errorf("GetPoolTotals: %w", err)
		}
		res.Received = tot.Received

		// The ceiling.
		res.Ceiling.Name = "ceiling: redis-benchmark EVAL"
		rec, err := sampleRecord(ctx, r)
		if err != nil {
			return fmt.Errorf("reading a stored record: %w", err)
		}
		res.RecordBytes = len(rec["pb"])
		bin, lerr := exec.LookPath(cfg.RedisBenchmark)
		switch {
		case lerr != nil:
			res.Ceiling.Skipped = fmt.Sprintf("redis-benchmark not found (%v): install it (Debian: apt-get install redis-tools) or pass --redis-benchmark", lerr)
			r.logf("ceiling skipped: %s", res.Ceiling.Skipped)
		case r.ownRedis == nil:
			res.Ceiling.Skipped = "no redis-server of the run's own"
		default:
			n := max(20_000, int(1.5*max(res.GRPC.Rate(), res.REST.Rate())*cfg.Duration.Seconds()))
			args := redisBenchmarkArgs(r.ownRedis.port, cfg.Concurrency, n, rec)
			r.logf("ceiling: redis-benchmark -c %d -n %d EVAL (the accept script's writes)", cfg.Concurrency, n)
			before := cpuOf(procs)
			start := time.Now()
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			elapsed := time.Since(start)
			after := cpuOf(procs)
			if err != nil {
				return fmt.Errorf("redis-benchmark: %w: %s", err, out)
			}
			rps, p50, p99, mx, err := parseRedisBenchmarkCSV(string(out))
			if err != nil {
				return fmt.Errorf("redis-benchmark: %w; its output:\n%s", err, out)
			}
			res.Ceiling.Accepted = int64(n)
			// The rate as redis-benchmark reports it.
			res.Ceiling.Elapsed = time.Duration(float64(n) / rps * float64(time.Second))
			if rps <= 0 {
				res.Ceiling.Elapsed = elapsed
			}
			res.Ceiling.P50, res.Ceiling.P99, res.Ceiling.Max = p50, p99, mx
			res.Ceiling.RedisCPU = after["redis"] - before["redis"]
		}
		if !res.TotalsOK() {
			return fmt.Errorf("the pool's totals say %d received, but %d submits were accepted (%d unanswered)", res.Received, res.Accepted, res.Unconfirmed)
		}
		return nil
	}()
	return res, runErr
}

// cpuOf reads the processes' CPU time (missing ones are left out).
func cpuOf(procs map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range procs {
		if pid == 0 {
			continue
		}
		if d, err := processCPU(pid); err == nil {
			out[name] = d
		}
	}
	return out
}

// submitPhaser sends Submits from concurrency callers.
type submitPhaser struct {
	api         gatewayAPI
	sessions    []string
	concurrency int
	prefix      string
	seq         *atomic.Int64
}

// run sends submits for d and returns what was answered.
func (s *submitPhaser) run(ctx context.Context, d time.Duration) SubmitPhase {
	var (
		p        SubmitPhase
		mu       sync.Mutex
		lat      []time.Duration
		errs     atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range s.concurrency {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				n := s.seq.Add(1)
				req := &crowdgatev1.SubmitRequest{
					SessionId: s.sessions[int(n)%len(s.sessions)], RetryId: s.prefix + "-" + strconv.FormatInt(n, 10),
					Reward: "0.05", Quality: "0.9", CustomLog: `{"ip":"10.0.0.1"}`, RealTasksCount: proto.Int32(4),
				}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				t0 := time.Now()
				resp, err := s.api.Submit(cctx, req)
				took := time.Since(t0)
				cancel()
				if err == nil && resp.GetSubmission().GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED {
					err = fmt.Errorf("submit %s answered state %s", req.RetryId, resp.GetSubmission().GetState())
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, took)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	p.Elapsed = time.Since(start)
	p.Accepted, p.Errors = int64(len(lat)), errs.Load()
	if e, ok := firstErr.Load().(string); ok {
		p.FirstError = e
	}
	sum := Summarize(lat)
	p.P50, p.P99, p.Max = sum.P50, sum.P99, sum.Max
	return p
}

// sampleRecord returns the fields of one submission record the gateway
// stored (the outbox's record keys: <prefix>sub:{sub:N}:<tenant>:<id>).
func sampleRecord(ctx context.Context, r *runner) (map[string]string, error) {
	iter := r.rdb.Scan(ctx, 0, "*sub:{sub:*", 1000).Iterator()
	for iter.Next(ctx) {
		if t, err := r.rdb.Type(ctx, iter.Val()).Result(); err != nil || t != "hash" {
			continue
		}
		rec, err := r.rdb.HGetAll(ctx, iter.Val()).Result()
		if err != nil {
			return nil, err
		}
		if rec["pb"] != "" {
			return rec, nil
		}
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("no submission record (a hash with pb under *sub:{sub:*) in Redis")
}

// acceptCeilingScript makes the writes accept.lua makes for a submit with
// a retry_id in a session and naming its assignment, without an inline
// attempt's lease: SET NX GET of the idempotency key, XADD, HSET of the
// record, HINCRBY x2 of the pool's totals, ZADD of the pool's index, SADD
// and PEXPIRE of the session's set, ZADD of the assignment's index.
const acceptCeilingScript = `local existing = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET')
if existing then return {'replay', existing} end
local eid = redis.call('XADD', KEYS[5], '*', 't', ARGV[2], 's', ARGV[1])
redis.call('HSET', KEYS[2], 'pb', ARGV[3], 'st', '1', 'amt', ARGV[4], 'tp', ARGV[5], 'cred', ARGV[6], 'fp', ARGV[7], 'eid', eid)
redis.call('HINCRBY', KEYS[3], 'queued', 1)
redis.call('HINCRBY', KEYS[3], 'rq', ARGV[4])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
redis.call('PEXPIRE', KEYS[6], 2592000000)
redis.call('ZADD', KEYS[7], 0, ARGV[1])
return {'new', ARGV[1], eid}`

// redisBenchmarkArgs are redis-benchmark's arguments for the ceiling: n
// EVALs of acceptCeilingScript from clients connections, with a new
// idempotency key, record and id in each (__rand_int__), the shared keys
// (totals, index, stream, session set, assignment index) shared, every key
// in one hash slot, and rec's field sizes (the record's protobuf as
// printable bytes of its length).
func redisBenchmarkArgs(port, clients, n int, rec map[string]string) []string {
	const tag = "crowdload-ceiling:{sub:0}:"
	field := func(k, def string) string {
		if v := rec[k]; v != "" && !strings.ContainsAny(v, "\x00\r\n") {
			return v
		}
		return def
	}
	return []string{
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-c", strconv.Itoa(clients), "-n", strconv.Itoa(n),
		"-r", "1000000000", "--csv",
		// One line: redis-benchmark --csv names the test by its command.
		"EVAL", strings.ReplaceAll(acceptCeilingScript, "\n", " "), "7",
		tag + "idem:__rand_int__", tag + "sub:__rand_int__", tag + "tot", tag + "idx", tag + "outbox", tag + "sess", tag + "asub",
		"01CEILING__rand_int__", // id: the length of a submission id (26)
		"default",
		strings.Repeat("x", len(rec["pb"])),
		field("amt", "5000000"), field("tp", "toloka-pool-0000000000"), field("cred", "credential-0000000000"),
		field("fp", strings.Repeat("f", 64)),
	}
}

// parseRedisBenchmarkCSV reads redis-benchmark --csv's answer (7.x: a
// header line, then "test","rps","avg_latency_ms","min_latency_ms",
// "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms").
func parseRedisBenchmarkCSV(out string) (rps float64, p50, p99, maxLat time.Duration, err error) {
	var header []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, `"`) {
			continue
		}
		fields := splitCSVQuoted(line)
		if header == nil && slices.Contains(fields, "rps") {
			header = fields
			continue
		}
		if header == nil || len(fields) != len(header) {
			continue
		}
		get := func(name string) (float64, error) {
			i := slices.Index(header, name)
			if i < 0 {
				return 0, fmt.Errorf("no %s column", name)
			}
			return strconv.ParseFloat(fields[i], 64)
		}
		msDur := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
		var v50, v99, vmax float64
		if rps, err = get("rps"); err != nil {
			return
		}
		if v50, err = get("p50_latency_ms"); err != nil {
			return
		}
		if v99, err = get("p99_latency_ms"); err != nil {
			return
		}
		if vmax, err = get("max_latency_ms"); err != nil {
			return
		}
		return rps, msDur(v50), msDur(v99), msDur(vmax), nil
	}
	return 0, 0, 0, 0, errors.New("no CSV result line")
}

// splitCSVQuoted splits a line of "a","b","c" (redis-benchmark quotes
// every field; the test name may hold commas and doubled quotes).
func splitCSVQuoted(line string) []string {
	var out []string
	var b strings.Builder
	in := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"' && in && i+1 < len(line) && line[i+1] == '"':
			b.WriteByte('"')
			i++
		case c == '"':
			in = !in
		case c == ',' && !in:
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(out, b.String())
}
