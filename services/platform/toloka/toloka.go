// Package toloka is a typed client for Toloka's requester API: projects,
// pools, operations, assignments, external task submits (which pay
// Tolokers), user restrictions and user skills.
//
// One *Client holds the configuration and the HTTP connection pool and is
// shared by the whole process. Each requester's credential gets an *Account
// from Client.Account; every API call is a method of Account.
//
// Every call has a deadline (Config.Timeout when the context has none),
// passes through the shared rate limiter (Config.Limiter) and is retried with
// exponential backoff and full jitter only where repeating it is safe:
//
//   - GETs, pool open/close/archive, project archive, PUT pool/project,
//     PATCH pool priority, PATCH assignment, PUT user-restrictions,
//     DELETE user-restrictions, PUT user-skills, and external submits that
//     carry a RetryID (the same retry_id is sent on every attempt): on 408,
//     429, 500, 502, 503, 504 and network errors;
//   - project and pool creation: only on 429 and on connection failures
//     before the request was sent (Toloka refused before doing anything);
//   - external submits without a RetryID: only on connection failures before
//     the request was sent.
//
// Retry-After (seconds or an HTTP date) and a 429's payload.interval are
// honoured within Config.Retry.Budget; a wait that does not fit is not slept
// but returned at once as a ResourceExhausted or Unavailable error carrying
// the retry time.
//
// Failed calls return a *Error, which unwraps to the matching
// services/serviceerror type, so serviceerror.ToStatus maps it to a gRPC
// status with no knowledge of Toloka. Credentials never appear in logs,
// errors or formatted values.
package toloka

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/settings"
)

// Default base URLs. They include the API version path: a call to
// "/projects" goes to <base>/projects.
const (
	DefaultProductionURL = "https://toloka.dev/api/v1"
	DefaultSandboxURL    = "https://sandbox.toloka.dev/api/v1"
)

// Environment names Toloka's production or sandbox installation.
type Environment string

// Environments.
const (
	Sandbox    Environment = "sandbox"
	Production Environment = "production"
)

// ParseEnvironment reads "sandbox" or "production" in any letter case.
func ParseEnvironment(s string) (Environment, error) {
	switch e := Environment(strings.ToLower(strings.TrimSpace(s))); e {
	case Sandbox, Production:
		return e, nil
	}
	return "", fmt.Errorf("toloka: unknown environment %q (want sandbox or production)", s)
}

// AuthScheme is the scheme of the Authorization header.
type AuthScheme string

// Authorization schemes.
const (
	// AuthAuto picks ApiKey for tokens shaped like current API keys (three
	// non-empty parts separated by dots) and OAuth for anything else.
	AuthAuto AuthScheme = ""
	// AuthAPIKey sends "Authorization: ApiKey <token>".
	AuthAPIKey AuthScheme = "ApiKey"
	// AuthOAuth sends "Authorization: OAuth <token>" (legacy OAuth tokens).
	AuthOAuth AuthScheme = "OAuth"
)

// Credential is one requester's access to one Toloka environment.
//
// Its token never leaves through formatting: String, GoString, Format (every
// fmt verb) and LogValue redact it, and encoding/json skips it. Store tokens
// with your own encoding.
type Credential struct {
	// Environment is Sandbox or Production.
	Environment Environment
	// Token is the requester's API key or OAuth token. A leading "ApiKey " or
	// "OAuth " is taken as the scheme and removed.
	Token string `json:"-"`
	// Scheme forces the Authorization scheme; AuthAuto guesses it from Token.
	Scheme AuthScheme
}

const redacted = "REDACTED"

// String describes the credential without its token.
func (c Credential) String() string {
	return fmt.Sprintf("toloka.Credential{Environment: %s, Scheme: %s, Token: %s}", c.Environment, c.scheme(), redacted)
}

// GoString is String: %#v must not print the token either.
func (c Credential) GoString() string { return c.String() }

// Format writes String for every verb, so no verb (%d, %x, %q, ...) prints
// the token.
func (c Credential) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue logs the credential without its token.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("environment", string(c.Environment)),
		slog.String("scheme", string(c.scheme())),
		slog.String("token", redacted),
	)
}

// token returns the token without a scheme prefix the user may have pasted.
func (c Credential) token() string {
	t := strings.TrimSpace(c.Token)
	for _, p := range []AuthScheme{AuthAPIKey, AuthOAuth} {
		if strings.EqualFold(t, string(p)) {
			return "" // a scheme and no token
		}
		if len(t) > len(p)+1 && strings.EqualFold(t[:len(p)+1], string(p)+" ") {
			return strings.TrimSpace(t[len(p)+1:])
		}
	}
	return t
}

