package crowdload

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// Result is what a run found.
type Result struct {
	// Config is the configuration the run used.
	Config Config
	// RunID tags everything the run created (user ids, retry_ids, the
	// Redis key prefix).
	RunID string
	// WorkDir holds the logs (and Redis's AOF).
	WorkDir string
	// WorkDirKept reports whether WorkDir was left on disk.
	WorkDirKept bool
	// PoolID and TolokaPoolID name the pool the run used.
	PoolID, TolokaPoolID string

	// LandingPhase and SubmitPhase are the wall times the rates are
	// computed over (the same, whole load phase in chaos mode).
	LandingPhase, SubmitPhase time.Duration
	// Landing is GET /start until the redirect; Exchange is the
	// platform's code exchange; Submit is from a submit's first attempt
	// until the gateway accepted it (retries included).
	Landing, Exchange, Submit LatencySummary
	// Landed counts Tolokers who reached the platform with a session.
	Landed int
	// TolokersDone counts Tolokers whose every submit was accepted.
	TolokersDone int
	// TolokersFailed counts Tolokers who could not land or finish.
	TolokersFailed int
	// SubmitsNotSent counts planned submits never sent.
	SubmitsNotSent int
	// Attempts counts submit attempts; Retries counts resends of a
	// retry_id after no answer or a retryable error.
	Attempts, Retries int64
	// FailedAttempts counts failed calls of the flow by cause.
	FailedAttempts map[string]int64
	// Errors are examples of failures, one per distinct cause.
	Errors []string

	// Faults is the emulator fault configuration of a chaos run.
	Faults EmulatorFaults
	// Bursts counts 429 bursts injected.
	Bursts int
	// KillsPlanned and RedisRestartsPlanned are what the run meant to do;
	// Events is what it did.
	KillsPlanned, RedisRestartsPlanned int
	Events                             []ChaosEvent

	// Redis is Redis's memory (INFO memory used_memory).
	Redis RedisMemory
	// Gateways is each replica's resident memory during the run.
	Gateways []ReplicaMemory

	// Drained reports whether the outbox drained (GetPoolTotals queued ==
	// 0) and the ledger caught up before the drain timeout.
	Drained bool
	// DrainWait is how long the drain took.
	DrainWait time.Duration
	// Totals is the gateway's GetPoolTotals after the drain (nil if it
	// could not be read).
	Totals *PoolTotals
	// Reconciliation compares what was sent with the ledger.
	Reconciliation Reconciliation
	// EventCheck is the reconciliation of the tenant's event log and of
	// the webhook receiver (--webhook; nil otherwise). Its problems are in
	// Reconciliation.Problems (kinds ProblemEventLog and ProblemWebhook).
	EventCheck *EventCheck
	// ReceiverErrors are examples of deliveries the receiver refused.
	ReceiverErrors []string
	// Incomplete lists why the run is not a full pass even if the money
	// that was confirmed reconciles.
	Incomplete []string
	// Soak is the memory curve of a soak run (--memory-flat-after; nil
	// otherwise).
	Soak *SoakResult
}

// ChaosEvent is one replica kill or Redis restart.
type ChaosEvent struct {
	// Kind is "kill" or "redis restart".
	Kind string
	// Target names the replica (or "redis").
	Target string
	// At is when it happened, from the start of the load.
	At time.Duration
	// Accepted is how many submits had been accepted then.
	Accepted int64
	// Down is how long until the target was ready again.
	Down time.Duration
	// Err is why the restart failed, if it did.
	Err string
}

// RedisMemory is Redis's used_memory around the moment every session of a
// throughput run is live.
type RedisMemory struct {
	// Known reports whether INFO memory could be read.
	Known bool
	// Before is used_memory after setup, before any landing; After is
	// used_memory with LiveSessions sessions live (throughput mode).
	Before, After uint64
	// LiveSessions is how many sessions were live at After.
	LiveSessions int
	// Series is used_memory sampled every second.
	Series MemorySeries
}

// PerSession is (After-Before)/LiveSessions in bytes, 0 when unknown.
func (m RedisMemory) PerSession() float64 {
	if !m.Known || m.LiveSessions == 0 || m.After == 0 {
		return 0
	}
	return (float64(m.After) - float64(m.Before)) / float64(m.LiveSessions)
}

// ReplicaMemory is one gateway replica's resident memory.
type ReplicaMemory struct {
	// Name is the replica's name.
	Name string
	// Source is where RSS came from: "VmRSS" (/proc/<pid>/status of a
	// replica started here) or "/metrics" (process_resident_memory_bytes).
	Source string
	// RSS is the sampled series (start, peak, end).
	RSS MemorySeries
	// Restarts counts new pids seen after the first.
	Restarts int
}

// ExitCode is the command's exit status for the result (see --help): 0
// pass, 1 money wrong, 4 incomplete.
func (r *Result) ExitCode() int {
	hard, soft := false, false
	for _, p := range r.Reconciliation.Problems {
		switch p.Kind {
		case ProblemMissing, ProblemTotal, ProblemGatewayTotals, ProblemRegistry, ProblemEventLog, ProblemWebhook:
			// Before the outbox drained a missing payment may be late,
			// not lost.
			if r.Drained {
				hard = true
			} else {
				soft = true
			}
		default:
			hard = true
		}
	}
	if r.Soak != nil && len(r.Soak.Verdicts) > 0 && !r.Soak.Flat() {
		hard = true
	}
	switch {
	case hard:
		return 1
	case soft || len(r.Incomplete) > 0:
		return 4
	}
	return 0
}

// errDurationCap is the cause of a load stopped by --duration.
var errDurationCap = errors.New("--duration passed")

// testHooks let the package's tests replace processes by in-process fakes.
type testHooks struct {
	// gatewayToloka, when set, is the emulator base URL the started
	// replicas are given instead of the emulator's own (a tampering proxy
	// in front of it).
	gatewayToloka string
	// landOnly Tolokers (the first ones) land and never submit in
	// throughput mode: their sessions stay open until the settle ends
	// them (--webhook).
	landOnly int
}

// toloker is one simulated Toloker.
type toloker struct {
	idx          int
	userID       string
	home         int // replica the Toloker's browser and platform start on
	assignmentID string
	sessionID    string
	submits      []*submitRecord
	failed       bool
}

