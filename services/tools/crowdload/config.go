// Package crowdload is Crowdgate's load and fault harness. It drives the
// whole EXTERNAL flow against real binaries as a black-box client of the
// public API: it registers a credential, creates a project and an open pool,
// then simulates Tolokers who click Start in Toloka (the emulator's admin
// API), follow Crowdgate's landing to a stand-in partner platform, which
// exchanges the one-time code and submits their work; at the end it compares
// the emulator's ledger with what the platform sent: every submit paid
// exactly once, reward totals equal to the cent.
//
// Throughput mode measures landings and submits per second, their latency
// percentiles, Redis memory per live session and the gateway's memory.
// Chaos mode injects Toloka faults, SIGKILLs and restarts gateway replicas
// and restarts Redis, and still demands exact money.
//
// With --webhook (on in chaos mode) a webhook receiver on 127.0.0.1
// verifies every delivery with the Standard Webhooks library, and the
// tenant's event log is reconciled with the run and with what the receiver
// got (eventcheck.go). "crowdload webhooks" measures webhook fan-out into
// one endpoint beside the endpoint's own ceiling (webhookbench.go).
//
// cmd/crowdload is the command; this package holds its logic so it can be
// tested.
package crowdload

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Mode is what a run measures.
type Mode string

// The modes.
const (
	// ModeThroughput measures speed and memory with no faults: every
	// Toloker lands first (so all sessions are live at once and Redis
	// memory per session can be measured), then all of them submit.
	ModeThroughput Mode = "throughput"
	// ModeChaos interleaves landings and submits while Toloka misbehaves,
	// gateway replicas are SIGKILLed and Redis restarts.
	ModeChaos Mode = "chaos"
)

// API is the protocol the stand-in platform and the setup use.
type API string

// The APIs.
const (
	// APIREST uses the REST mapping (JSON over HTTP).
	APIREST API = "rest"
	// APIGRPC uses gRPC.
	APIGRPC API = "grpc"
)

// FaultMix weighs the kinds of injected Toloka faults; FaultsFor splits
// the fault rate in proportion to the weights.
type FaultMix struct {
	// ServerError is answered 500, 502, 503 or 504 (equally often).
	ServerError float64
	// Timeout hangs without processing until Config.FaultHang passes, then
	// drops the connection.
	Timeout float64
	// LostResponse processes the request (a submit is paid) and closes the
	// connection without an answer.
	LostResponse float64
	// Drop closes the connection without processing.
	Drop float64
	// Throttle answers 429 TOO_MANY_REQUESTS with Retry-After.
	Throttle float64
}

// DefaultFaultMix is 40% 5xx, 20% timeouts, 20% lost responses, 20% 429.
var DefaultFaultMix = FaultMix{ServerError: 4, Timeout: 2, LostResponse: 2, Throttle: 2}

var faultMixKeys = []string{"5xx", "timeout", "lost", "drop", "429"}

func (m *FaultMix) field(key string) *float64 {
	switch key {
	case "5xx":
		return &m.ServerError
	case "timeout":
		return &m.Timeout
	case "lost":
		return &m.LostResponse
	case "drop":
		return &m.Drop
	case "429":
		return &m.Throttle
	}
	return nil
}

func (m FaultMix) total() float64 {
	return m.ServerError + m.Timeout + m.LostResponse + m.Drop + m.Throttle
}

