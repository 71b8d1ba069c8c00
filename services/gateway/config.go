package gateway

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/redisclient"
)

// Config is the whole configuration of the gateway. Every field comes from a
// flag whose default is read from an environment variable; Load fills it.
type Config struct {
	// HTTPAddr serves REST, the landing, health, metrics and /openapi.json.
	HTTPAddr string
	// GRPCAddr serves gRPC, gRPC health and reflection.
	GRPCAddr string
	// PublicURL is the public base URL of the HTTP side; the landing URL
	// registered with Toloka is derived from it.
	PublicURL string

	// RedisURL is Redis's URL; empty runs an embedded in-process Redis.
	RedisURL string
	// RedisMode is standalone, sentinel or cluster.
	RedisMode string
	// RedisPrefix starts every key Crowdgate writes.
	RedisPrefix string

	// TolokaProductionURL is the base URL of Toloka's production API.
	TolokaProductionURL string
	// TolokaSandboxURL is the base URL of Toloka's sandbox API.
	TolokaSandboxURL string

	// EncryptionKey is the base64 AES-256 key that encrypts secrets at rest.
	EncryptionKey string

	// Submit* tune the submission outbox (see services/submission.Config).
	SubmitSyncTimeout       time.Duration
	SubmitAttemptTimeout    time.Duration
	SubmitLeaseTTL          time.Duration
	SubmitVisibilityTimeout time.Duration
	SubmitBaseBackoff       time.Duration
	SubmitMaxBackoff        time.Duration
	SubmitConcurrency       int
	SubmitMinReplicas       int

	// LandingLimitIP and LandingLimitAssignment are the landing's rate
	// limits per client address and per assignment.
	LandingLimitIP, LandingLimitAssignment ratelimit.Limit

	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is json or text.
	LogFormat string

	// ShutdownDrain is how long readiness reports NOT_SERVING before the
	// servers stop accepting work, so load balancers can take the replica
	// out first.
	ShutdownDrain time.Duration
	// ShutdownTimeout bounds the wait for in-flight work at shutdown.
	ShutdownTimeout time.Duration

	// Auth is who must authenticate: "off" (or empty: nobody, for local
	// demos and tests) or "keys" (API keys, the admin key, service tokens
	// or service client certificates). See wire_access.go.
	Auth string
	// AdminKey is the bootstrap admin secret (ADMIN scope); only its hash
	// is kept.
	AdminKey string
	// ServiceTokens are internal services' bearer tokens: "name=token"
	// pairs, or "@/path/to/file" holding them.
	ServiceTokens string
	// GRPCTLSCert and GRPCTLSKey are the gRPC server's TLS certificate and
	// key (PEM files); empty serves plaintext gRPC.
	GRPCTLSCert, GRPCTLSKey string
	// GRPCClientCA is the CA (PEM) whose client certificates authenticate
	// internal services over mutual TLS.
	GRPCClientCA string
}

// Setting documents one configuration entry (for --help and the README).
type Setting struct {
	// Flag is the command-line flag, without dashes.
	Flag string
	// Env is the environment variable that sets the flag's default.
	Env string
	// Default applies when neither is given.
	Default string
	// Usage says what it does.
	Usage string

	value flag.Value
}

// Settings lists every configuration entry of the gateway, in the order the
// README documents them.
func Settings() []Setting { return new(Config).settings() }

