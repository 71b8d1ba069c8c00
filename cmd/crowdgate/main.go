// Command crowdgate runs the Crowdgate gateway: gRPC and REST APIs, the
// Toloker landing, health, metrics and the submission workers, in one
// process. Configuration comes from flags and environment variables; run
// with -h to list them.
//
// With -toloka-emulator=embedded (what `make run` uses) it also starts the
// Toloka API emulator in-process on a loopback port and points both Toloka
// URLs at it, so the whole EXTERNAL flow can be tried on a laptop.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/crowdgate/crowdgate/services/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "crowdgate:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	var cfg gateway.Config
	fs := flag.NewFlagSet("crowdgate", flag.ContinueOnError)
	envErr := cfg.Register(fs, os.Getenv)
	emulator := fs.String("toloka-emulator", os.Getenv("CROWDGATE_TOLOKA_EMULATOR"),
		"\"embedded\" starts the Toloka API emulator in-process and points both Toloka URLs at it, for demos (env CROWDGATE_TOLOKA_EMULATOR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(envErr, cfg.Validate()); err != nil {
		return err
	}
	log := cfg.NewLogger(os.Stderr)
	slog.SetDefault(log)

	switch *emulator {
	case "":
	case "embedded":
		url, err := startEmbeddedEmulator(ctx, log)
		if err != nil {
			return err
		}
		cfg.TolokaProductionURL, cfg.TolokaSandboxURL = url, url
	default:
		return fmt.Errorf("-toloka-emulator: want \"embedded\" or nothing, got %q", *emulator)
	}
	return gateway.Run(ctx, cfg, log)
}