// String renders the mix as ParseFaultMix reads it, for example
// "5xx=4,timeout=2,lost=2,drop=0,429=2".
func (m FaultMix) String() string {
	parts := make([]string, 0, len(faultMixKeys))
	for _, k := range faultMixKeys {
		parts = append(parts, k+"="+strconv.FormatFloat(*m.field(k), 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

// ParseFaultMix reads comma-separated kind=weight pairs; kinds are 5xx,
// timeout, lost, drop and 429, and kinds not named weigh 0. Weights are
// relative: "5xx=1,429=1" is half and half.
func ParseFaultMix(s string) (FaultMix, error) {
	var m FaultMix
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		p := m.field(k)
		if !ok || p == nil {
			return FaultMix{}, fmt.Errorf("want kind=weight pairs with kinds %s, got %q", strings.Join(faultMixKeys, ", "), part)
		}
		if seen[k] {
			return FaultMix{}, fmt.Errorf("%s given twice", k)
		}
		seen[k] = true
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || w < 0 || math.IsInf(w, 0) || math.IsNaN(w) {
			return FaultMix{}, fmt.Errorf("weight of %s must be a number >= 0, got %q", k, v)
		}
		*p = w
	}
	if m.total() == 0 {
		return FaultMix{}, errors.New("at least one weight must be above 0")
	}
	return m, nil
}

// Config is one run of the harness. ParseFlags fills it from the command
// line; Validate checks it.
type Config struct {
	// Mode is throughput or chaos.
	Mode Mode
	// Preset names the preset that supplied defaults ("" for none).
	Preset string
	// Tolokers is how many Tolokers take the pool (N).
	Tolokers int
	// Submits is how many submits each Toloker's platform sends (K); the
	// last carries close_session.
	Submits int
	// Concurrency is how many Tolokers are in flight at once.
	Concurrency int
	// Duration caps the load phase; the run then stops, reconciles what
	// was sent and reports the rest as not done.
	Duration time.Duration
	// DrainTimeout bounds the wait for the outbox to drain before the
	// ledger is compared.
	DrainTimeout time.Duration
	// RequestTimeout bounds one attempt of one call to the gateway.
	RequestTimeout time.Duration
	// API is the protocol of the setup calls, the code exchange and the
	// submits (the landing is always HTTP).
	API API
	// Seed seeds rewards, fault injection and the chaos schedule.
	Seed uint64
	// AssignmentDuration is the pool's assignment_max_duration_seconds.
	AssignmentDuration time.Duration

	// RedisURL points at a running Redis; empty starts RedisServer.
	RedisURL string
	// RedisServer is the redis-server binary.
	RedisServer string
	// TolokaURL is the base URL of a running Toloka emulator (its API is
	// under /api/v1, its admin API under /_admin/); empty starts Tolokasim.
	TolokaURL string
	// Tolokasim is the tolokasim binary; empty builds ./cmd/tolokasim.
	Tolokasim string
	// TolokaRateLimits keeps the emulator's documented rate limits (only
	// for an emulator this run starts).
	TolokaRateLimits bool
	// Gateways are the HTTP base URLs of running replicas; empty starts
	// Replicas replicas of Crowdgate.
	Gateways []string
	// GatewaysGRPC are the gRPC addresses (host:port) of those replicas,
	// in the same order (needed with API grpc).
	GatewaysGRPC []string
	// Crowdgate is the crowdgate binary; empty builds ./cmd/crowdgate.
	Crowdgate string
	// GatewayEnv are extra KEY=VALUE environment variables for the
	// replicas the run starts (tuning such as
	// CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT).
	GatewayEnv []string
	// Replicas is how many replicas to start (0: 1 in throughput mode, 2
	// in chaos mode).
	Replicas int
	// Repo is the Crowdgate source tree binaries are built from (empty:
	// found upwards from the working directory).
	Repo string
	// WorkDir keeps logs, binaries and Redis's AOF (empty: a new temporary
	// directory, removed after a passing run unless Keep).
	WorkDir string
	// Keep keeps the work directory after a passing run.
	Keep bool

	// FaultRate is the probability that a Toloka API request fails.
	FaultRate float64
	// FaultMix splits FaultRate across kinds of faults.
	FaultMix FaultMix
	// FaultHang is how long a timeout fault hangs before the connection
	// is dropped.
	FaultHang time.Duration
	// ThrottleBurst is the length of a burst of 429s injected every
	// ThrottleEvery (0: no bursts).
	ThrottleBurst int
	// ThrottleEvery is the period of 429 bursts.
	ThrottleEvery time.Duration
	// Kills is how many times a random gateway replica is SIGKILLed (and
	// restarted) at random moments of the load.
	Kills int
	// RestartDelay is how long a killed replica stays down.
	RestartDelay time.Duration
	// RedisRestarts is how many times Redis is SIGKILLed and restarted
	// (only a Redis this run started, with appendonly yes and appendfsync
	// always).
	RedisRestarts int

	// Webhook starts a webhook receiver on 127.0.0.1, registers it as an
	// endpoint of the run's tenant for every event type (the replicas
	// crowdload starts get CROWDGATE_WEBHOOK_ALLOW_PRIVATE=true and a
	// retry schedule of seconds), verifies every delivery with the
	// Standard Webhooks library, and reconciles the tenant's event log
	// with the run and with what the receiver got.
	Webhook bool
	// WebhookFailRate is the fraction of verified deliveries the receiver
	// answers 503, to force retries.
	WebhookFailRate float64
	// WebhookPrint writes one line per event to the progress output as
	// it is first received.
	WebhookPrint bool
	// WebhookWait bounds the wait, after the drain, for the event log to
	// hold every session's end and submission's outcome and for the
	// receiver to catch up with the log.
	WebhookWait time.Duration

	// Progress is how often a progress line is written (0: never).
	Progress time.Duration

	// FlatAfter, when positive, makes the run a soak: memory is sampled
	// every second, plotted, and must be flat after FlatAfter (the
	// gateway's retentions must then be shorter than the run; the
	// registry, whose entries expire, is not reconciled).
	FlatAfter time.Duration
}

// Presets name ready-made runs. Flags given explicitly win over a preset.
var Presets = map[string]map[string]string{
	// ci is the short chaos run of CI (about a minute).
	"ci": {
		"mode": "chaos", "tolokers": "200", "submits": "5", "concurrency": "32",
		"fault-rate": "0.3", "kills": "1", "redis-restarts": "1", "replicas": "2",
		"duration": "3m", "drain-timeout": "90s",
		// A killed replica's outbox entries are reclaimed after 5s, not 30s,
		// and retries back off up to 10s, not 5m: the same code paths,
		// inside a CI minute.
		"gateway-env": "CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT=5s,CROWDGATE_SUBMIT_MAX_BACKOFF=10s",
	},
	// long is the recorded target: 10,000 Tolokers x 10 submits under chaos.
	"long": {
		"mode": "chaos", "tolokers": "10000", "submits": "10", "concurrency": "128",
		"fault-rate": "0.3", "kills": "3", "redis-restarts": "1", "replicas": "2",
		"duration": "90m", "drain-timeout": "10m",
	},
	// soak is the retention soak: 2,000,000 submits (200,000 Tolokers ×
	// 10) as fast as the machine allows (the emulator's and the client's
	// rate limits lifted), every retention at two minutes, no faults;
	// Redis's and the gateway's memory must be flat after six minutes
	// and the money exact.
	"soak": {
		"mode": "chaos", "tolokers": "200000", "submits": "10", "concurrency": "64",
		"fault-rate": "0", "kills": "0", "redis-restarts": "0", "webhook": "false", "throttle-burst": "0",
		"replicas": "1", "toloka-rate-limits": "false", "assignment-duration": "2m",
		"duration": "4h", "drain-timeout": "10m", "memory-flat-after": "6m", "progress": "10s",
		"gateway-env": "CROWDGATE_SUBMISSION_RETENTION=2m,CROWDGATE_EVENT_RETENTION=2m,CROWDGATE_TOLOKER_RETENTION=2m," +
			"CROWDGATE_WEBHOOK_RETENTION=2m,CROWDGATE_AUDIT_RETENTION=2m,CROWDGATE_SESSION_EXPIRY_MARGIN=1m,CROWDGATE_TOLOKA_REQUEST_LIMIT=100000/s",
	},
	// bench is the recorded throughput run.
	"bench": {
		"mode": "throughput", "tolokers": "10000", "submits": "10", "concurrency": "128",
		"replicas": "1", "duration": "60m", "drain-timeout": "5m",
	},
}

// modeDefaults apply after a preset, to flags still not given.
var modeDefaults = map[Mode]map[string]string{
	ModeThroughput: {"replicas": "1"},
	ModeChaos:      {"replicas": "2", "fault-rate": "0.3", "kills": "1", "redis-restarts": "1", "webhook": "true", "webhook-fail-rate": "0.3"},
}

// ErrHelp is returned by ParseFlags after printing --help.
var ErrHelp = flag.ErrHelp

// listFlag is a comma-separated list flag.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(s string) error {
	*l.p = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.p = append(*l.p, v)
		}
	}
	return nil
}