func (c *Config) settings() []Setting {
	str := func(p *string) flag.Value { return (*stringValue)(p) }
	dur := func(p *time.Duration) flag.Value { return (*durationValue)(p) }
	num := func(p *int) flag.Value { return (*intValue)(p) }
	secret := func(p *string) flag.Value { return (*secretValue)(p) }
	rate := func(p *ratelimit.Limit) flag.Value { return (*rateValue)(p) }
	return []Setting{
		{"http-addr", "CROWDGATE_HTTP_ADDR", ":8080", "listen address for REST, the landing, /healthz, /readyz, /metrics and /openapi.json", str(&c.HTTPAddr)},
		{"grpc-addr", "CROWDGATE_GRPC_ADDR", ":9090", "listen address for gRPC (with gRPC health and reflection)", str(&c.GRPCAddr)},
		{"public-url", "CROWDGATE_PUBLIC_URL", "http://localhost:8080", "public base URL of the HTTP side; the landing URL given to Toloka is derived from it", str(&c.PublicURL)},
		{"redis-url", "REDIS_URL", "", "Redis URL (redis:// or rediss://); empty runs an embedded in-process Redis that keeps nothing across restarts", str(&c.RedisURL)},
		{"redis-mode", "REDIS_MODE", "standalone", "how REDIS_URL is read: standalone, sentinel (?master_name=) or cluster (&addr= for more nodes)", str(&c.RedisMode)},
		{"redis-prefix", "CROWDGATE_REDIS_PREFIX", "crowdgate:", "prefix of every Redis key Crowdgate writes", str(&c.RedisPrefix)},
		{"toloka-production-url", "TOLOKA_PRODUCTION_URL", "https://toloka.dev/api/v1", "base URL of Toloka's production API", str(&c.TolokaProductionURL)},
		{"toloka-sandbox-url", "TOLOKA_SANDBOX_URL", "https://sandbox.toloka.dev/api/v1", "base URL of Toloka's sandbox API", str(&c.TolokaSandboxURL)},
		{"encryption-key", "CROWDGATE_ENCRYPTION_KEY", "", "base64 32-byte key that encrypts Toloka API keys and signing keys at rest (openssl rand -base64 32); empty makes a random one at start", secret(&c.EncryptionKey)},
		{"landing-limit-ip", "CROWDGATE_LANDING_LIMIT_IP", "10/s,burst=60", "landings per client address (last X-Forwarded-For entry): RATE/PERIOD,burst=N with PERIOD s, m, h or a duration", rate(&c.LandingLimitIP)},
		{"landing-limit-assignment", "CROWDGATE_LANDING_LIMIT_ASSIGNMENT", "30/m,burst=10", "landings per assignment, in the same form", rate(&c.LandingLimitAssignment)},
		{"log-level", "CROWDGATE_LOG_LEVEL", "info", "log level: debug, info, warn or error", str(&c.LogLevel)},
		{"log-format", "CROWDGATE_LOG_FORMAT", "json", "log format: json or text", str(&c.LogFormat)},
		{"submit-sync-timeout", "CROWDGATE_SUBMIT_SYNC_TIMEOUT", "2s", "how long Submit waits for Toloka's answer before it answers QUEUED", dur(&c.SubmitSyncTimeout)},
		{"submit-attempt-timeout", "CROWDGATE_SUBMIT_ATTEMPT_TIMEOUT", "10s", "bound of one delivery attempt to Toloka", dur(&c.SubmitAttemptTimeout)},
		{"submit-lease-ttl", "CROWDGATE_SUBMIT_LEASE_TTL", "0s", "per-submission delivery lease, longer than the attempt timeout (0: attempt timeout + 5s)", dur(&c.SubmitLeaseTTL)},
		{"submit-visibility-timeout", "CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT", "30s", "idle time after which another replica reclaims an outbox entry a replica took (a crashed replica's work)", dur(&c.SubmitVisibilityTimeout)},
		{"submit-base-backoff", "CROWDGATE_SUBMIT_BASE_BACKOFF", "1s", "first wait before retrying a failed delivery (doubles, with jitter)", dur(&c.SubmitBaseBackoff)},
		{"submit-max-backoff", "CROWDGATE_SUBMIT_MAX_BACKOFF", "5m", "longest wait between delivery retries", dur(&c.SubmitMaxBackoff)},
		{"submit-concurrency", "CROWDGATE_SUBMIT_CONCURRENCY", "32", "deliveries in flight per replica", num(&c.SubmitConcurrency)},
		{"submit-min-replicas", "CROWDGATE_SUBMIT_MIN_REPLICAS", "0", "Redis replicas that must hold a submit before Submit answers (WAIT); 0 on a standalone Redis", num(&c.SubmitMinReplicas)},
		{"shutdown-drain", "CROWDGATE_SHUTDOWN_DRAIN", "0s", "time readiness reports NOT_SERVING before servers stop taking new work", dur(&c.ShutdownDrain)},
		{"shutdown-timeout", "CROWDGATE_SHUTDOWN_TIMEOUT", "30s", "bound on the wait for in-flight work at shutdown", dur(&c.ShutdownTimeout)},
		{"auth", "CROWDGATE_AUTH", "", "who must authenticate: off (empty: nobody, local demos and tests only) or keys (API keys, the admin key, service tokens or client certificates)", str(&c.Auth)},
		{"admin-key", "CROWDGATE_ADMIN_KEY", "", "bootstrap admin secret (ADMIN scope, at least 32 characters; openssl rand -hex 32); give it by environment, not flag", secret(&c.AdminKey)},
		{"service-tokens", "CROWDGATE_SERVICE_TOKENS", "", "internal services' bearer tokens: name=token pairs separated by commas, or @/path/to/file with one pair a line", secret(&c.ServiceTokens)},
		{"grpc-tls-cert", "CROWDGATE_GRPC_TLS_CERT", "", "PEM certificate of the gRPC server; with -grpc-tls-key, gRPC is served over TLS", str(&c.GRPCTLSCert)},
		{"grpc-tls-key", "CROWDGATE_GRPC_TLS_KEY", "", "PEM private key of the gRPC server", str(&c.GRPCTLSKey)},
		{"grpc-client-ca", "CROWDGATE_GRPC_CLIENT_CA", "", "PEM CA whose client certificates authenticate internal services over mutual TLS (service name: the certificate's first DNS name, else its CN)", str(&c.GRPCClientCA)},
	}
}