func (c Credential) scheme() AuthScheme {
	if c.Scheme != AuthAuto {
		return c.Scheme
	}
	t := strings.TrimSpace(c.Token)
	for _, p := range []AuthScheme{AuthAPIKey, AuthOAuth} {
		if len(t) > len(p)+1 && strings.EqualFold(t[:len(p)+1], string(p)+" ") {
			return p
		}
	}
	if looksLikeAPIKey(c.token()) {
		return AuthAPIKey
	}
	return AuthOAuth
}

// looksLikeAPIKey reports whether token has the shape of a current Toloka API
// key: three non-empty parts separated by dots (toloka-kit's rule).
func looksLikeAPIKey(token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
	}
	return true
}

// RetryPolicy bounds retries of one call.
type RetryPolicy struct {
	// MaxAttempts is the most attempts of one call, the first included.
	// Zero means 4; 1 disables retries.
	MaxAttempts int
	// BaseBackoff is the ceiling of the first backoff; it doubles per retry.
	// Zero means 500ms.
	BaseBackoff time.Duration
	// MaxBackoff caps a backoff's ceiling. Zero means 10s.
	MaxBackoff time.Duration
	// Budget bounds the whole call: no retry starts, and no wait is slept,
	// that would end more than Budget after the call began. Zero means 30s.
	Budget time.Duration
}

// Limits are the client-side limits the client reserves through the Limiter.
// A zero field takes the default.
type Limits struct {
	// Requests applies to every HTTP request. Default: 295/s with a burst of
	// 5, which never exceeds Toloka's documented 300 requests/s per account
	// in any one-second interval.
	Requests ratelimit.Limit
	// CreateProject applies (in addition) to the first attempt of a project
	// creation. Default: 20 a minute and 100 a day (sliding windows).
	CreateProject []ratelimit.Limit
	// CreatePool applies (in addition) to the first attempt of a pool
	// creation. Default: 20 a minute and 100 a day (sliding windows).
	CreatePool []ratelimit.Limit
}

// DefaultLimits returns the limits used when Config.Limits is zero.
func DefaultLimits() Limits {
	return Limits{
		Requests: ratelimit.Limit{Name: "toloka-requests", Rate: 295, Per: time.Second, Burst: 5},
		CreateProject: []ratelimit.Limit{
			{Name: "toloka-create-project-minute", Rate: 20, Per: time.Minute},
			{Name: "toloka-create-project-day", Rate: 100, Per: 24 * time.Hour},
		},
		CreatePool: []ratelimit.Limit{
			{Name: "toloka-create-pool-minute", Rate: 20, Per: time.Minute},
			{Name: "toloka-create-pool-day", Rate: 100, Per: 24 * time.Hour},
		},
	}
}

// Limiter reserves rate-limit slots; *ratelimit.Limiter implements it.
type Limiter interface {
	// Wait reserves a slot in every limit under key or returns an error
	// (a *serviceerror.ResourceExhausted when a limit refuses).
	Wait(ctx context.Context, key string, limits ...ratelimit.Limit) error
}

// Attempt describes one HTTP request, for Config.OnAttempt (metrics).
type Attempt struct {
	// Op names the API call ("pool.create").
	Op string
	// Number is 1 for the first attempt of a call.
	Number int
	// StatusCode is the HTTP status, or 0 when no response arrived.
	StatusCode int
	// Code is Toloka's error code, "" on success or without a body.
	Code string
	// Duration is how long the request took.
	Duration time.Duration
	// Retry is true when another attempt follows.
	Retry bool
}