// envFlag collects KEY=VALUE pairs; each Set appends (comma-separated). A
// comma-separated piece that does not start with KEY= continues the
// previous value, so values may hold commas
// (CROWDGATE_LANDING_LIMIT_IP=10/s,burst=60).
type envFlag struct{ p *[]string }

func (e envFlag) String() string {
	if e.p == nil {
		return ""
	}
	return strings.Join(*e.p, ",")
}

func (e envFlag) Set(s string) error {
	added := 0
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envName.MatchString(k) {
			if added == 0 {
				return fmt.Errorf("want KEY=VALUE with KEY like CROWDGATE_SUBMIT_MAX_BACKOFF, got %q", kv)
			}
			(*e.p)[len(*e.p)-1] += "," + kv
			continue
		}
		*e.p = append(*e.p, kv)
		added++
	}
	return nil
}

var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// harnessEnv are the variables the harness sets for every replica it
// starts; --gateway-env cannot override them.
var harnessEnv = []string{
	"CROWDGATE_HTTP_ADDR", "CROWDGATE_GRPC_ADDR", "CROWDGATE_PUBLIC_URL", "REDIS_URL", "CROWDGATE_REDIS_PREFIX",
	"TOLOKA_SANDBOX_URL", "TOLOKA_PRODUCTION_URL", "CROWDGATE_ENCRYPTION_KEY", "CROWDGATE_LOG_FORMAT", "CROWDGATE_TOLOKA_EMULATOR",
}