// Register defines the gateway's flags on fs. Each flag's default is its
// environment variable (read through getenv) when set, the built-in default
// otherwise. A bad environment value is reported, naming the variable.
func (c *Config) Register(fs *flag.FlagSet, getenv func(string) string) error {
	var errs []error
	for _, s := range c.settings() {
		def := s.Default
		if v := getenv(s.Env); v != "" {
			def = v
		}
		if err := s.value.Set(def); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Env, err))
		}
		fs.Var(s.value, s.Flag, fmt.Sprintf("%s (env %s)", s.Usage, s.Env))
	}
	return errors.Join(errs...)
}

type stringValue string

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

type intValue int

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a non-negative integer, got %q", s)
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

type rateValue ratelimit.Limit

func (v *rateValue) Set(s string) error {
	l, err := ratelimit.ParseRate(s)
	if err != nil {
		return err
	}
	*v = rateValue(l)
	return nil
}
func (v *rateValue) String() string { return ratelimit.Limit(*v).RateString() }

type durationValue time.Duration

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("want a non-negative duration like 5s, got %q", s)
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }

// Load reads the configuration from args and the environment and validates it.
func Load(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("crowdgate", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	envErr := cfg.Register(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if err := errors.Join(envErr, cfg.Validate()); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks the values that can be checked without connecting.
func (c *Config) Validate() error {
	var errs []error
	for name, raw := range map[string]string{
		"CROWDGATE_PUBLIC_URL":  c.PublicURL,
		"TOLOKA_PRODUCTION_URL": c.TolokaProductionURL,
		"TOLOKA_SANDBOX_URL":    c.TolokaSandboxURL,
	} {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: want an absolute http(s) URL, got %q", name, raw))
		}
	}
	switch redisclient.Mode(c.RedisMode) {
	case redisclient.ModeStandalone, redisclient.ModeSentinel, redisclient.ModeCluster:
	default:
		errs = append(errs, fmt.Errorf("REDIS_MODE: want standalone, sentinel or cluster, got %q", c.RedisMode))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("CROWDGATE_LOG_FORMAT: want json or text, got %q", c.LogFormat))
	}
	return errors.Join(errs...)
}

// LandingURL is the one URL every project gives Toloka as redirect_url.
func (c *Config) LandingURL() string {
	return strings.TrimRight(c.PublicURL, "/") + LandingPath
}

// LandingPath is where Toloka sends Tolokers who click Start.
const LandingPath = "/start"

// NewLogger builds the slog logger the configuration asks for.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("CROWDGATE_LOG_LEVEL: want debug, info, warn or error, got %q", s)
	}
	return l, nil
}
