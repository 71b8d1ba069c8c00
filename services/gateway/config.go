package gateway

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/notify/webhook"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/settings"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
	"github.com/crowdgate/crowdgate/services/toloker/registry"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/toloker/submission"
)

// Config is the whole configuration of the gateway: its own settings and
// each capability's, composed. Every field comes from a flag whose default
// is read from an environment variable; Load fills it.
type Config struct {
	// HTTPAddr serves REST, the landing, health, metrics and /openapi.json.
	HTTPAddr string
	// GRPCAddr serves gRPC, gRPC health and reflection.
	GRPCAddr string
	// PublicURL is the public base URL of the HTTP side; the landing URL
	// registered with Toloka is derived from it.
	PublicURL string

	// Redis is where the datastore is.
	Redis storage.Settings
	// Toloka is where Toloka is and the limits kept with it.
	Toloka toloka.Settings
	// Secrets hold the encryption key of secrets at rest.
	Secrets secretbox.Settings
	// Access is who may call and how they prove it.
	Access access.Settings
	// CORS is which web pages on other origins may call the REST API.
	CORS CORSSettings
	// Landing, Session and Submission tune the Toloker's side.
	Landing    landing.Settings
	Session    session.Settings
	Submission submission.Settings
	// Tolokers tunes the registry of Tolokers.
	Tolokers registry.Settings
	// Events tunes the tenants' event logs.
	Events events.Settings
	// PoolWatch tunes the poll that learns of pools Toloka closes itself.
	PoolWatch pool.WatchSettings
	// Webhooks tunes webhook delivery and its SSRF guard.
	Webhooks webhook.Settings

	// LogLevel is debug, info, warn or error; LogFormat json or text.
	LogLevel, LogFormat string
	// ShutdownDrain is how long readiness reports NOT_SERVING before the
	// servers stop accepting work, so load balancers can take the replica
	// out first.
	ShutdownDrain time.Duration
	// ShutdownTimeout bounds the wait for in-flight work at shutdown.
	ShutdownTimeout time.Duration
}

// Settings lists every configuration entry of the gateway, in the order the
// README documents them.
func Settings() []settings.Setting { return new(Config).settings() }

// settings composes the gateway's own settings with each capability's.
func (c *Config) settings() []settings.Setting {
	s := []settings.Setting{
		settings.New("http-addr", "CROWDGATE_HTTP_ADDR", ":8080", "listen address for REST, the landing, /healthz, /readyz, /metrics and /openapi.json", settings.String(&c.HTTPAddr)),
		settings.New("grpc-addr", "CROWDGATE_GRPC_ADDR", ":9090", "listen address for gRPC (with gRPC health and reflection)", settings.String(&c.GRPCAddr)),
		settings.New("public-url", "CROWDGATE_PUBLIC_URL", "http://localhost:8080", "public base URL of the HTTP side; the landing URL given to Toloka is derived from it", settings.String(&c.PublicURL)),
	}
	s = append(s, c.Redis.List()...)
	s = append(s, c.Toloka.List()...)
	s = append(s, c.Secrets.List()...)
	s = append(s, c.Access.List()...)
	s = append(s, c.CORS.List()...)
	s = append(s, c.Landing.List()...)
	s = append(s, c.Session.List()...)
	s = append(s, c.Submission.List()...)
	s = append(s, c.Tolokers.List()...)
	s = append(s, c.Events.List()...)
	s = append(s, c.PoolWatch.List()...)
	s = append(s, c.Webhooks.List()...)
	return append(s,
		settings.New("log-level", "CROWDGATE_LOG_LEVEL", "info", "log level: debug, info, warn or error", settings.String(&c.LogLevel)),
		settings.New("log-format", "CROWDGATE_LOG_FORMAT", "json", "log format: json or text", settings.String(&c.LogFormat)),
		settings.New("shutdown-drain", "CROWDGATE_SHUTDOWN_DRAIN", "0s", "time readiness reports NOT_SERVING before servers stop taking new work (0: none)", settings.DurationOrZero(&c.ShutdownDrain)),
		settings.New("shutdown-timeout", "CROWDGATE_SHUTDOWN_TIMEOUT", "30s", "bound on the wait for in-flight work at shutdown", settings.Duration(&c.ShutdownTimeout)),
	)
}

// Register defines the gateway's flags on fs. Each flag's default is its
// environment variable (read through getenv) when set, the built-in default
// otherwise. A bad environment value is reported, naming the variable.
func (c *Config) Register(fs *flag.FlagSet, getenv func(string) string) error {
	return settings.Register(fs, getenv, c.settings())
}

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
	for _, u := range []struct{ name, raw string }{
		{"CROWDGATE_PUBLIC_URL", c.PublicURL},
		{"TOLOKA_PRODUCTION_URL", c.Toloka.ProductionURL},
		{"TOLOKA_SANDBOX_URL", c.Toloka.SandboxURL},
	} {
		v, err := url.Parse(u.raw)
		if err != nil || (v.Scheme != "http" && v.Scheme != "https") || v.Host == "" {
			errs = append(errs, fmt.Errorf("%s: want an absolute http(s) URL, got %q", u.name, u.raw))
			continue
		}
		if u.name == "CROWDGATE_PUBLIC_URL" && (v.RawQuery != "" || v.ForceQuery || v.Fragment != "" || v.User != nil) {
			// The landing URL is this plus /start, and it is the tokens'
			// issuer: a query, fragment or user info would break both.
			errs = append(errs, fmt.Errorf("%s: want a URL without query, fragment or user info (the landing URL is it plus %s)", u.name, LandingPath))
		}
	}
	if _, err := storage.ParseMode(string(c.Redis.Mode)); err != nil {
		errs = append(errs, fmt.Errorf("REDIS_MODE: %w", err))
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