type mixFlag struct{ p *FaultMix }

func (m mixFlag) String() string {
	if m.p == nil {
		return ""
	}
	return m.p.String()
}

func (m mixFlag) Set(s string) error {
	v, err := ParseFaultMix(s)
	if err != nil {
		return err
	}
	*m.p = v
	return nil
}

type enumFlag[T ~string] struct {
	p       *T
	allowed []T
}

func (e enumFlag[T]) String() string {
	if e.p == nil {
		return ""
	}
	return string(*e.p)
}

func (e enumFlag[T]) Set(s string) error {
	if !slices.Contains(e.allowed, T(s)) {
		return fmt.Errorf("want one of %v, got %q", e.allowed, s)
	}
	*e.p = T(s)
	return nil
}

// newFlagSet defines every flag on a new FlagSet bound to c, with the
// built-in defaults.
func newFlagSet(c *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("crowdload", flag.ContinueOnError)
	fs.SetOutput(out)
	c.Mode, c.API, c.FaultMix = ModeThroughput, APIREST, DefaultFaultMix

	fs.Var(enumFlag[Mode]{&c.Mode, []Mode{ModeThroughput, ModeChaos}}, "mode",
		"throughput: speed and memory, no faults (Tolokers all land, then all submit); chaos: Toloka faults, replica kills and a Redis restart while Tolokers land and submit")
	fs.StringVar(&c.Preset, "preset", "", "fill unset flags from a preset: ci (short chaos run for CI), long (10,000 x 10 chaos target), bench (10,000 x 10 throughput), soak (2,000,000 submits with retentions of minutes: memory must stay flat)")
	fs.IntVar(&c.Tolokers, "tolokers", 100, "number of Tolokers (N); each gets one assignment in the pool")
	fs.IntVar(&c.Submits, "submits", 5, "submits per Toloker (K); the last one carries close_session")
	fs.IntVar(&c.Concurrency, "concurrency", 16, "Tolokers in flight at once")
	fs.DurationVar(&c.Duration, "duration", 10*time.Minute, "cap on the load phase; when it passes the run stops, reconciles what was sent and fails as incomplete")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 2*time.Minute, "bound on the wait for the gateway's outbox to drain (GetPoolTotals queued == 0) and the ledger to settle")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 15*time.Second, "bound on one attempt of one call to the gateway; a timed-out submit is resent with the same retry_id")
	fs.Var(enumFlag[API]{&c.API, []API{APIREST, APIGRPC}}, "api",
		"protocol of setup, code exchange and submits: rest (POST /v1/submissions) or grpc (SubmissionService.Submit); the landing is always HTTP")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of rewards, injected faults and the chaos schedule")
	fs.DurationVar(&c.AssignmentDuration, "assignment-duration", 2*time.Hour, "the pool's assignment_max_duration_seconds (must outlast a Toloker's stay)")

	fs.StringVar(&c.RedisURL, "redis-url", "", "use this running Redis (redis://127.0.0.1:6379/0); empty starts redis-server on a free loopback port with appendonly yes, appendfsync always, in the work directory")
	fs.StringVar(&c.RedisServer, "redis-server", "redis-server", "redis-server binary to start when --redis-url is empty")
	fs.StringVar(&c.TolokaURL, "toloka-url", "", "base URL of a running tolokasim (API under /api/v1, admin under /_admin/); the gateways must already use it. Empty starts tolokasim")
	fs.StringVar(&c.Tolokasim, "tolokasim-bin", "", "tolokasim binary to start; empty builds ./cmd/tolokasim from --repo")
	fs.BoolVar(&c.TolokaRateLimits, "toloka-rate-limits", true, "keep the started emulator's documented Toloka rate limits (300 requests/s per account); false passes --no-rate-limits")
	fs.Var(listFlag{&c.Gateways}, "gateway", "comma-separated HTTP base URLs of running gateway replicas (http://127.0.0.1:8080); empty starts --replicas replicas")
	fs.Var(listFlag{&c.GatewaysGRPC}, "gateway-grpc", "comma-separated gRPC addresses of those replicas, same order (127.0.0.1:9090); needed with --api=grpc")
	fs.Var(envFlag{&c.GatewayEnv}, "gateway-env", "extra KEY=VALUE environment for the replicas crowdload starts, comma-separated or repeated (e.g. CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT=5s); the harness's own settings (addresses, Redis, Toloka URLs, key) cannot be overridden")
	fs.StringVar(&c.Crowdgate, "crowdgate-bin", "", "crowdgate binary to start; empty builds ./cmd/crowdgate from --repo")
	fs.IntVar(&c.Replicas, "replicas", 0, "gateway replicas to start, Tolokers spread over them round-robin (default 1 in throughput mode, 2 in chaos mode)")
	fs.StringVar(&c.Repo, "repo", "", "Crowdgate source tree to build binaries from (default: found upwards from the working directory)")
	fs.StringVar(&c.WorkDir, "work-dir", "", "directory for logs, built binaries and Redis's AOF (default: a new temporary directory, removed after a passing run)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work directory after a passing run (a failing run always keeps it)")

	fs.Float64Var(&c.FaultRate, "fault-rate", 0, "chaos: probability (0..1) that a Toloka API request fails, split by --fault-mix (default 0.3 in chaos mode)")
	fs.Var(mixFlag{&c.FaultMix}, "fault-mix", "chaos: relative weights of fault kinds: 5xx (500/502/503/504), timeout (hang, then drop), lost (processed, answer lost), drop (not processed, connection closed), 429")
	fs.DurationVar(&c.FaultHang, "fault-hang", 2*time.Second, "chaos: how long a timeout fault hangs before the emulator drops the connection")
	fs.IntVar(&c.ThrottleBurst, "throttle-burst", 20, "chaos: requests answered 429 in a row in each burst, which ends after a second even if fewer came (0: no bursts)")
	fs.DurationVar(&c.ThrottleEvery, "throttle-every", 5*time.Second, "chaos: period of 429 bursts")
	fs.IntVar(&c.Kills, "kills", 0, "chaos: SIGKILL a random gateway replica this many times at random moments of the load and restart it (default 1 in chaos mode)")
	fs.DurationVar(&c.RestartDelay, "restart-delay", 500*time.Millisecond, "chaos: how long a killed replica stays down")
	fs.IntVar(&c.RedisRestarts, "redis-restarts", 0, "chaos: SIGKILL and restart the Redis this run started (AOF on, fsync always) this many times (default 1 in chaos mode when Redis is started here)")
	fs.BoolVar(&c.Webhook, "webhook", false, "start a webhook receiver on 127.0.0.1, register it for the run's tenant (replicas started here get CROWDGATE_WEBHOOK_ALLOW_PRIVATE=true), verify every delivery with the Standard Webhooks library and reconcile the event log (default true in chaos mode)")
	fs.Float64Var(&c.WebhookFailRate, "webhook-fail-rate", 0, "fraction (0..1) of verified webhook deliveries the receiver answers 503, to force retries (default 0.3 in chaos mode)")
	fs.BoolVar(&c.WebhookPrint, "webhook-print", false, "print each event the receiver gets, one line each (type, resource, key state), as it arrives")
	fs.DurationVar(&c.WebhookWait, "webhook-wait", 90*time.Second, "after the drain, bound on the wait for the event log to hold every outcome and for webhook delivery to catch up (a killed replica's deliveries are reclaimed after 30s)")
	fs.DurationVar(&c.Progress, "progress", time.Second, "interval of the progress line on stderr (0: none)")
	fs.DurationVar(&c.FlatAfter, "memory-flat-after", 0, "soak: sample Redis's and the gateway's memory every second, plot them, and fail unless both are flat after this long (set the gateway's retentions shorter with --gateway-env; the registry is then not reconciled). 0: off")
	fs.Usage = func() { usage(fs) }
	return fs
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `crowdload: load and fault harness for Crowdgate.

It starts (or points at) Redis, the Toloka emulator (tolokasim) and gateway
replicas on loopback addresses, registers a credential, creates a project
whose platform_url is a stand-in platform inside crowdload, creates and opens
a pool, then simulates N Tolokers: each clicks Start (emulator admin API),
follows GET /start?assignment_id= to the platform, which exchanges the code
(POST /v1/sessions:exchange) and sends K submits (POST /v1/submissions or
gRPC Submit) with a unique retry_id each, resending the same retry_id on
transport errors, 5xx, UNAVAILABLE and 429 until accepted. At the end it
waits for the outbox to drain and compares the emulator's ledger with what
was sent: every submit paid exactly once, totals equal to the cent.

Usage:
  crowdload [flags]
  crowdload --preset=ci            # short chaos run (CI)
  crowdload --preset=long          # 10,000 Tolokers x 10 submits, chaos target
  crowdload --preset=soak          # 2,000,000 submits, retentions of 2 minutes: memory must stay flat
  crowdload --webhook --webhook-print --tolokers=3 --submits=2   # watch the signed events
  crowdload webhooks               # webhook fan-out benchmark (crowdload webhooks --help)

Flags:
`)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Presets (explicit flags win):
`)
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		keys := make([]string, 0, len(Presets[n]))
		for k := range Presets[n] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, "--"+k+"="+Presets[n][k])
		}
		fmt.Fprintf(w, "  %-6s %s\n", n, strings.Join(parts, " "))
	}
	fmt.Fprint(w, `
