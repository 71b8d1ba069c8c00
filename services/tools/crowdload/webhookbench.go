package crowdload

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// WebhooksConfig is one run of the webhook fan-out benchmark (crowdload
// webhooks).
//
// The benchmark starts Redis, the emulator and one gateway, registers a
// webhook receiver on 127.0.0.1 (WebhookReceiver: every delivery verified
// with the Standard Webhooks library, answered 204), then measures, in one
// run on one machine:
//
//  1. live: Tolokers Tolokers take the real flow (land, exchange, Submits
//     submits, the last with close_session: 2+Submits events each); each
//     event's time from its create_time to its first receipt, and events
//     delivered per second while they are made;
//  2. backlog: a second receiver is registered and every event of the run
//     is redelivered to it at once (RedeliverWebhookEvents): the
//     dispatcher's fan-out rate when it is not waiting for events;
//  3. ceiling: wrk against the first receiver with one signed delivery (the
//     same verification and counting per request), for Duration.
//
// Every event is also reconciled as in --webhook runs: the run fails if one
// is missing, twice, or wrongly signed.
type WebhooksConfig struct {
	// Tolokers and Submits size the flow (events: Tolokers x (2+Submits)
	// and pool.opened).
	Tolokers, Submits int
	// Concurrency is how many Tolokers are in flight at once.
	Concurrency int
	// Connections and Duration are wrk's.
	Connections int
	Duration    time.Duration
	// Wait bounds the wait for delivery to catch up, in each phase.
	Wait time.Duration
	// Wrk is the wrk binary; the ceiling is skipped when it is missing.
	Wrk string
	// TolokaRateLimits keeps the emulator's documented rate limits (off
	// by default: the flow is there to make events).
	TolokaRateLimits bool
	// GatewayEnv, RedisServer, Tolokasim, Crowdgate, Repo, WorkDir and
	// Keep are as in Config.
	GatewayEnv                                       []string
	RedisServer, Tolokasim, Crowdgate, Repo, WorkDir string
	Keep                                             bool
	// CompareWith, when set, is a second gateway binary: the benchmark
	// runs Pairs times with each, alternately (RunWebhooksPairs).
	CompareWith string
	// Pairs is how many runs of each binary a comparison makes.
	Pairs int
}