// submitRecord is one submit of a Toloker.
type submitRecord struct {
	retryID       string
	tolokaRetryID string // as the gateway answered it
	reward        money.Decimal
	outcome       Outcome // 0: never sent
}

type counters struct {
	landed, done, failed, sent, accepted, refused, attempts, retries, errors, kills, redisRestarts atomic.Int64
}

// runner carries one run.
type runner struct {
	cfg      Config
	hooks    *testHooks
	res      *Result
	progress io.Writer
	start    time.Time

	workDir      string
	ownWorkDir   bool
	hc, browser  *http.Client
	emu          *emulator
	tolokaKey    string
	redisURL     string
	rdb          *redis.Client
	ownRedis     *redisServer
	ownToloka    *tolokasimServer
	ownReplicas  []*crowdgateReplica
	replicas     []replica
	apis         []gatewayAPI
	grpcClients  []*grpcClient
	platform     *platform
	hook         *WebhookReceiver // --webhook
	hookBefore   map[string]bool  // event ids in the log before the endpoint
	hookTypes    []string         // the endpoint's event types
	hookSecret   string           // its signing secret
	hookEndpoint string           // its endpoint id

	poolID, tolokaPoolID string
	tolokers             []*toloker

	c                  counters
	landing, exchanges latencies
	submitLat          latencies
	exchangeRR         atomic.Uint64

	abortMu sync.Mutex
	abort   context.CancelCauseFunc // stops the load; nil outside it

	mu       sync.Mutex
	failures map[string]int64
	examples map[string]string
	events   []ChaosEvent
	memory   map[string]*ReplicaMemory
	lastPID  map[string]int
	redisMem MemorySeries
	bursts   int
	soak     []SoakSample
}

// Run carries out one run as cfg says, writing progress lines to progress,
// and returns what it found. The error is non-nil when the run could not be
// carried out (it wraps ErrUnimplemented when the gateway lacks an RPC the
// flow needs); the Result then says how far it got.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	return run(ctx, cfg, progress, nil)
}

func run(ctx context.Context, cfg Config, progress io.Writer, hooks *testHooks) (_ *Result, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	r, closeRunner := newRunner(cfg, progress)
	defer func() { closeRunner(err) }()
	r.hooks = hooks
	if err := r.setupInfra(ctx, hooks); err != nil {
		return r.res, err
	}
	if err := r.preflight(ctx); err != nil {
		return r.res, err
	}
	if err := r.setupResources(ctx); err != nil {
		return r.res, err
	}
	if cfg.Mode == ModeChaos {
		r.res.KillsPlanned, r.res.RedisRestartsPlanned = cfg.Kills, cfg.RedisRestarts
		if r.ownRedis == nil {
			r.res.RedisRestartsPlanned = 0
		}
	}
	r.start = time.Now()
	stopBackground := r.startBackground(ctx)
	loadErr := r.load(ctx)
	if loadErr == nil {
		// Reconcile what was sent even after an interrupt (bounded by
		// the drain timeout).
		r.settle(context.WithoutCancel(ctx))
	}
	stopBackground()
	r.finish()
	return r.res, loadErr
}

// syncWriter serializes writes from the run's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// logf writes one line to the progress output.
func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.progress, "crowdload: "+format+"\n", args...)
}

// setupInfra starts (or connects to) Redis, the emulator and the replicas.
func (r *runner) setupInfra(ctx context.Context, hooks *testHooks) error {
	cfg := r.cfg
	r.workDir, r.ownWorkDir = cfg.WorkDir, cfg.WorkDir == ""
	if r.ownWorkDir {
		d, err := os.MkdirTemp("", "crowdload-")
		if err != nil {
			return err
		}
		r.workDir = d
	} else if err := os.MkdirAll(r.workDir, 0o755); err != nil {
		return err
	}
	r.res.WorkDir = r.workDir
	if cfg.Webhook {
		if err := r.startReceiver(); err != nil {
			return err
		}
	}

	var repo string
	needBuild := (cfg.TolokaURL == "" && cfg.Tolokasim == "") || (len(cfg.Gateways) == 0 && cfg.Crowdgate == "")
	if needBuild {
		var err error
		if repo, err = findRepo(cfg.Repo); err != nil {
			return err
		}
	}
	binary := func(given, pkg, name string) (string, error) {
		if given != "" {
			return given, nil
		}
		out := filepath.Join(r.workDir, "bin", name)
		r.logf("building %s", pkg)
		return out, buildBinary(ctx, repo, pkg, out)
	}

	// Redis.
	r.redisURL = cfg.RedisURL
	if r.redisURL == "" {
		rs, err := startRedis(ctx, cfg.RedisServer, r.workDir)
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		r.ownRedis, r.redisURL = rs, rs.url
		r.logf("redis-server on %s (appendonly yes, appendfsync always)", rs.url)
	}
	opts, err := redis.ParseURL(r.redisURL)
	if err != nil {
		return fmt.Errorf("redis URL: %w", err)
	}
	r.rdb = redis.NewClient(opts)
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s does not answer: %w", r.redisURL, err)
	}

	// The emulator.
	tolokaURL := cfg.TolokaURL
	if tolokaURL == "" {
		bin, err := binary(cfg.Tolokasim, "./cmd/tolokasim", "tolokasim")
		if err != nil {
			return err
		}
		ts, err := startTolokasim(ctx, bin, r.workDir, cfg.TolokaRateLimits, r.hc)
		if err != nil {
			return fmt.Errorf("tolokasim: %w", err)
		}
		r.ownToloka, tolokaURL = ts, ts.url
		r.logf("tolokasim on %s", ts.url)
	}
	r.emu = newEmulator(tolokaURL, r.hc)
	if err := r.emu.healthy(ctx); err != nil {
		return err
	}
	r.tolokaKey = "crowdload-key-" + r.res.RunID
	if err := r.emu.addAPIKey(ctx, r.tolokaKey, "crowdload-"+r.res.RunID); err != nil {
		return err
	}

	// The gateways.
	switch {
	case len(cfg.Gateways) > 0:
		for i, u := range cfg.Gateways {
			rep := &externalReplica{name: fmt.Sprintf("gateway-%d", i+1), httpURL: strings.TrimRight(u, "/")}
			if i < len(cfg.GatewaysGRPC) {
				rep.grpcAddr = cfg.GatewaysGRPC[i]
			}
			r.replicas = append(r.replicas, rep)
		}
	default:
		bin, err := binary(cfg.Crowdgate, "./cmd/crowdgate", "crowdgate")
		if err != nil {
			return err
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		env := crowdgateEnv{
			RedisURL: r.redisURL, RedisPrefix: "crowdload:" + r.res.RunID + ":",
			TolokaAPIURL: r.emu.apiURL(), EncryptionKey: base64.StdEncoding.EncodeToString(key),
			Extra: cfg.GatewayEnv, Webhook: cfg.Webhook,
		}
		if hooks != nil && hooks.gatewayToloka != "" {
			env.TolokaAPIURL = strings.TrimRight(hooks.gatewayToloka, "/") + "/api/v1"
		}
		for i := range cfg.Replicas {
			g, err := startCrowdgate(ctx, fmt.Sprintf("gateway-%d", i+1), bin, r.workDir, env, r.hc)
			if err != nil {
				return err
			}
			r.ownReplicas = append(r.ownReplicas, g)
			r.replicas = append(r.replicas, g)
			r.logf("%s on %s (gRPC %s, pid %d)", g.Name(), g.HTTPURL(), g.GRPCAddr(), g.PID())
		}
	}
	for _, rep := range r.replicas {
		switch r.cfg.API {
		case APIGRPC:
			if rep.GRPCAddr() == "" {
				return fmt.Errorf("%s: no gRPC address for --api=grpc", rep.Name())
			}
			c, err := newGRPCClient(rep.GRPCAddr())
			if err != nil {
				return err
			}
			r.grpcClients = append(r.grpcClients, c)
			r.apis = append(r.apis, c)
		default:
			r.apis = append(r.apis, &restClient{base: rep.HTTPURL(), hc: r.hc})
		}
	}
	return nil
}

