// Command tolokasim runs the offline Toloka API emulator (see package
// github.com/crowdgate/crowdgate/services/tolokasim).
//
// Every flag can also be set by an environment variable named TOLOKASIM_
// followed by the flag name in upper case with dashes as underscores
// (--api-keys: TOLOKASIM_API_KEYS); a flag on the command line wins.
//
// Alone, -version prints the build (version, commit, build time, Go
// version) and -healthcheck asks the emulator at TOLOKASIM_ADDR whether it
// is up (GET /_admin/healthz; exit 0 or 1), for container health checks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crowdgate/crowdgate/services/platform/buildinfo"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

func main() {
	ctx, done := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx)
	done()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tolokasim:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	if args := os.Args[1:]; len(args) == 1 && (args[0] == "-version" || args[0] == "--version") {
		// The build's version, commit, build time and Go version (stamped
		// with -ldflags by the Makefile and the Dockerfile); no
		// configuration needed.
		_, err := fmt.Fprintln(os.Stdout, "tolokasim", buildinfo.Get())
		return err
	}
	return run(ctx, os.Args[1:], os.Getenv, os.Stderr)
}

// run parses args (with getenv fallbacks), logs to logOut and serves until
// ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, logOut io.Writer) error {
	if len(args) == 1 && (args[0] == "-healthcheck" || args[0] == "--healthcheck") {
		return healthcheck(ctx, getenv)
	}
	cfg, err := parseConfig(args, getenv, logOut)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.Logger.Info("tolokasim is starting", buildinfo.Get().LogAttrs()...)
	return tolokasim.Run(ctx, cfg)
}