// ParseWebhooksFlags reads crowdload webhooks' command line.
func ParseWebhooksFlags(args []string, out io.Writer) (WebhooksConfig, error) {
	var c WebhooksConfig
	fs := flag.NewFlagSet("crowdload webhooks", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&c.Tolokers, "tolokers", 2000, "Tolokers of the flow that makes the events (each makes 2+submits events)")
	fs.IntVar(&c.Submits, "submits", 1, "submits per Toloker (the last with close_session)")
	fs.IntVar(&c.Concurrency, "concurrency", 32, "Tolokers in flight at once")
	fs.IntVar(&c.Connections, "connections", 32, "wrk's keep-alive connections (the ceiling)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of the wrk phase (the ceiling)")
	fs.DurationVar(&c.Wait, "wait", 5*time.Minute, "bound on the wait for delivery to catch up, in each phase")
	fs.StringVar(&c.Wrk, "wrk", "wrk", "wrk binary (Debian: apt-get install wrk); without it the ceiling is skipped")
	fs.BoolVar(&c.TolokaRateLimits, "toloka-rate-limits", false, "keep the emulator's documented Toloka rate limits (300 requests/s per account); off, the flow makes events faster")
	fs.Var(envFlag{&c.GatewayEnv}, "gateway-env", "extra KEY=VALUE environment for the gateway, comma-separated or repeated (e.g. CROWDGATE_WEBHOOK_CONCURRENCY=64)")
	fs.StringVar(&c.RedisServer, "redis-server", "redis-server", "redis-server binary (started with appendonly yes, appendfsync always)")
	fs.StringVar(&c.Tolokasim, "tolokasim-bin", "", "tolokasim binary; empty builds ./cmd/tolokasim")
	fs.StringVar(&c.Crowdgate, "crowdgate-bin", "", "crowdgate binary; empty builds ./cmd/crowdgate")
	fs.StringVar(&c.Repo, "repo", "", "Crowdgate source tree (default: found upwards from the working directory)")
	fs.StringVar(&c.WorkDir, "work-dir", "", "directory for logs, binaries and the wrk script (default: a temporary one, removed after a passing run unless --keep)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work directory")
	compareFlags(fs, &c.CompareWith, &c.Pairs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `crowdload webhooks: webhook fan-out into one local endpoint, with the endpoint's ceiling, in one run.

Phases: live (the real flow makes the events; each event's create_time to
its receipt, and events delivered per second); backlog (every event of the
run redelivered at once to a second endpoint: the dispatcher's rate); the
ceiling (wrk against the same receiver with one signed delivery). Every
delivery is verified with the Standard Webhooks library, and every event of
the log must be received.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return WebhooksConfig{}, err
	}
	if fs.NArg() > 0 {
		return WebhooksConfig{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if c.Tolokers < 1 || c.Tolokers > 1_000_000 {
		errs = append(errs, fmt.Errorf("--tolokers must be within 1..1,000,000, got %d", c.Tolokers))
	}
	if c.Submits < 1 || c.Submits > 100 {
		errs = append(errs, fmt.Errorf("--submits must be within 1..100, got %d", c.Submits))
	}
	if c.Concurrency < 1 || c.Connections < 1 || c.Connections > 4096 {
		errs = append(errs, fmt.Errorf("--concurrency must be at least 1 and --connections within 1..4096"))
	}
	if c.Duration < time.Second {
		errs = append(errs, fmt.Errorf("--duration must be at least 1s, got %s", c.Duration))
	}
	if c.Wait <= 0 {
		errs = append(errs, fmt.Errorf("--wait must be positive, got %s", c.Wait))
	}
	if err := checkPairs(c.CompareWith, c.Pairs); err != nil {
		errs = append(errs, err)
	}
	for _, kv := range c.GatewayEnv {
		if k, _, _ := strings.Cut(kv, "="); slices.Contains(harnessEnv, k) {
			errs = append(errs, fmt.Errorf("--gateway-env cannot set %s: crowdload sets it", k))
		}
	}
	return c, errors.Join(errs...)
}

// FanoutPhase is one measured phase of the webhook benchmark.
type FanoutPhase struct {
	// Name names the phase.
	Name string
	// Events counts distinct events received (requests for the ceiling).
	Events int64
	// Elapsed is the window the rate is computed over.
	Elapsed time.Duration
	// Latency is the phase's latency: an event's create_time (live) or
	// the redelivery request (backlog) to its first receipt; wrk's for the
	// ceiling.
	P50, P99, Max time.Duration
	// Skipped says why the phase was not run.
	Skipped string
	// CPU is the CPU time each process used during the phase, by name
	// (backlog and ceiling): "gateway", "redis", "receiver" (crowdload
	// itself: the receiver and its verification, and the harness) and,
	// for the ceiling, "wrk".
	CPU map[string]time.Duration
}

// Rate is events (or requests) per second.
func (p FanoutPhase) Rate() float64 { return Rate(int(p.Events), p.Elapsed) }

// WebhooksResult is what the webhook benchmark measured.
type WebhooksResult struct {
	Config  WebhooksConfig
	CPUs    int
	WorkDir string
	// Created is the rate events were made at during the live phase.
	Created FanoutPhase
	// Live, Backlog and Ceiling are the three phases.
	Live, Backlog, Ceiling FanoutPhase
	// Bare is a bare Go sender's rate against the same receiver (no
	// Redis, nothing durable): the most any net/http dispatcher reaches.
	Bare FanoutPhase
	// BacklogRedis is what Redis ran during the backlog phase (INFO
	// commandstats after minus before), every client's.
	BacklogRedis RedisCommandStats
	// Run is the flow's result, with its money and event reconciliation.
	Run *Result
}

// Webhook fan-out targets (issue 15).
const (
	webhookTargetShare = 0.5
	webhookTargetP99   = time.Second
)

// WriteSummary prints the figures, the ratios and the targets.
func (r *WebhooksResult) WriteSummary(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\ncrowdload webhooks: %d Tolokers x %d submits (%d events), one gateway, one endpoint on 127.0.0.1; %d CPUs\n",
		c.Tolokers, c.Submits, r.Live.Events, r.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tevents\tper second\tp50\tp99\tmax\t  CPU per event")
	row := func(p FanoutPhase) {
		if p.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t\n", p.Name)
			return
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\n", p.Name, p.Events, p.Rate(), ms(p.P50), ms(p.P99), ms(p.Max), "  "+cpuPer(p.CPU, p.Events))
	}
	row(r.Created)
	row(r.Live)
	row(r.Backlog)
	row(r.Ceiling)
	if r.Bare.Events > 0 {
		row(r.Bare)
	}
	tw.Flush()
	if r.Ceiling.Skipped != "" {
		fmt.Fprintf(w, "ceiling skipped: %s\n", r.Ceiling.Skipped)
	} else if ceil := r.Ceiling.Rate(); ceil > 0 {
		best := max(r.Backlog.Rate(), r.Live.Rate())
		fmt.Fprintf(w, "fan-out / ceiling: backlog %.1f%%, live %.1f%% (live is bounded by the rate events are made at); target >= %.0f%%: %s\n",
			100*r.Backlog.Rate()/ceil, 100*r.Live.Rate()/ceil, 100*webhookTargetShare, verdict(best >= webhookTargetShare*ceil))
		if r.Bare.Events > 0 {
			fmt.Fprintf(w, "bare Go sender / ceiling: %.1f%% (net/http, no Redis: the most a Go dispatcher reaches here); backlog / bare sender: %.1f%%\n",
				100*r.Bare.Rate()/ceil, 100*r.Backlog.Rate()/r.Bare.Rate())
		}
	}
	if r.BacklogRedis != nil && r.Backlog.Events > 0 {
		fmt.Fprintf(w, "Redis per backlog event: %s\n", r.BacklogRedis.Summary(r.Backlog.Events))
	}
	fmt.Fprintf(w, "live p99 from create_time to receipt: %s; target < %s: %s\n", ms(r.Live.P99), webhookTargetP99, verdict(r.Live.P99 > 0 && r.Live.P99 < webhookTargetP99))
	if r.Run != nil {
		if e := r.Run.EventCheck; e != nil && e.Webhook != nil {
			s := e.Webhook.Stats
			fmt.Fprintf(w, "every delivery verified with the Standard Webhooks library: %d verified, %d bad signatures, %d duplicates; %d event problems, money exit code %d\n",
				s.Verified, s.BadSignature, s.Duplicates, r.Run.Reconciliation.Count(ProblemEventLog)+r.Run.Reconciliation.Count(ProblemWebhook), r.Run.ExitCode())
		}
	}
}

// receiptStats summarises a receiver's first receipts: how many, the
// window from since (zero: the first event's create_time) to the last
// receipt, and the latency percentiles from since (zero: each event's
// create_time) to each receipt.
func receiptStats(rcs map[string]Receipt, since time.Time) FanoutPhase {
	var p FanoutPhase
	var lat []time.Duration
	var first, last time.Time
	for _, rc := range rcs {
		if rc.Accepted == 0 {
			continue
		}
		p.Events++
		from := since
		if from.IsZero() {
			from = rc.Created
		}
		lat = append(lat, rc.First.Sub(from))
		if first.IsZero() || from.Before(first) {
			first = from
		}
		if rc.First.After(last) {
			last = rc.First
		}
	}
	s := Summarize(lat)
	p.P50, p.P99, p.Max, p.Elapsed = s.P50, s.P99, s.Max, last.Sub(first)
	return p
}

// createdStats is the rate the events were made at: from the first
// create_time to the last.
func createdStats(rcs map[string]Receipt) FanoutPhase {
	var first, last time.Time
	p := FanoutPhase{Name: "events made by the flow (create_time)"}
	for _, rc := range rcs {
		p.Events++
		if first.IsZero() || rc.Created.Before(first) {
			first = rc.Created
		}
		if rc.Created.After(last) {
			last = rc.Created
		}
	}
	p.Elapsed = last.Sub(first)
	return p
}

// RunWebhooks runs the webhook fan-out benchmark. An error means the run
// could not be carried out, or an event was lost or wrongly signed.
func RunWebhooks(ctx context.Context, cfg WebhooksConfig, progress io.Writer) (*WebhooksResult, error) {
	if progress == nil {
		progress = io.Discard
	}
	base := Config{
		Mode: ModeThroughput, API: APIREST, Replicas: 1, Tolokers: cfg.Tolokers, Submits: cfg.Submits, Concurrency: cfg.Concurrency,
		Duration: time.Hour, DrainTimeout: cfg.Wait, RequestTimeout: 30 * time.Second, AssignmentDuration: 2 * time.Hour,
		RedisServer: cfg.RedisServer, Tolokasim: cfg.Tolokasim, Crowdgate: cfg.Crowdgate,
		TolokaRateLimits: cfg.TolokaRateLimits, Repo: cfg.Repo, WorkDir: cfg.WorkDir, Keep: cfg.Keep,
		GatewayEnv: cfg.GatewayEnv, Webhook: true, WebhookWait: cfg.Wait,
	}
	r, closeRunner := newRunner(base, progress)
	var runErr error
	defer func() { closeRunner(runErr) }()
	res := &WebhooksResult{Config: cfg, CPUs: runtime.NumCPU(), Run: r.res}
	runErr = func() error {
		if err := r.setupInfra(ctx, nil); err != nil {
			return err
		}
		if err := r.preflight(ctx); err != nil {
			return err
		}
		setupStart := time.Now()
		if err := r.setupResources(ctx); err != nil {
			return err
		}
		res.WorkDir = r.workDir

		// 1. Live.
		r.logf("live: %d Tolokers x %d submits, each event delivered as it is made", cfg.Tolokers, cfg.Submits)
		r.start = time.Now()
		if err := r.load(ctx); err != nil {
			return err
		}
		r.settle(context.WithoutCancel(ctx))
		r.finish()
		if code := r.res.ExitCode(); code != 0 {
			var b strings.Builder
			r.res.WriteSummary(&b)
			return fmt.Errorf("the flow did not reconcile (exit code %d):%s", code, b.String())
		}
		rcs := r.hook.Receipts()
		res.Created = createdStats(rcs)
		res.Live = receiptStats(rcs, time.Time{})
		res.Live.Name = "live: create_time to receipt"

		// 2. Backlog: every event again, at once, to a second receiver.
		h2, err := NewWebhookReceiver(0, nil, 1)
		if err != nil {
			return err
		}
		defer h2.Close()
		ep, err := setupCall(ctx, r.cfg.RequestTimeout, func(ctx context.Context) (*crowdgatev1.CreateWebhookEndpointResponse, error) {
			return r.apis[0].CreateWebhookEndpoint(ctx, &crowdgatev1.CreateWebhookEndpointRequest{Url: h2.URL(), Description: "crowdload webhooks backlog " + r.res.RunID})
		})
		if err != nil {
			return fmt.Errorf("backlog: CreateWebhookEndpoint: %w", err)
		}
		if err := h2.SetSecret(ep.GetSecret()); err != nil {
			return err
		}
		want := len(rcs)
		r.logf("backlog: redelivering the run's %d events to a second endpoint at once", want)
		procs := map[string]int{"gateway": r.ownReplicas[0].PID(), "redis": r.ownRedis.proc.pid(), "receiver": os.Getpid()}
		cpu0 := cpuTimes(procs)
		redis0, err := redisCommandStats(ctx, r.rdb)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := setupCall(ctx, 5*time.Minute, func(ctx context.Context) (*crowdgatev1.RedeliverWebhookEventsResponse, error) {
			return r.apis[0].RedeliverWebhookEvents(ctx, &crowdgatev1.RedeliverWebhookEventsRequest{
				EndpointId: ep.GetEndpoint().GetEndpointId(), StartTime: timestamppb.New(setupStart.Add(-time.Second)),
			})
		}); err != nil {
			return fmt.Errorf("backlog: RedeliverWebhookEvents: %w", err)
		}
		r.logf("backlog: every delivery queued after %s", time.Since(t0).Round(time.Millisecond))
		if err := waitReceived(ctx, h2, want, cfg.Wait); err != nil {
			return fmt.Errorf("backlog: %w", err)
		}
		res.Backlog = receiptStats(h2.Receipts(), t0)
		res.Backlog.CPU = cpuSince(procs, cpu0)
		redis1, err := redisCommandStats(ctx, r.rdb)
		if err != nil {
			return err
		}
		res.BacklogRedis = redis1.Sub(redis0)
		res.Backlog.Name = "backlog: redelivery request to receipt"
		if s := h2.Stats(); s.BadSignature+s.Malformed > 0 {
			return fmt.Errorf("backlog: %d deliveries failed verification (%v)", s.BadSignature+s.Malformed, h2.Errors())
		}

		// 3. The ceiling.
		res.Ceiling.Name = "ceiling: wrk against the same receiver"
		wrk, err := exec.LookPath(cfg.Wrk)
		if err != nil {
			res.Ceiling.Skipped = fmt.Sprintf("wrk not found (%v): install it (Debian: apt-get install wrk) or pass --wrk", err)
			r.logf("ceiling skipped: %s", res.Ceiling.Skipped)
			return nil
		}
		script, ev, err := writeWebhookWrkScript(r.workDir, r.hookSecret, rcs, r)
		if err != nil {
			return err
		}
		r.logf("ceiling: wrk against the receiver with one signed delivery")
		ph, err := runWrk(ctx, wrk, LandingConfig{Connections: cfg.Connections, Duration: cfg.Duration}, script, r.hook.URL(), procs)
		if err != nil {
			return err
		}
		if ph.Other > 0 {
			return fmt.Errorf("ceiling: %d answers were not 2xx; wrk's report:\n%s", ph.Other, ph.Report)
		}
		res.Ceiling.Events, res.Ceiling.Elapsed, res.Ceiling.P50, res.Ceiling.P99 = ph.Requests, ph.Elapsed, ph.P50, ph.P99
		res.Ceiling.CPU = ph.CPU

		// 4. The bare sender: what a Go sender with nothing durable to do
		// reaches against the same receiver.
		r.logf("floor: a bare Go sender (no Redis) against the receiver")
		res.Bare, err = runBareSender(ctx, r.workDir, r.hook.URL(), r.hookSecret, ev, cfg.Duration, procs)
		return err
	}()
	return res, runErr
}

// waitReceived waits until h has answered n distinct events 2xx.
func waitReceived(ctx context.Context, h *WebhookReceiver, n int, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		changed := h.Changed()
		if got := h.Stats().Distinct; got >= int64(n) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d events received within %s", h.Stats().Distinct, n, wait)
		}
	}
}

// writeWebhookWrkScript writes a wrk script that POSTs one real event of
// the run, signed now with the endpoint's secret (the receiver verifies it
// as any delivery: within the library's 5-minute tolerance).
func writeWebhookWrkScript(dir, secret string, rcs map[string]Receipt, r *runner) (string, *crowdgatev1.Event, error) {
	log, _, err := r.readEvents(context.Background(), "")
	if err != nil {
		return "", nil, err
	}
	var ev *crowdgatev1.Event
	for _, e := range log {
		if _, ok := rcs[e.GetEventId()]; ok && e.GetSubmission() != nil {
			ev = e
			break
		}
	}
	if ev == nil && len(log) > 0 {
		ev = log[len(log)-1]
	}
	if ev == nil {
		return "", nil, errors.New("no event to send")
	}
	ev.Cursor = ""
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
	if err != nil {
		return "", nil, err
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return "", nil, err
	}
	now := time.Now()
	sig, err := wh.Sign(ev.GetEventId(), now, body)
	if err != nil {
		return "", nil, err
	}
	if strings.Contains(string(body), "]==]") {
		return "", nil, errors.New("the event's body cannot be quoted for wrk")
	}
	script := fmt.Sprintf(`wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["webhook-id"] = %q
wrk.headers["webhook-timestamp"] = %q
wrk.headers["webhook-signature"] = %q
`, body, ev.GetEventId(), strconv.FormatInt(now.Unix(), 10), sig)
	path := filepath.Join(dir, "webhook.lua")
	return path, ev, os.WriteFile(path, []byte(script), 0o644)
}