// preflight calls every RPC the flow needs with an empty request, and the
// landing without an assignment, and fails with ErrUnimplemented naming
// everything that is missing.
func (r *runner) preflight(ctx context.Context) error {
	var missing []string
	for _, p := range probes {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		err := p.call(pctx, r.apis[0])
		cancel()
		switch {
		case unimplemented(err):
			missing = append(missing, p.name)
		case err != nil && retryable(err):
			var ce *callError
			if errors.As(err, &ce) && ce.NoAnswer {
				return fmt.Errorf("preflight %s: %w", p.name, err)
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.replicas[0].HTTPURL()+"/start", nil)
	if err != nil {
		return err
	}
	resp, err := r.browser.Do(req)
	if err != nil {
		return fmt.Errorf("preflight landing: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && strings.TrimSpace(string(body)) == "404 page not found" {
		missing = append(missing, "the landing (GET /start)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w for %s", ErrUnimplemented, strings.Join(missing, ", "))
	}
	return nil
}

// setupCall retries f on retryable errors (a few times, setup runs on a
// healthy system).
func setupCall[T any](ctx context.Context, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	var zero T
	var err error
	for attempt := range 5 {
		actx, cancel := context.WithTimeout(ctx, timeout)
		var v T
		v, err = f(actx)
		cancel()
		if err == nil {
			return v, nil
		}
		if unimplemented(err) {
			return zero, fmt.Errorf("%w: %v", ErrUnimplemented, err)
		}
		if !retryable(err) || ctx.Err() != nil {
			return zero, err
		}
		if !sleepCtx(ctx, time.Duration(attempt+1)*200*time.Millisecond) {
			return zero, ctx.Err()
		}
	}
	return zero, err
}

// setupResources starts the stand-in platform and creates the credential,
// project and open pool through the API.
func (r *runner) setupResources(ctx context.Context) error {
	p, err := startPlatform(r.exchange)
	if err != nil {
		return err
	}
	r.platform = p
	if r.hook != nil {
		// Before anything the run makes, so every event of the run is
		// delivered.
		if err := r.registerWebhook(ctx); err != nil {
			return err
		}
	}
	api, to := r.apis[0], r.cfg.RequestTimeout
	cred, err := setupCall(ctx, to, func(ctx context.Context) (*crowdgatev1.CreateCredentialResponse, error) {
		return api.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{
			DisplayName: "crowdload " + r.res.RunID, Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: r.tolokaKey,
		})
	})
	if err != nil {
		return fmt.Errorf("setup: CreateCredential: %w", err)
	}
	prj, err := setupCall(ctx, to, func(ctx context.Context) (*crowdgatev1.CreateProjectResponse, error) {
		return api.CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{
			CredentialId:      cred.GetCredential().GetCredentialId(),
			PublicName:        "crowdload " + r.res.RunID,
			PublicDescription: "Load and fault harness project: label items on the stand-in platform.",
			PlatformUrl:       r.platform.url,
			PartnerName:       "crowdload",
			PartnerUrl:        strings.TrimSuffix(r.platform.url, "/work"),
			BonusPriceMin:     "0.01",
			BonusPriceMax:     "2.50",
		}})
	})
	if err != nil {
		return fmt.Errorf("setup: CreateProject: %w", err)
	}
	pool, err := setupCall(ctx, to, func(ctx context.Context) (*crowdgatev1.CreatePoolResponse, error) {
		return api.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{
			ProjectId:                    prj.GetProject().GetProjectId(),
			PrivateName:                  "crowdload " + r.res.RunID,
			MayContainAdultContent:       false,
			WillExpire:                   timestamppb.New(time.Now().Add(7 * 24 * time.Hour)),
			RewardPerAssignment:          "0.05",
			AssignmentMaxDurationSeconds: int64(r.cfg.AssignmentDuration / time.Second),
			Defaults:                     &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1},
		}})
	})
	if err != nil {
		return fmt.Errorf("setup: CreatePool: %w", err)
	}
	r.poolID = pool.GetPool().GetPoolId()
	opened, err := setupCall(ctx, 2*to, func(ctx context.Context) (*crowdgatev1.OpenPoolResponse, error) {
		return api.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: r.poolID})
	})
	if err != nil {
		return fmt.Errorf("setup: OpenPool: %w", err)
	}
	r.tolokaPoolID = opened.GetPool().GetTolokaPoolId()
	if r.tolokaPoolID == "" {
		r.tolokaPoolID = pool.GetPool().GetTolokaPoolId()
	}
	if r.poolID == "" || r.tolokaPoolID == "" {
		return fmt.Errorf("setup: the pool has no pool_id (%q) or toloka_pool_id (%q)", r.poolID, r.tolokaPoolID)
	}
	r.res.PoolID, r.res.TolokaPoolID = r.poolID, r.tolokaPoolID
	r.logf("pool %s (Toloka pool %s) open; platform at %s", r.poolID, r.tolokaPoolID, r.platform.url)

	for i := range r.cfg.Tolokers {
		t := &toloker{idx: i, userID: fmt.Sprintf("crowdload-%s-%06d", r.res.RunID, i), home: i % len(r.replicas)}
		t.submits = plannedSubmits(r.res.RunID, r.cfg.Seed, i, r.cfg.Submits)
		r.tolokers = append(r.tolokers, t)
	}
	return nil
}

