package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/extra/redisprometheus/v9"
	"github.com/redis/go-redis/v9"
)

// Instrument registers Crowdgate's Redis metrics with reg and hooks them
// into c:
//
//   - go-redis's connection pool statistics (redisprometheus):
//     crowdgate_redis_pool_hit_total, _miss_total, _timeout_total,
//     _conn_total_current, _conn_idle_current, _conn_stale_total;
//   - crowdgate_redis_command_duration_seconds{command}: every command's
//     round trip, by command name (a pipeline, autopipelined landings
//     and webhook attempts included, once as "pipeline"); never a key;
//   - crowdgate_redis_command_errors_total{command}: commands that failed.
//     A missing key (redis.Nil) is an answer, not an error, and so is
//     NOSCRIPT, which Script.Run answers by sending the script; and a new
//     connection's CLIENT SETINFO refused by an older server is ignored,
//     as go-redis ignores it.
//
// The gateway instruments its one client; call it once per client.
func Instrument(reg prometheus.Registerer, c redis.UniversalClient) error {
	h := &commandHook{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crowdgate_redis_command_duration_seconds",
			Help:    "Duration of Redis commands as the client sees it (round trip), by command name; a pipeline counts once as \"pipeline\".",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_redis_command_errors_total",
			Help: "Redis commands that failed (network, timeout or a server error; a missing key is no error), by command name.",
		}, []string{"command"}),
	}
	for _, col := range []prometheus.Collector{redisprometheus.NewCollector("crowdgate", "redis", c), h.duration, h.errors} {
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("redis metrics: %w", err)
		}
	}
	c.AddHook(h)
	return nil
}

// commandHook times commands and counts their errors.
type commandHook struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func (h *commandHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		name := commandName(cmd)
		h.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if isFailure(cmd, err) {
			h.errors.WithLabelValues(name).Inc()
		}
		return err
	}
}

func (h *commandHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.duration.WithLabelValues("pipeline").Observe(time.Since(start).Seconds())
		for _, cmd := range cmds {
			if isFailure(cmd, cmd.Err()) {
				h.errors.WithLabelValues(commandName(cmd)).Inc()
			}
		}
		return err
	}
}

// isFailure reports whether err, cmd's result, is a failure rather than an
// answer. A new connection's handshake sends CLIENT commands (SETINFO, ...)
// that older servers refuse and go-redis ignores: Crowdgate sends no CLIENT
// command of its own, so those are left out too.
func isFailure(cmd redis.Cmder, err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "NOSCRIPT") && cmd.Name() != "client"
}

// commandName is a command's label: its lower-case name (the code chooses
// commands, so the set is bounded), or "other" for anything that does not
// look like one.
func commandName(cmd redis.Cmder) string {
	name := cmd.Name()
	if name == "" || len(name) > 32 {
		return "other"
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return "other"
		}
	}
	return name
}