Exit status:
  0  every Toloker finished and every submit was paid exactly once (with
     --webhook: and the event log and the receiver reconcile)
  1  money is wrong: a submit lost, paid twice, paid a different amount,
     paid without being sent, or refused by the gateway; or (--webhook)
     an event is missing, twice in the log, never received, or a
     delivery's signature is wrong; or (--memory-flat-after) Redis's or
     the gateway's memory still grows after the settling time
  2  bad flags
  3  the run could not be carried out (a process did not start, setup failed,
     or the gateway answers UNIMPLEMENTED for an RPC the flow needs)
  4  incomplete: the money that was confirmed reconciles, but the run hit
     --duration or --drain-timeout before every submit was confirmed
`)
}

// ParseFlags reads the command line into a Config: built-in defaults, then
// the preset's values and the mode's defaults for flags not given, then
// validation. With -h or --help it prints the help to out and returns
// ErrHelp.
func ParseFlags(args []string, out io.Writer) (Config, error) {
	var c Config
	fs := newFlagSet(&c, out)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(c.Gateways) > 0 && !set["replicas"] {
		c.Replicas = len(c.Gateways)
		set["replicas"] = true
	}
	apply := func(values map[string]string, origin string) error {
		for _, name := range slices.Sorted(mapKeys(values)) {
			if set[name] {
				continue
			}
			// Presets and mode defaults adapt to external processes:
			// crowdload only kills what it started.
			if ((name == "kills" || name == "gateway-env") && len(c.Gateways) > 0) || (name == "redis-restarts" && c.RedisURL != "") {
				continue
			}
			if err := fs.Set(name, values[name]); err != nil {
				return fmt.Errorf("%s: --%s=%s: %w", origin, name, values[name], err)
			}
			set[name] = true
		}
		return nil
	}
	if c.Preset != "" {
		p, ok := Presets[c.Preset]
		if !ok {
			return Config{}, fmt.Errorf("--preset: unknown preset %q (have %s)", c.Preset, strings.Join(slices.Sorted(mapKeys(Presets)), ", "))
		}
		if err := apply(p, "preset "+c.Preset); err != nil {
			return Config{}, err
		}
	}
	if err := apply(modeDefaults[c.Mode], string(c.Mode)+" mode"); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Validate reports the first problem of c, naming the flag.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Mode != ModeThroughput && c.Mode != ModeChaos {
		bad("--mode must be throughput or chaos, got %q", c.Mode)
	}
	if c.API != APIREST && c.API != APIGRPC {
		bad("--api must be rest or grpc, got %q", c.API)
	}
	if c.Tolokers < 1 {
		bad("--tolokers must be at least 1, got %d", c.Tolokers)
	}
	if c.Submits < 1 {
		bad("--submits must be at least 1, got %d", c.Submits)
	}
	if c.Concurrency < 1 {
		bad("--concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.Duration <= 0 {
		bad("--duration must be positive, got %s", c.Duration)
	}
	if c.DrainTimeout <= 0 {
		bad("--drain-timeout must be positive, got %s", c.DrainTimeout)
	}
	if c.RequestTimeout <= 0 {
		bad("--request-timeout must be positive, got %s", c.RequestTimeout)
	}
	if c.AssignmentDuration < 5*time.Second {
		bad("--assignment-duration must be at least 5s (Toloka's minimum), got %s", c.AssignmentDuration)
	}
	if c.Progress < 0 {
		bad("--progress must not be negative, got %s", c.Progress)
	}
	if c.FaultRate < 0 || c.FaultRate > 1 || math.IsNaN(c.FaultRate) {
		bad("--fault-rate must be within 0..1, got %v", c.FaultRate)
	}
	if c.FaultMix.total() <= 0 {
		bad("--fault-mix needs at least one weight above 0")
	}
	if c.FaultHang < 0 || c.ThrottleBurst < 0 || c.ThrottleEvery < 0 || c.RestartDelay < 0 {
		bad("--fault-hang, --throttle-burst, --throttle-every and --restart-delay must not be negative")
	}
	if c.ThrottleBurst > 0 && c.ThrottleEvery <= 0 {
		bad("--throttle-every must be positive when --throttle-burst is set")
	}
	if c.WebhookFailRate < 0 || c.WebhookFailRate >= 1 || math.IsNaN(c.WebhookFailRate) {
		bad("--webhook-fail-rate must be within 0..1 (1 excluded: nothing would be delivered), got %v", c.WebhookFailRate)
	}
	if c.WebhookPrint && !c.Webhook {
		bad("--webhook-print needs --webhook")
	}
	if c.Webhook && c.WebhookWait <= 0 {
		bad("--webhook-wait must be positive, got %s", c.WebhookWait)
	}
	if c.Kills < 0 || c.RedisRestarts < 0 {
		bad("--kills and --redis-restarts must not be negative")
	}
	if c.Mode == ModeThroughput {
		if c.FaultRate != 0 || c.Kills != 0 || c.RedisRestarts != 0 {
			bad("--fault-rate, --kills and --redis-restarts are chaos-mode flags; throughput mode measures a healthy system")
		}
	}
	if len(c.Gateways) > 0 {
		if c.Kills > 0 {
			bad("--kills needs replicas started by crowdload (no --gateway): external replicas cannot be killed and restarted")
		}
		if c.Replicas != 0 && c.Replicas != len(c.Gateways) {
			bad("--replicas=%d but %d --gateway URLs given", c.Replicas, len(c.Gateways))
		}
		if c.Crowdgate != "" {
			bad("--crowdgate-bin and --gateway exclude each other")
		}
		if len(c.GatewayEnv) > 0 {
			bad("--gateway-env applies to replicas crowdload starts, not to --gateway ones")
		}
		for _, g := range c.Gateways {
			if err := loopbackURL(g); err != nil {
				bad("--gateway %q: %v", g, err)
			}
		}
		if c.API == APIGRPC && len(c.GatewaysGRPC) != len(c.Gateways) {
			bad("--api=grpc with --gateway needs one --gateway-grpc address per --gateway URL (got %d for %d)", len(c.GatewaysGRPC), len(c.Gateways))
		}
		if len(c.Gateways) > 0 && c.TolokaURL == "" {
			bad("--gateway needs --toloka-url: external replicas must already talk to the emulator crowdload reads the ledger from")
		}
	} else {
		if len(c.GatewaysGRPC) > 0 {
			bad("--gateway-grpc needs --gateway")
		}
		if c.Replicas < 1 {
			bad("--replicas must be at least 1, got %d", c.Replicas)
		}
	}
	for _, kv := range c.GatewayEnv {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(harnessEnv, k) {
			bad("--gateway-env cannot set %s: crowdload sets it", k)
		}
	}
	for _, a := range c.GatewaysGRPC {
		if err := loopbackHostPort(a); err != nil {
			bad("--gateway-grpc %q: %v", a, err)
		}
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("--redis-url %q: want redis://host:port/db", c.RedisURL)
		} else if err := loopbackHost(u.Hostname()); err != nil {
			bad("--redis-url: %v", err)
		}
		if c.RedisRestarts > 0 {
			bad("--redis-restarts needs a Redis started by crowdload (no --redis-url): only then is AOF with appendfsync always guaranteed")
		}
	}
	if c.TolokaURL != "" {
		if err := loopbackURL(c.TolokaURL); err != nil {
			bad("--toloka-url %q: %v", c.TolokaURL, err)
		}
		if c.Tolokasim != "" {
			bad("--tolokasim-bin and --toloka-url exclude each other")
		}
	}
	if c.Preset != "" {
		if _, ok := Presets[c.Preset]; !ok {
			bad("--preset: unknown preset %q", c.Preset)
		}
	}
	if c.Tolokers*c.Submits > 10_000_000 {
		bad("--tolokers x --submits must be at most 10,000,000")
	}
	return errors.Join(errs...)
}

// loopbackURL checks that u is an http URL on a loopback host.
func loopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http:// URL")
	}
	return loopbackHost(u.Hostname())
}

func loopbackHostPort(s string) error {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	return loopbackHost(host)
}

// loopbackHost refuses hosts other than localhost and loopback IPs: the
// harness kills processes and injects faults, and must never do that to
// anything but a local test bed.
func loopbackHost(h string) error {
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not a loopback address; crowdload only runs against local processes", h)
}

// TotalSubmits is N x K.
func (c *Config) TotalSubmits() int { return c.Tolokers * c.Submits }

// FaultsFor returns the emulator fault configuration that makes rate of
// requests fail, split by mix (see FaultMix).
func FaultsFor(rate float64, mix FaultMix, hang time.Duration, seed uint64) EmulatorFaults {
	f := EmulatorFaults{PathPrefix: "/api/v1/", Seed: seed, HangMS: int(hang / time.Millisecond), RetryAfterSeconds: 1}
	total := mix.total()
	if rate <= 0 || total <= 0 {
		return f
	}
	share := func(w float64) float64 { return rate * w / total }
	if s := share(mix.ServerError); s > 0 {
		f.ErrorRates = map[int]float64{500: s / 4, 502: s / 4, 503: s / 4, 504: s / 4}
	}
	f.TimeoutRate = share(mix.Timeout)
	f.LostResponseRate = share(mix.LostResponse)
	f.DropRate = share(mix.Drop)
	f.ThrottleRate = share(mix.Throttle)
	return f
}