// plannedSubmits returns Toloker i's k submits: unique retry_ids and
// rewards from 0.01 to 2.50 drawn from the seed.
func plannedSubmits(runID string, seed uint64, i, k int) []*submitRecord {
	rng := mrand.New(mrand.NewPCG(seed, uint64(i)))
	out := make([]*submitRecord, k)
	for j := range out {
		cents := 1 + rng.IntN(250)
		out[j] = &submitRecord{
			retryID: fmt.Sprintf("crowdload-%s-%06d-%03d", runID, i, j),
			reward:  money.MustParse(fmt.Sprintf("%d.%02d", cents/100, cents%100)),
		}
	}
	return out
}

// sleepCtx waits d or until ctx is done; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff waits before attempt+1: exponential from 50ms to 2s with jitter,
// at least 500ms after a 429.
func backoff(ctx context.Context, attempt int, err error) bool {
	d := 50 * time.Millisecond << min(attempt, 6)
	d = min(d, 2*time.Second)
	d = d/2 + mrand.N(d/2+1)
	var ce *callError
	if errors.As(err, &ce) && ce.Code == codes.ResourceExhausted && !ce.NoAnswer {
		d = max(d, 500*time.Millisecond)
	}
	return sleepCtx(ctx, d)
}

// failureCause is the key a failed call is counted under.
func failureCause(kind string, err error) string {
	var ce *callError
	var le *landingError
	switch {
	case errors.As(err, &ce) && ce.NoAnswer && ce.Code == codes.OK:
		return kind + ": no answer"
	case errors.As(err, &ce) && ce.HTTPStatus != 0:
		return fmt.Sprintf("%s: HTTP %d", kind, ce.HTTPStatus)
	case errors.As(err, &ce):
		return kind + ": " + ce.Code.String()
	case errors.As(err, &le):
		return fmt.Sprintf("%s: HTTP %d", kind, le.status)
	}
	return kind + ": error"
}

// failedCall counts a failed call of kind and keeps one example per cause.
func (r *runner) failedCall(kind string, err error) {
	r.c.errors.Add(1)
	cause := failureCause(kind, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures[cause]++
	if _, ok := r.examples[cause]; !ok && len(r.examples) < 50 {
		r.examples[cause] = err.Error()
	}
}

// tolokerFailed marks t as unable to finish.
func (r *runner) tolokerFailed(t *toloker, kind string, err error) {
	if !t.failed {
		t.failed = true
		r.c.failed.Add(1)
	}
	r.failedCall(kind, err)
}

// pick returns the replica index for attempt of a call homed on home:
// retries move to the next replica, as behind a load balancer.
func (r *runner) pick(home, attempt int) int { return (home + attempt) % len(r.replicas) }

// exchange is the platform's code exchange; it answers the session id.
func (r *runner) exchange(ctx context.Context, code string) (string, error) {
	home := int(r.exchangeRR.Add(1) % uint64(len(r.replicas)))
	var err error
	for attempt := range 3 {
		actx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		start := time.Now()
		var resp *crowdgatev1.ExchangeCodeResponse
		resp, err = r.apis[r.pick(home, attempt)].ExchangeCode(actx, &crowdgatev1.ExchangeCodeRequest{Code: code})
		cancel()
		if err == nil {
			if resp.GetSession().GetSessionId() == "" {
				return "", errors.New("ExchangeCode answered no session")
			}
			if resp.GetToken() == "" {
				return "", errors.New("ExchangeCode answered no token")
			}
			r.exchanges.add(time.Since(start))
			return resp.GetSession().GetSessionId(), nil
		}
		if unimplemented(err) {
			r.fail(fmt.Errorf("%w: %v", ErrUnimplemented, err))
		}
		if !retryable(err) || ctx.Err() != nil {
			return "", err
		}
		r.failedCall("exchange", err)
		if !backoff(ctx, attempt, err) {
			break
		}
	}
	return "", err
}

// landToloker takes t from Start in Toloka to a session on the platform.
func (r *runner) landToloker(ctx context.Context, t *toloker) bool {
	for attempt := 0; t.assignmentID == ""; attempt++ {
		actx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		id, err := r.emu.createAssignment(actx, r.tolokaPoolID, t.userID)
		cancel()
		if err == nil {
			t.assignmentID = id
			break
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt >= 4 {
			r.tolokerFailed(t, "create assignment", err)
			return false
		}
		r.failedCall("create assignment", err)
		if !backoff(ctx, attempt, err) {
			return false
		}
	}
	exchangeFailures := 0
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return false
		}
		rep := r.replicas[r.pick(t.home, attempt)]
		actx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		start := time.Now()
		loc, err := land(actx, r.browser, rep.HTTPURL(), t.assignmentID, tolokerIP(t.idx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			if retryable(err) {
				r.failedCall("landing", err)
				if !backoff(ctx, attempt, err) {
					return false
				}
				continue
			}
			r.tolokerFailed(t, "landing", err)
			return false
		}
		r.landing.add(time.Since(start))
		if err := checkRedirect(loc, r.platform.url); err != nil {
			r.tolokerFailed(t, "landing", err)
			return false
		}
		actx, cancel = context.WithTimeout(ctx, 4*r.cfg.RequestTimeout)
		sid, err := visitPlatform(actx, r.browser, loc)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			// The code may be spent: land again for a fresh one.
			exchangeFailures++
			if exchangeFailures >= 10 {
				r.tolokerFailed(t, "exchange", err)
				return false
			}
			r.failedCall("exchange", err)
			if !backoff(ctx, attempt, err) {
				return false
			}
			continue
		}
		t.sessionID = sid
		r.c.landed.Add(1)
		return true
	}
}