// envName is the environment variable that backs flag name.
func envName(name string) string {
	return "TOLOKASIM_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseConfig builds the emulator's Config from flags and environment.
func parseConfig(args []string, getenv func(string) string, logOut io.Writer) (tolokasim.Config, error) {
	fs := flag.NewFlagSet("tolokasim", flag.ContinueOnError)
	fs.SetOutput(logOut)
	var (
		addr            = fs.String("addr", tolokasim.DefaultAddr, "listen address (127.0.0.1:0 picks a free port; the real address is logged as addr=)")
		apiKeys         = fs.String("api-keys", "", "comma-separated key=account pairs accepted as ApiKey or OAuth credentials")
		opDelay         = fs.Duration("operation-delay", tolokasim.DefaultOperationDelay, "time until open/close/archive operations complete (0: at once)")
		reqLogSize      = fs.Int("request-log-size", tolokasim.DefaultRequestLogSize, "API requests kept for GET /_admin/requests (negative: off)")
		maxBody         = fs.Int64("max-body-bytes", tolokasim.DefaultMaxBodyBytes, "largest request body; larger ones get 413")
		honorAutoAccept = fs.Bool("honor-auto-accept", false, "accept submitted assignments per the pool's auto_accept_solutions/auto_accept_period_day")
		shutdownTimeout = fs.Duration("shutdown-timeout", tolokasim.DefaultShutdownTimeout, "graceful shutdown bound")
		logLevel        = fs.String("log-level", "info", "log level: debug, info, warn or error (debug logs every API request)")

		noLimits      = fs.Bool("no-rate-limits", false, "turn every rate limit off")
		rps           = fs.Int("rate-limit-rps", tolokasim.DefaultRequestsPerSecond, "API requests per second per account (0: documented default, -1: off)")
		projPerMin    = fs.Int("rate-limit-project-per-minute", tolokasim.DefaultCreateProjectPerMinute, "POST /projects per minute per account (0: documented default, -1: off)")
		projPerDay    = fs.Int("rate-limit-project-per-day", tolokasim.DefaultCreateProjectPerDay, "POST /projects per day per account (0: documented default, -1: off)")
		poolPerMin    = fs.Int("rate-limit-pool-per-minute", tolokasim.DefaultCreatePoolPerMinute, "POST /pools per minute per account (0: documented default, -1: off)")
		poolPerDay    = fs.Int("rate-limit-pool-per-day", tolokasim.DefaultCreatePoolPerDay, "POST /pools per day per account (0: documented default, -1: off)")
		skillsPerDay  = fs.Int("rate-limit-user-skills-per-day", tolokasim.DefaultUserSkillsPerDay, "PUT /user-skills per day per account (0: documented default, -1: off)")
		faultPrefix   = fs.String("fault-path-prefix", "", "apply faults only to API paths with this prefix (empty: all)")
		faultErrors   = fs.String("fault-error-rate", "", "injected error statuses and probabilities, e.g. 500:0.1,503:0.05")
		faultLatency  = fs.Duration("fault-latency", 0, "added latency of every matching request")
		faultTimeout  = fs.Float64("fault-timeout-rate", 0, "probability of hanging without an answer")
		faultHang     = fs.Duration("fault-hang", 0, "bound of a timeout hang (0: until the client goes away)")
		faultThrottle = fs.Float64("fault-throttle-rate", 0, "probability of a 429 with Retry-After")
		faultThrNext  = fs.Int("fault-throttle-next", 0, "answer the next n matching requests with 429")
		faultRetry    = fs.Int("fault-retry-after", 1, "Retry-After seconds of injected 429s")
		faultInterval = fs.String("fault-throttle-interval", "MIN", "payload.interval of injected 429s: MIN, HOUR or DAY")
		faultDrop     = fs.Float64("fault-drop-rate", 0, "probability of closing the connection without processing or answering")
		faultLost     = fs.Float64("fault-lost-response-rate", 0, "probability of processing a request and then closing the connection without an answer")
		faultFailNext = fs.Int("fault-fail-next", 0, "answer the next n matching requests with 503")
		faultSeed     = fs.Uint64("fault-seed", 42, "seed of the fault random source")
	)
	if err := fs.Parse(args); err != nil {
		return tolokasim.Config{}, err
	}
	if fs.NArg() > 0 {
		return tolokasim.Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	// Environment fallbacks for flags not given on the command line.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			// String flags (like --api-keys, which holds secrets) never
			// fail to set, so an error never echoes a key.
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid %s: %w", envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return tolokasim.Config{}, envErr
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return tolokasim.Config{}, fmt.Errorf("invalid --log-level %q", *logLevel)
	}
	keys, err := tolokasim.ParseAPIKeys(*apiKeys)
	if err != nil {
		return tolokasim.Config{}, fmt.Errorf("--api-keys: %w", err)
	}
	rates, err := parseErrorRates(*faultErrors)
	if err != nil {
		return tolokasim.Config{}, fmt.Errorf("--fault-error-rate: %w", err)
	}
	limits := tolokasim.RateLimits{
		RequestsPerSecond:      *rps,
		CreateProjectPerMinute: *projPerMin,
		CreateProjectPerDay:    *projPerDay,
		CreatePoolPerMinute:    *poolPerMin,
		CreatePoolPerDay:       *poolPerDay,
		UserSkillsPerDay:       *skillsPerDay,
	}
	if *noLimits {
		limits = tolokasim.UnlimitedRateLimits()
	}
	faults := tolokasim.Faults{
		PathPrefix:        *faultPrefix,
		ErrorRates:        rates,
		LatencyMS:         int(*faultLatency / time.Millisecond),
		TimeoutRate:       *faultTimeout,
		HangMS:            int(*faultHang / time.Millisecond),
		ThrottleRate:      *faultThrottle,
		ThrottleNext:      *faultThrNext,
		RetryAfterSeconds: *faultRetry,
		ThrottleInterval:  *faultInterval,
		DropRate:          *faultDrop,
		LostResponseRate:  *faultLost,
		FailNext:          *faultFailNext,
		Seed:              *faultSeed,
	}
	if err := faults.Validate(); err != nil {
		return tolokasim.Config{}, fmt.Errorf("fault flags: %w", err)
	}
	if *opDelay < 0 {
		return tolokasim.Config{}, fmt.Errorf("--operation-delay must not be negative")
	}
	return tolokasim.Config{
		Addr:            *addr,
		APIKeys:         keys,
		OperationDelay:  *opDelay,
		RateLimits:      limits,
		Faults:          faults,
		Logger:          slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})),
		RequestLogSize:  *reqLogSize,
		MaxBodyBytes:    *maxBody,
		HonorAutoAccept: *honorAutoAccept,
		ShutdownTimeout: *shutdownTimeout,
	}, nil
}

// parseErrorRates reads "500:0.1,503:0.05".
func parseErrorRates(s string) (map[int]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[int]float64{}
	for _, part := range strings.Split(s, ",") {
		code, rate, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("want status:rate pairs, got %q", part)
		}
		c, err := strconv.Atoi(code)
		if err != nil {
			return nil, fmt.Errorf("bad status %q", code)
		}
		r, err := strconv.ParseFloat(rate, 64)
		if err != nil {
			return nil, fmt.Errorf("bad rate %q", rate)
		}
		out[c] = r
	}
	return out, nil
}

// healthcheck asks the emulator listening on TOLOKASIM_ADDR (or the default
// address) whether it is up, for container health checks: `tolokasim
// -healthcheck` exits 0 when GET /_admin/healthz answers 200.
func healthcheck(ctx context.Context, getenv func(string) string) error {
	addr := getenv("TOLOKASIM_ADDR")
	if addr == "" {
		addr = tolokasim.DefaultAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("TOLOKASIM_ADDR %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/_admin/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: /_admin/healthz answered %d", resp.StatusCode)
	}
	return nil
}