// Config configures a Client.
type Config struct {
	// ProductionURL is the base URL of the production API including the
	// version path, e.g. https://toloka.dev/api/v1. Empty means
	// DefaultProductionURL.
	ProductionURL string
	// SandboxURL is the base URL of the sandbox API including the version
	// path. Empty means DefaultSandboxURL.
	SandboxURL string
	// HTTPClient sends requests. Nil means a client with its own transport.
	HTTPClient *http.Client
	// Limiter, when set, is asked for a slot before every request.
	Limiter Limiter
	// Limits are the limits reserved through Limiter. Zero means
	// DefaultLimits.
	Limits Limits
	// Retry bounds retries.
	Retry RetryPolicy
	// Timeout is the deadline of a call whose context has none. Zero means
	// 60s. WaitOperation uses OperationTimeout instead.
	Timeout time.Duration
	// AttemptTimeout bounds one HTTP attempt. Zero means 20s.
	AttemptTimeout time.Duration
	// OperationTimeout is WaitOperation's deadline when its context has none.
	// Zero means 10 minutes.
	OperationTimeout time.Duration
	// PollInterval is WaitOperation's first polling interval; it doubles up
	// to MaxPollInterval. Zero means 500ms and 10s.
	PollInterval, MaxPollInterval time.Duration
	// UserAgent is sent with every request. Empty means "crowdgate-toloka".
	UserAgent string
	// Logger receives debug logs of requests (never a credential). Nil means
	// slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives Prometheus metrics: requests by
	// operation and HTTP status (crowdgate_toloka_requests_total), retries
	// (crowdgate_toloka_retries_total) and request latency
	// (crowdgate_toloka_request_seconds).
	Registerer prometheus.Registerer
	// OnAttempt, when set, is called after every HTTP attempt.
	OnAttempt func(Attempt)

	// Now, Sleep and Jitter replace the clock, the sleeper and the jitter in
	// tests. Jitter returns a duration in [0, d]; nil means uniform random
	// (full jitter).
	Now    func() time.Time
	Sleep  func(ctx context.Context, d time.Duration) error
	Jitter func(d time.Duration) time.Duration
}

// Settings are the client's operator settings: where Toloka is and the
// limits the client keeps to.
type Settings struct {
	// ProductionURL and SandboxURL are the APIs' base URLs.
	ProductionURL, SandboxURL string
	// Limits are the client-side limits, per Toloka account.
	Limits Limits
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	windows := func(name string, p *[]ratelimit.Limit) flag.Value {
		return settings.Func(p, func(v string) ([]ratelimit.Limit, error) {
			ls, err := ratelimit.ParseWindows(v)
			for i := range ls {
				ls[i].Name = name + "-" + windowName(ls[i].Per)
			}
			return ls, err
		}, ratelimit.WindowsString)
	}
	return []settings.Setting{
		settings.New("toloka-production-url", "TOLOKA_PRODUCTION_URL", DefaultProductionURL, "base URL of Toloka's production API", settings.String(&s.ProductionURL)),
		settings.New("toloka-sandbox-url", "TOLOKA_SANDBOX_URL", DefaultSandboxURL, "base URL of Toloka's sandbox API", settings.String(&s.SandboxURL)),
		settings.New("toloka-request-limit", "CROWDGATE_TOLOKA_REQUEST_LIMIT", "295/s,burst=5",
			"requests per Toloka account, shared by every replica (Toloka refuses more than 300 a second): RATE/PERIOD,burst=N", settings.Func(&s.Limits.Requests, func(v string) (ratelimit.Limit, error) {
				l, err := ratelimit.ParseRate(v)
				l.Name = "toloka-requests"
				return l, err
			}, ratelimit.Limit.RateString)),
		settings.New("toloka-create-project-limit", "CROWDGATE_TOLOKA_CREATE_PROJECT_LIMIT", "20/m;100/24h",
			"project creations per Toloka account (Toloka's quota): sliding windows RATE/PERIOD;RATE/PERIOD", windows("toloka-create-project", &s.Limits.CreateProject)),
		settings.New("toloka-create-pool-limit", "CROWDGATE_TOLOKA_CREATE_POOL_LIMIT", "20/m;100/24h",
			"pool creations per Toloka account (Toloka's quota), in the same form", windows("toloka-create-pool", &s.Limits.CreatePool)),
	}
}

// DefaultSettings returns the settings' built-in defaults.
func DefaultSettings() Settings {
	var s Settings
	settings.Defaults(s.List())
	return s
}