// work sends t's submits one after the other, each until accepted.
func (r *runner) work(ctx context.Context, t *toloker) {
	for k, s := range t.submits {
		if !r.submit(ctx, t, k, s) {
			return
		}
	}
	r.c.done.Add(1)
}

// submit sends one submit and resends the same retry_id on no answer and
// on retryable errors until the gateway accepts it, refuses it, or ctx
// ends. It reports whether the Toloker may go on.
func (r *runner) submit(ctx context.Context, t *toloker, k int, s *submitRecord) bool {
	last := k == len(t.submits)-1
	end := time.Now().UTC()
	req := &crowdgatev1.SubmitRequest{
		SessionId:      t.sessionID,
		RetryId:        s.retryID,
		Reward:         s.reward.String(),
		Quality:        "0.9",
		CloseSession:   proto.Bool(last),
		StartTime:      timestamppb.New(end.Add(-30 * time.Second)),
		EndTime:        timestamppb.New(end),
		RealTasksCount: proto.Int32(1),
	}
	s.outcome = OutcomeUnconfirmed
	r.c.sent.Add(1)
	start := time.Now()
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return false
		}
		actx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		resp, err := r.apis[r.pick(t.home, attempt)].Submit(actx, req)
		cancel()
		r.c.attempts.Add(1)
		if err == nil {
			sub := resp.GetSubmission()
			if id := sub.GetRetryId(); id != "" {
				s.tolokaRetryID = id
			}
			switch sub.GetState() {
			case crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED, crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED:
				s.outcome = OutcomeAccepted
				r.c.accepted.Add(1)
				r.submitLat.add(time.Since(start))
				if resp.GetSessionEnded() && !last {
					r.tolokerFailed(t, "submit", fmt.Errorf("the session ended after submit %d of %d: %s", k+1, len(t.submits), resp.GetSessionEndReason()))
					return false
				}
				return true
			}
			s.outcome = OutcomeRefused
			r.c.refused.Add(1)
			r.tolokerFailed(t, "submit", fmt.Errorf("submit %s answered state %s", s.retryID, sub.GetState()))
			return false
		}
		if ctx.Err() != nil {
			return false
		}
		if unimplemented(err) {
			r.fail(fmt.Errorf("%w: %v", ErrUnimplemented, err))
			return false
		}
		if retryable(err) {
			r.c.retries.Add(1)
			r.failedCall("submit", err)
			if !backoff(ctx, attempt, err) {
				return false
			}
			continue
		}
		s.outcome = OutcomeRefused
		r.c.refused.Add(1)
		r.tolokerFailed(t, "submit", err)
		return false
	}
}

// forEach runs f for every Toloker on cfg.Concurrency workers until ctx
// ends.
func (r *runner) forEach(ctx context.Context, f func(*toloker)) {
	next := make(chan *toloker)
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for t := range next {
				f(t)
			}
		})
	}
feed:
	for _, t := range r.tolokers {
		select {
		case next <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
}

// setAbort sets (or clears) the function that stops the load.
func (r *runner) setAbort(f context.CancelCauseFunc) {
	r.abortMu.Lock()
	r.abort = f
	r.abortMu.Unlock()
}

// fail stops the load with cause err (the run cannot go on).
func (r *runner) fail(err error) {
	r.abortMu.Lock()
	defer r.abortMu.Unlock()
	if r.abort != nil {
		r.abort(err)
	}
}

// load runs the Tolokers (and the chaos) until they are done or
// cfg.Duration passes. It returns an error only when the run cannot go on
// (the gateway answers UNIMPLEMENTED).
func (r *runner) load(ctx context.Context) error {
	loadCtx, cancelLoad := context.WithTimeoutCause(ctx, r.cfg.Duration, errDurationCap)
	defer cancelLoad()
	loadCtx, abort := context.WithCancelCause(loadCtx)
	defer abort(nil)
	r.setAbort(abort)

	chaosCtx, stopChaos := context.WithCancel(loadCtx)
	defer stopChaos()
	var chaos sync.WaitGroup
	if r.cfg.Mode == ModeChaos {
		if err := r.startFaults(ctx); err != nil {
			return err
		}
		chaos.Go(func() { r.chaosLoop(chaosCtx, ctx) })
		if r.cfg.ThrottleBurst > 0 && r.cfg.FaultRate > 0 {
			chaos.Go(func() { r.burstLoop(chaosCtx) })
		}
	}

	switch r.cfg.Mode {
	case ModeThroughput:
		r.res.Redis.Before, r.res.Redis.Known = r.usedMemory(ctx)
		start := time.Now()
		r.forEach(loadCtx, func(t *toloker) { r.landToloker(loadCtx, t) })
		r.res.LandingPhase = time.Since(start)
		if after, ok := r.usedMemory(ctx); ok && r.res.Redis.Known {
			r.res.Redis.After, r.res.Redis.LiveSessions = after, int(r.c.landed.Load())
		} else {
			r.res.Redis.Known = false
		}
		start = time.Now()
		r.forEach(loadCtx, func(t *toloker) {
			if r.hooks != nil && t.idx < r.hooks.landOnly {
				return
			}
			if t.sessionID != "" {
				r.work(loadCtx, t)
			}
		})
		r.res.SubmitPhase = time.Since(start)
	default:
		r.res.Redis.Before, r.res.Redis.Known = r.usedMemory(ctx)
		start := time.Now()
		r.forEach(loadCtx, func(t *toloker) {
			if r.landToloker(loadCtx, t) {
				r.work(loadCtx, t)
			}
		})
		r.res.LandingPhase = time.Since(start)
		r.res.SubmitPhase = r.res.LandingPhase
	}
	cause := context.Cause(loadCtx)
	stopChaos()
	chaos.Wait()
	r.setAbort(nil)
	if errors.Is(cause, ErrUnimplemented) {
		return cause
	}
	if errors.Is(cause, errDurationCap) {
		r.res.Incomplete = append(r.res.Incomplete, fmt.Sprintf("the load hit --duration=%s before every Toloker finished", r.cfg.Duration))
	}
	if ctx.Err() != nil {
		r.res.Incomplete = append(r.res.Incomplete, "interrupted")
	}
	if r.cfg.Mode == ModeChaos {
		// A burst may still be armed: leave the drain to the steady
		// fault rate only.
		if err := r.emu.setFaults(context.WithoutCancel(ctx), r.res.Faults); err != nil {
			r.logf("resetting faults: %v", err)
		}
	}
	// Every replica must be up for the drain.
	for _, g := range r.ownReplicas {
		if g.PID() == 0 {
			if err := g.Restart(context.WithoutCancel(ctx)); err != nil {
				r.logf("%s did not come back: %v", g.Name(), err)
			}
		}
	}
	return nil
}

// usedMemory reads Redis's used_memory.
func (r *runner) usedMemory(ctx context.Context) (uint64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := r.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, false
	}
	v, err := parseUsedMemory(info)
	return v, err == nil
}

