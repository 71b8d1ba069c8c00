// Command crowdgate runs the Crowdgate gateway: gRPC and REST APIs, the
// Toloker landing, health, metrics and the submission workers, in one
// process. Configuration comes from flags and environment variables; run
// with -h to list them.
//
// With -toloka-emulator=embedded (what `make run` uses) it also starts the
// Toloka API emulator in-process on a loopback port and points both Toloka
// URLs at it, so the whole EXTERNAL flow can be tried on a laptop.
//
// With -reseal it serves nothing: it re-seals every secret stored in Redis
// under the newest key of CROWDGATE_ENCRYPTION_KEY (a key ring, newest
// first), logs the counts and exits, so an old key can then leave the ring
// (deploy/README.md, "Rotating the encryption key").
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/platform/buildinfo"
)

// defaultGCPercent is the gateway's GOGC unless the environment sets one.
// Its live heap is small (sessions and submissions live in Redis) and its
// allocation rate high (one short request after another), so collecting at
// 400% of the live heap instead of Go's 100% saves about a tenth of the CPU
// of a landing for a few tens of MiB. GOMEMLIMIT, which the deploy
// manifests set below the container's limit, still bounds the heap.
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts the graceful shutdown; from then on the
	// signals are Go's default again, so a second one ends the process.
	context.AfterFunc(ctx, stop)
	// Until the configuration names a log format, failures are logged as
	// JSON, the default.
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := realMain(ctx, os.Args[1:], &log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		// One line that names the setting at fault and the cause.
		msg := "crowdgate cannot start"
		if errors.As(err, new(resealError)) {
			msg = "crowdgate -reseal failed"
		}
		log.Error(msg, "err", err.Error())
		os.Exit(1)
	}
}

// realMain parses the configuration and runs the gateway until ctx ends.
// It replaces *log with the configured logger as soon as it can.
func realMain(ctx context.Context, args []string, log **slog.Logger) error {
	var cfg gateway.Config
	fs := flag.NewFlagSet("crowdgate", flag.ContinueOnError)
	envErr := cfg.Register(fs, os.Getenv)
	emulator := fs.String("toloka-emulator", os.Getenv("CROWDGATE_TOLOKA_EMULATOR"),
		"\"embedded\" starts the Toloka API emulator in-process and points both Toloka URLs at it, for demos (env CROWDGATE_TOLOKA_EMULATOR)")
	emulatorAddr := fs.String("toloka-emulator-addr", envOr("CROWDGATE_TOLOKA_EMULATOR_ADDR", "127.0.0.1:8081"),
		"where the embedded emulator listens (env CROWDGATE_TOLOKA_EMULATOR_ADDR)")
	healthcheck := fs.Bool("healthcheck", false,
		"check /readyz of the gateway at -http-addr and exit 0 if ready, 1 otherwise (for container health checks)")
	reseal := fs.Bool("reseal", false,
		"re-seal every stored secret (Toloka API keys, token signing keys) under the newest key of CROWDGATE_ENCRYPTION_KEY, log the counts and exit 0; "+
			"run it once every replica has the ring, then drop the old key (deploy/README.md)")
	version := fs.Bool("version", false, "print the build's version, commit, build time and Go version and exit")
	// The usage goes out on -h only; a refused flag is the error's to say.
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = os.Stdout.Write(usage.Bytes())
		}
		return err
	}
	if *version {
		// Before the configuration is checked: it needs none.
		_, err := fmt.Fprintln(os.Stdout, "crowdgate", buildinfo.Get())
		return err
	}
	if err := errors.Join(envErr, cfg.Validate()); err != nil {
		return err
	}
	if *healthcheck {
		return checkReady(ctx, cfg.HTTPAddr)
	}
	*log = cfg.NewLogger(os.Stderr)
	slog.SetDefault(*log)
	(*log).Info("crowdgate is starting", buildinfo.Get().LogAttrs()...)
	if *reseal {
		if err := gateway.Reseal(ctx, cfg, *log); err != nil {
			return resealError{err}
		}
		return nil
	}

	switch *emulator {
	case "":
	case "embedded":
		url, err := startEmbeddedEmulator(ctx, *emulatorAddr, *log)
		if err != nil {
			return fmt.Errorf("CROWDGATE_TOLOKA_EMULATOR_ADDR: %w", err)
		}
		cfg.Toloka.ProductionURL, cfg.Toloka.SandboxURL = url, url
	default:
		return fmt.Errorf("CROWDGATE_TOLOKA_EMULATOR: want \"embedded\" or nothing, got %q", *emulator)
	}
	return gateway.Run(ctx, cfg, *log)
}

// resealError is a failure of -reseal (rather than one at start).
type resealError struct{ err error }

func (e resealError) Error() string { return e.err.Error() }
func (e resealError) Unwrap() error { return e.err }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// checkReady asks the gateway listening on httpAddr whether it is ready.
func checkReady(ctx context.Context, httpAddr string) error {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return fmt.Errorf("-http-addr %q: %w", httpAddr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: /readyz answered %d", resp.StatusCode)
	}
	return nil
}
