// Command crowdload is Crowdgate's load and fault harness: it runs the whole
// EXTERNAL flow (Start in Toloka, the landing, the platform's code exchange
// and submits) against real crowdgate, tolokasim and redis-server processes
// on loopback addresses, and reconciles the money at the end: every submit
// paid exactly once, totals equal to the cent. "crowdload landing" is the
// landing benchmark instead: warm and cold landings with their ceilings
// measured in the same run; "crowdload webhooks" is the webhook fan-out
// benchmark: events delivered per second into one local endpoint and the
// p99 from an event to its receipt, beside the endpoint's own ceiling;
// "crowdload submits" is the submit acceptance benchmark: Submit over gRPC
// and REST beside redis-benchmark's rate for the same writes. Run with --help for the flags; the logic lives
// in package services/crowdload.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/crowdgate/crowdgate/services/tools/crowdload"
)

// Exit statuses besides Result.ExitCode's 0, 1 and 4.
const (
	exitUsage  = 2
	exitCannot = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	finished := make(chan struct{})
	go func() {
		// After the first signal the run stops its load and reconciles
		// what was sent; a second one ends the process at once (the
		// processes it started die with it).
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		stop()
		fmt.Fprintln(os.Stderr, "crowdload: interrupted: stopping the load and reconciling what was sent (interrupt again to quit at once)")
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	close(finished)
	stop()
	os.Exit(code)
}

// run is the command without the process around it; it returns the exit
// status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "landing" {
		return runLanding(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "webhooks" {
		return runWebhooks(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == crowdload.SenderSubcommand {
		if err := crowdload.RunSender(ctx, args[1:], stdout); err != nil {
			fmt.Fprintln(stderr, "crowdload "+crowdload.SenderSubcommand+":", err)
			return exitCannot
		}
		return 0
	}
	if len(args) > 0 && args[0] == "submits" {
		return runSubmits(ctx, args[1:], stdout, stderr)
	}
	cfg, err := crowdload.ParseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, crowdload.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "crowdload:", err)
		fmt.Fprintln(stderr, "run crowdload --help for the flags")
		return exitUsage
	}
	res, err := crowdload.Run(ctx, cfg, stderr)
	if res != nil && res.PoolID != "" {
		res.WriteSummary(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "crowdload: cannot run:", err)
		if res != nil && res.WorkDirKept {
			fmt.Fprintln(stderr, "crowdload: logs kept in", res.WorkDir)
		}
		return exitCannot
	}
	return res.ExitCode()
}

// runLanding is "crowdload landing": the landing benchmark.
func runLanding(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := crowdload.ParseLandingFlags(args, stderr)
	if err != nil {
		if errors.Is(err, crowdload.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "crowdload landing:", err)
		fmt.Fprintln(stderr, "run crowdload landing --help for the flags")
		return exitUsage
	}
	if cfg.CompareWith != "" {
		cmp, err := crowdload.RunLandingPairs(ctx, cfg, stderr)
		return compared(cmp, err, "crowdload landing", stdout, stderr)
	}
	res, err := crowdload.RunLanding(ctx, cfg, stderr)
	if res != nil && res.Warm.Requests > 0 {
		res.WriteSummary(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "crowdload landing:", err)
		if res != nil && res.WorkDir != "" {
			fmt.Fprintln(stderr, "crowdload landing: logs in", res.WorkDir)
		}
		return exitCannot
	}
	return 0
}

// runWebhooks is "crowdload webhooks": the webhook fan-out benchmark.
func runWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := crowdload.ParseWebhooksFlags(args, stderr)
	if err != nil {
		if errors.Is(err, crowdload.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "crowdload webhooks:", err)
		fmt.Fprintln(stderr, "run crowdload webhooks --help for the flags")
		return exitUsage
	}
	if cfg.CompareWith != "" {
		cmp, err := crowdload.RunWebhooksPairs(ctx, cfg, stderr)
		return compared(cmp, err, "crowdload webhooks", stdout, stderr)
	}
	res, err := crowdload.RunWebhooks(ctx, cfg, stderr)
	if res != nil && res.Live.Events > 0 {
		res.WriteSummary(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "crowdload webhooks:", err)
		if res != nil && res.WorkDir != "" {
			fmt.Fprintln(stderr, "crowdload webhooks: logs in", res.WorkDir)
		}
		return exitCannot
	}
	return 0
}

// compared prints a comparison's summary (when a run was made) and its
// error, and returns the exit code.
func compared[R any](c *crowdload.Comparison[R], err error, name string, stdout, stderr io.Writer) int {
	if len(c.A) > 0 {
		c.WriteSummary(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, name+":", err)
		return exitCannot
	}
	return 0
}

// runSubmits is "crowdload submits": the submit acceptance benchmark.
func runSubmits(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := crowdload.ParseSubmitsFlags(args, stderr)
	if err != nil {
		if errors.Is(err, crowdload.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "crowdload submits:", err)
		fmt.Fprintln(stderr, "run crowdload submits --help for the flags")
		return exitUsage
	}
	res, err := crowdload.RunSubmits(ctx, cfg, stderr)
	if res != nil && res.GRPC.Accepted > 0 {
		res.WriteSummary(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "crowdload submits:", err)
		if res != nil && res.WorkDir != "" {
			fmt.Fprintln(stderr, "crowdload submits: logs in", res.WorkDir)
		}
		return exitCannot
	}
	return 0
}