// startFaults turns the steady emulator faults on.
func (r *runner) startFaults(ctx context.Context) error {
	r.res.Faults = FaultsFor(r.cfg.FaultRate, r.cfg.FaultMix, r.cfg.FaultHang, r.cfg.Seed)
	if r.cfg.FaultRate == 0 {
		return nil
	}
	if err := r.emu.setFaults(ctx, r.res.Faults); err != nil {
		return fmt.Errorf("emulator faults: %w", err)
	}
	r.logf("Toloka faults on: %.0f%% of API requests (%s)", 100*r.res.Faults.Rate(), r.cfg.FaultMix)
	return nil
}

// burstLoop arms a burst of 429s every ThrottleEvery.
func (r *runner) burstLoop(ctx context.Context) {
	tick := time.NewTicker(r.cfg.ThrottleEvery)
	defer tick.Stop()
	for i := uint64(1); ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		f := r.res.Faults
		f.ThrottleNext = r.cfg.ThrottleBurst
		f.Seed = r.cfg.Seed + i // a new draw sequence, not a replay of the first
		if err := r.emu.setFaults(ctx, f); err != nil {
			if ctx.Err() == nil {
				r.logf("429 burst: %v", err)
			}
			continue
		}
		r.mu.Lock()
		r.bursts++
		r.mu.Unlock()
		// A burst ends after burstWindow even if fewer requests than
		// ThrottleBurst came: the emulator counts requests, and a lone
		// client (one Toloker's landing, after the rest have finished)
		// would otherwise meet a fresh burst every ThrottleEvery forever,
		// which Toloka's time-windowed limits never do.
		if !sleepCtx(ctx, min(r.cfg.ThrottleEvery/2, burstWindow)) {
			return
		}
		f.ThrottleNext = 0
		f.Seed = r.cfg.Seed + i<<32
		if err := r.emu.setFaults(ctx, f); err != nil && ctx.Err() == nil {
			r.logf("429 burst end: %v", err)
		}
	}
}

// burstWindow is the longest a 429 burst lasts.
const burstWindow = time.Second

type plannedEvent struct {
	kind      string
	threshold int64
}

// chaosPlan places kills and Redis restarts at random fractions (10% to
// 80%) of the submits, so each lands inside the load.
func chaosPlan(rng *mrand.Rand, total, kills, redisRestarts int) []plannedEvent {
	var plan []plannedEvent
	at := func() int64 { return int64(float64(total) * (0.1 + 0.7*rng.Float64())) }
	for range kills {
		plan = append(plan, plannedEvent{"kill", at()})
	}
	for range redisRestarts {
		plan = append(plan, plannedEvent{"redis restart", at()})
	}
	slices.SortStableFunc(plan, func(a, b plannedEvent) int { return int(a.threshold - b.threshold) })
	return plan
}

// chaosLoop fires the planned events as the accepted submits pass their
// thresholds; restarts run on outer so they finish even after the load.
func (r *runner) chaosLoop(ctx, outer context.Context) {
	rng := mrand.New(mrand.NewPCG(r.cfg.Seed, 0xc4a05))
	plan := chaosPlan(rng, r.cfg.TotalSubmits(), r.res.KillsPlanned, r.res.RedisRestartsPlanned)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for _, ev := range plan {
		for r.c.accepted.Load() < ev.threshold {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		e := ChaosEvent{Kind: ev.kind, At: time.Since(r.start), Accepted: r.c.accepted.Load()}
		begin := time.Now()
		var err error
		switch ev.kind {
		case "kill":
			rep := r.replicas[rng.IntN(len(r.replicas))]
			e.Target = rep.Name()
			r.logf("SIGKILL %s (pid %d) at %d accepted submits", rep.Name(), rep.PID(), e.Accepted)
			if err = rep.Kill(); err == nil {
				r.c.kills.Add(1)
				sleepCtx(outer, r.cfg.RestartDelay)
				err = rep.Restart(context.WithoutCancel(outer))
			}
		case "redis restart":
			e.Target = "redis"
			r.logf("SIGKILL redis-server and restart it at %d accepted submits", e.Accepted)
			if err = r.ownRedis.restart(context.WithoutCancel(outer)); err == nil {
				r.c.redisRestarts.Add(1)
			}
		}
		e.Down = time.Since(begin)
		if err != nil {
			e.Err = err.Error()
			r.logf("%s %s: %v", e.Kind, e.Target, err)
		} else {
			r.logf("%s back after %s", e.Target, e.Down.Round(time.Millisecond))
		}
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	}
}

// startBackground starts the memory sampler and the progress line; the
// returned function stops them (taking a last sample).
func (r *runner) startBackground(ctx context.Context) func() {
	bg, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	r.sample(bg)
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-tick.C:
				r.sample(bg)
			}
		}
	})
	if r.cfg.Progress > 0 {
		wg.Go(func() {
			tick := time.NewTicker(r.cfg.Progress)
			defer tick.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-tick.C:
					fmt.Fprintln(r.progress, r.progressLine())
				}
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
		r.sample(context.WithoutCancel(ctx))
		if r.cfg.Progress > 0 {
			fmt.Fprintln(r.progress, r.progressLine())
		}
	}
}