// windowName names a sliding window by its length ("minute", "day"), so
// that the Redis key of a limit stays the same whatever its rate.
func windowName(per time.Duration) string {
	switch per {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return per.String()
}

// Client is the process-wide Toloka client: configuration plus one HTTP
// connection pool. It is safe for concurrent use.
type Client struct {
	urls    map[Environment]string
	http    *http.Client
	cfg     Config
	limits  Limits
	log     *slog.Logger
	metrics *metrics
}

// New validates cfg, fills in defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	c := &Client{cfg: cfg, urls: map[Environment]string{}}
	for env, raw := range map[Environment]string{Production: cfg.ProductionURL, Sandbox: cfg.SandboxURL} {
		if raw == "" {
			raw = map[Environment]string{Production: DefaultProductionURL, Sandbox: DefaultSandboxURL}[env]
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("toloka: %s URL %q is not an http(s) base URL", env, raw)
		}
		c.urls[env] = strings.TrimRight(raw, "/")
	}
	if c.http = cfg.HTTPClient; c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Toloka is one host per environment: keep enough idle connections
		// for a burst of concurrent calls instead of net/http's 2.
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 512
		c.http = &http.Client{Transport: t}
	}
	// A redirect is not followed: net/http would turn a POST into a GET
	// without its body (a 301, 302 or 303), or send it to another host
	// without its Authorization (a 307 or 308), and Toloka's refusal of
	// that request would read as a refusal of the submit. The 3xx is an
	// error (the submission outbox retries it).
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	r := &c.cfg.Retry
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 4
	}
	if r.BaseBackoff <= 0 {
		r.BaseBackoff = 500 * time.Millisecond
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 10 * time.Second
	}
	if r.Budget <= 0 {
		r.Budget = 30 * time.Second
	}
	setDefault(&c.cfg.Timeout, 60*time.Second)
	setDefault(&c.cfg.AttemptTimeout, 20*time.Second)
	setDefault(&c.cfg.OperationTimeout, 10*time.Minute)
	setDefault(&c.cfg.PollInterval, 500*time.Millisecond)
	setDefault(&c.cfg.MaxPollInterval, 10*time.Second)
	if c.cfg.UserAgent == "" {
		c.cfg.UserAgent = "crowdgate-toloka"
	}
	if c.log = cfg.Logger; c.log == nil {
		c.log = slog.Default()
	}
	if c.cfg.Now == nil {
		c.cfg.Now = time.Now
	}
	if c.cfg.Sleep == nil {
		c.cfg.Sleep = sleepTimer
	}
	if c.cfg.Jitter == nil {
		c.cfg.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d + 1)
		}
	}
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer)
		if err != nil {
			return nil, fmt.Errorf("toloka: metrics: %w", err)
		}
		c.metrics = m
	}
	def := DefaultLimits()
	c.limits = cfg.Limits
	if c.limits.Requests == (ratelimit.Limit{}) {
		c.limits.Requests = def.Requests
	}
	if c.limits.CreateProject == nil {
		c.limits.CreateProject = def.CreateProject
	}
	if c.limits.CreatePool == nil {
		c.limits.CreatePool = def.CreatePool
	}
	return c, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Account returns the handle through which calls are made with cred. It is
// cheap; Accounts of one Client share its connection pool.
func (c *Client) Account(cred Credential) (*Account, error) {
	base, ok := c.urls[cred.Environment]
	if !ok {
		return nil, fmt.Errorf("toloka: unknown environment %q (want sandbox or production)", cred.Environment)
	}
	tok := cred.token()
	if tok == "" {
		return nil, errors.New("toloka: credential has no token")
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return nil, errors.New("toloka: credential token contains whitespace")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x21 || c > 0x7e {
			// An Authorization header carries visible ASCII only.
			return nil, errors.New("toloka: credential token contains a character a header cannot carry")
		}
	}
	scheme := cred.scheme()
	if scheme != AuthAPIKey && scheme != AuthOAuth {
		return nil, fmt.Errorf("toloka: unknown auth scheme %q", string(scheme))
	}
	sum := sha256.Sum256([]byte(string(cred.Environment) + "\x00" + tok))
	return &Account{
		client: c,
		env:    cred.Environment,
		base:   base,
		scheme: scheme,
		key:    "toloka:" + string(cred.Environment) + ":" + hex.EncodeToString(sum[:16]),
		auth:   authHeader(string(scheme) + " " + tok),
	}, nil
}

// authHeader hides the Authorization header value in a closure: reflection
// (fmt printing an Account's fields, a debugger's %+v, ...) sees only a func.
func authHeader(v string) func() string { return func() string { return v } }

// Account makes API calls with one credential. It is safe for concurrent
// use.
type Account struct {
	client *Client
	env    Environment
	base   string
	scheme AuthScheme
	key    string
	auth   func() string
}

// Environment returns the account's environment.
func (a *Account) Environment() Environment { return a.env }

// Key identifies the account without revealing the credential: a hash of
// environment and token. The rate limiter counts per Key.
func (a *Account) Key() string { return a.key }

// String describes the account without its credential.
func (a Account) String() string {
	return fmt.Sprintf("toloka.Account{Environment: %s, Scheme: %s, Key: %s}", a.env, a.scheme, a.key)
}

// GoString is String.
func (a Account) GoString() string { return a.String() }

// Format writes String for every verb.
func (a Account) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(a.String())) }

// LogValue logs the account without its credential.
func (a *Account) LogValue() slog.Value {
	return slog.GroupValue(slog.String("environment", string(a.env)), slog.String("key", a.key))
}

func sleepTimer(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Ptr returns a pointer to v, for optional fields: Ptr(true), Ptr(300).
func Ptr[T any](v T) *T { return &v }