// sample records every replica's RSS and Redis's used_memory.
func (r *runner) sample(ctx context.Context) {
	for _, rep := range r.replicas {
		var v uint64
		var err error
		source := "VmRSS"
		pid := rep.PID()
		switch {
		case pid > 0:
			v, err = processRSS(pid)
		case len(r.ownReplicas) == 0:
			source = "/metrics"
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			v, err = scrapeRSS(sctx, r.hc, rep.HTTPURL())
			cancel()
		default:
			continue // killed, restarting
		}
		if err != nil {
			continue
		}
		r.mu.Lock()
		m := r.memory[rep.Name()]
		if m == nil {
			m = &ReplicaMemory{Name: rep.Name(), Source: source}
			r.memory[rep.Name()] = m
		}
		if last, ok := r.lastPID[rep.Name()]; ok && pid != 0 && last != pid {
			m.Restarts++
		}
		if pid != 0 {
			r.lastPID[rep.Name()] = pid
		}
		m.RSS.Add(v)
		r.mu.Unlock()
	}
	v, ok := r.usedMemory(ctx)
	if ok {
		r.mu.Lock()
		r.redisMem.Add(v)
		r.mu.Unlock()
	}
	if r.cfg.FlatAfter > 0 && !r.start.IsZero() {
		x := SoakSample{At: time.Since(r.start), Accepted: r.c.accepted.Load(), Redis: v}
		if pid := r.replicas[0].PID(); pid > 0 {
			x.Gateway, _ = processRSS(pid)
		}
		r.mu.Lock()
		r.soak = append(r.soak, x)
		r.mu.Unlock()
	}
}

// progressLine is the one-line status written every --progress.
func (r *runner) progressLine() string {
	el := time.Duration(0)
	if !r.start.IsZero() {
		el = time.Since(r.start).Round(time.Second)
	}
	line := fmt.Sprintf("[%6s] tolokers %d/%d done (%d failed), %d landed | submits %d/%d accepted, %d sent, %d retries | errors %d",
		el, r.c.done.Load(), r.cfg.Tolokers, r.c.failed.Load(), r.c.landed.Load(),
		r.c.accepted.Load(), r.cfg.TotalSubmits(), r.c.sent.Load(), r.c.retries.Load(), r.c.errors.Load())
	if r.cfg.Mode == ModeChaos {
		line += fmt.Sprintf(" | kills %d/%d, redis restarts %d/%d", r.c.kills.Load(), r.cfg.Kills, r.c.redisRestarts.Load(), r.res.RedisRestartsPlanned)
	}
	return line
}

// settle waits (bounded) for the outbox to drain and the ledger to catch
// up, then reconciles.
func (r *runner) settle(ctx context.Context) {
	begin := time.Now()
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	accepted := int(r.c.accepted.Load())
	var totals *PoolTotals
	queuedZero, totalsWork := false, true
	for i := 0; ; i++ {
		t, err := r.poolTotals(dctx, i)
		if err == nil {
			totals = &t
			if t.Queued == 0 {
				queuedZero = true
				break
			}
		} else if unimplemented(err) {
			totalsWork = false
			r.logf("GetPoolTotals: %v; waiting on the ledger alone", err)
			break
		}
		if !sleepCtx(dctx, 250*time.Millisecond) {
			break
		}
	}
	// Once nothing is queued, every delivered submit is in the ledger
	// (the emulator records before it answers); without totals, wait
	// for the ledger to hold every accepted submit.
	want := accepted
	if queuedZero && totals != nil {
		want = int(totals.Delivered)
	}
	var ledger Ledger
	var ledgerErr error
	for {
		lctx, lcancel := context.WithTimeout(ctx, time.Minute)
		ledger, ledgerErr = r.emu.ledger(lctx, r.tolokaPoolID)
		lcancel()
		if ledgerErr == nil && len(ledger.Entries) >= want {
			break
		}
		if !sleepCtx(dctx, time.Second) {
			break
		}
	}
	if queuedZero {
		// Totals that match the ledger just read.
		if t, err := r.poolTotals(context.WithoutCancel(ctx), 0); err == nil {
			totals = &t
		}
	}
	r.res.DrainWait = time.Since(begin)
	r.res.Totals = totals
	r.res.Drained = ledgerErr == nil && len(ledger.Entries) >= want && (queuedZero || !totalsWork)
	if ledgerErr != nil {
		r.res.Incomplete = append(r.res.Incomplete, "could not read the emulator's ledger: "+ledgerErr.Error())
	}
	if !r.res.Drained {
		q := "unknown"
		if totals != nil {
			q = fmt.Sprint(totals.Queued)
		}
		r.res.Incomplete = append(r.res.Incomplete, fmt.Sprintf("not drained within --drain-timeout=%s (queued %s, ledger %d, waiting for %d)", r.cfg.DrainTimeout, q, len(ledger.Entries), want))
	}
	r.res.Reconciliation = Reconcile(r.sent(), ledger)
	if totals != nil && r.res.Drained {
		r.res.Reconciliation.CheckGatewayTotals(*totals)
		// The registry's pay per Toloker is the outbox's, counted in its
		// finish step: once drained it must equal the ledger, per Toloker.
		var registry map[string]RegistryEntry
		var err error
		if r.cfg.FlatAfter == 0 {
			registry, err = r.registry(ctx)
		}
		switch {
		case r.cfg.FlatAfter > 0:
			r.logf("soak: the registry's entries expire during the run (CROWDGATE_TOLOKER_RETENTION); only the ledger and the pool totals are reconciled")
		case unimplemented(err):
			r.logf("ListTolokers: %v; the registry is not checked", err)
		case err != nil:
			r.res.Incomplete = append(r.res.Incomplete, "could not read the Toloker registry: "+err.Error())
		default:
			r.res.Reconciliation.CheckRegistry(ledger, r.landedUsers(), registry)
		}
	}
	if r.hook != nil {
		r.settleEvents(ctx)
	}
}

// registry reads the pool's Tolokers from the registry (ListTolokers),
// moving to the next replica on failure.
func (r *runner) registry(ctx context.Context) (map[string]RegistryEntry, error) {
	out := map[string]RegistryEntry{}
	token := ""
	for attempt := 0; ; {
		actx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		resp, err := r.apis[attempt%len(r.apis)].ListTolokers(actx, &crowdgatev1.ListTolokersRequest{PoolId: r.poolID, PageSize: 500, PageToken: token})
		cancel()
		if err != nil {
			if attempt++; attempt < 2*len(r.apis) && retryable(err) && sleepCtx(ctx, time.Second) {
				continue
			}
			return nil, err
		}
		for _, t := range resp.GetTolokers() {
			d, err := parseMoney(t.GetRewardDelivered())
			if err != nil {
				return nil, fmt.Errorf("ListTolokers reward_delivered of %s: %w", t.GetUserId(), err)
			}
			out[t.GetUserId()] = RegistryEntry{Delivered: t.GetSubmissionsDelivered(), RewardDelivered: d}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// landedUsers are the Tolokers who reached the platform with a session.
func (r *runner) landedUsers() []string {
	var out []string
	for _, t := range r.tolokers {
		if t.sessionID != "" {
			out = append(out, t.userID)
		}
	}
	return out
}

// poolTotals reads GetPoolTotals, moving to the next replica on failure.
func (r *runner) poolTotals(ctx context.Context, attempt int) (PoolTotals, error) {
	actx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	resp, err := r.apis[attempt%len(r.apis)].GetPoolTotals(actx, &crowdgatev1.GetPoolTotalsRequest{PoolId: r.poolID})
	if err != nil {
		return PoolTotals{}, err
	}
	t := resp.GetTotals()
	out := PoolTotals{Received: t.GetReceived(), Delivered: t.GetDelivered(), Queued: t.GetQueued(), Dead: t.GetDead()}
	var perr error
	if out.RewardDelivered, perr = parseMoney(t.GetRewardDelivered()); perr != nil {
		return PoolTotals{}, fmt.Errorf("GetPoolTotals reward_delivered: %w", perr)
	}
	if out.RewardQueued, perr = parseMoney(t.GetRewardQueued()); perr != nil {
		return PoolTotals{}, fmt.Errorf("GetPoolTotals reward_queued: %w", perr)
	}
	return out, nil
}

// parseMoney reads a decimal, "" as zero.
func parseMoney(s string) (money.Decimal, error) {
	if s == "" {
		return money.Zero, nil
	}
	return money.Parse(s)
}

// sent lists every submit sent at least once.
func (r *runner) sent() []Sent {
	var out []Sent
	for _, t := range r.tolokers {
		for _, s := range t.submits {
			if s.outcome == 0 {
				continue
			}
			id := s.retryID
			if s.tolokaRetryID != "" {
				id = s.tolokaRetryID
			}
			out = append(out, Sent{RetryID: id, UserID: t.userID, Reward: s.reward, Outcome: s.outcome})
		}
	}
	return out
}

// finish fills the result from the counters.
func (r *runner) finish() {
	res := r.res
	res.Landing, res.Exchange, res.Submit = r.landing.summary(), r.exchanges.summary(), r.submitLat.summary()
	res.Landed, res.TolokersDone, res.TolokersFailed = int(r.c.landed.Load()), int(r.c.done.Load()), int(r.c.failed.Load())
	res.Attempts, res.Retries = r.c.attempts.Load(), r.c.retries.Load()
	for _, t := range r.tolokers {
		for _, s := range t.submits {
			if s.outcome == 0 {
				res.SubmitsNotSent++
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.failures {
		res.FailedAttempts[k] = v
	}
	for _, k := range slices.Sorted(mapKeys(r.examples)) {
		res.Errors = append(res.Errors, k+": "+r.examples[k])
	}
	res.Events = slices.Clone(r.events)
	res.Bursts = r.bursts
	res.Redis.Series = r.redisMem
	if r.cfg.FlatAfter > 0 {
		res.Soak = &SoakResult{FlatAfter: r.cfg.FlatAfter, Samples: slices.Clone(r.soak)}
		res.Soak.judge()
		if len(res.Soak.Verdicts) == 0 {
			res.Incomplete = append(res.Incomplete, fmt.Sprintf("soak: the run did not last long enough after --memory-flat-after=%s to judge memory", r.cfg.FlatAfter))
		}
	}
	for _, name := range slices.Sorted(mapKeys(r.memory)) {
		res.Gateways = append(res.Gateways, *r.memory[name])
	}
	if res.TolokersFailed > 0 {
		res.Incomplete = append(res.Incomplete, fmt.Sprintf("%d Tolokers could not land or finish (see errors)", res.TolokersFailed))
	}
	if res.SubmitsNotSent > 0 {
		res.Incomplete = append(res.Incomplete, fmt.Sprintf("%d planned submits were never sent", res.SubmitsNotSent))
	}
	for _, e := range res.Events {
		if e.Err != "" {
			res.Incomplete = append(res.Incomplete, fmt.Sprintf("%s of %s failed: %s", e.Kind, e.Target, e.Err))
		}
	}
	if n := len(res.Events); r.cfg.Mode == ModeChaos && n < res.KillsPlanned+res.RedisRestartsPlanned {
		res.Incomplete = append(res.Incomplete, fmt.Sprintf("only %d of %d planned chaos events happened before the load ended", n, res.KillsPlanned+res.RedisRestartsPlanned))
	}
}

// teardown stops what the run started and removes the work directory
// after a passing run (unless kept).
func (r *runner) teardown(runErr error) {
	if r.platform != nil {
		r.platform.close()
	}
	if r.hook != nil {
		_ = r.hook.Close()
	}
	for _, c := range r.grpcClients {
		_ = c.close()
	}
	var wg sync.WaitGroup
	for _, g := range r.ownReplicas {
		wg.Go(g.close)
	}
	wg.Wait()
	if r.ownToloka != nil {
		r.ownToloka.close()
	}
	if r.rdb != nil {
		if r.ownRedis == nil && r.res.RunID != "" {
			r.deleteKeys()
		}
		_ = r.rdb.Close()
	}
	if r.ownRedis != nil {
		r.ownRedis.close()
	}
	if r.workDir == "" {
		return
	}
	pass := runErr == nil && r.res.ExitCode() == 0
	if r.ownWorkDir && pass && !r.cfg.Keep {
		_ = os.RemoveAll(r.workDir)
		return
	}
	r.res.WorkDirKept = true
}

// deleteKeys removes the run's keys from a Redis the run did not start.
func (r *runner) deleteKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := r.rdb.Scan(ctx, 0, "crowdload:"+r.res.RunID+":*", 1000).Iterator()
	for iter.Next(ctx) {
		r.rdb.Del(ctx, iter.Val())
	}
}
