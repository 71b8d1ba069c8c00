package session

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// metrics are the service's Prometheus metrics.
type metrics struct {
	started   prometheus.Counter
	ended     *prometheus.CounterVec
	resolves  *prometheus.CounterVec
	exchanges *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crowdgate_sessions_started_total",
			Help: "Sessions started (first landing of an assignment).",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_sessions_ended_total",
			Help: "Sessions ended, by reason.",
		}, []string{"reason"}),
		resolves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_session_toloka_resolves_total",
			Help: "First landings resolved through the catalog and Toloka (GET /assignments/{id}), by result: active, not_active, not_found, closed (archived pool or project), over_budget (too many unknown ids in the pool), banned (a ban of the Toloker covers the pool), error.",
		}, []string{"result"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_session_code_exchanges_total",
			Help: "One-time codes presented for a token, by result: ok, unknown (unknown, used or expired), ended.",
		}, []string{"result"}),
	}
	if reg != nil {
		m.started = register(reg, m.started)
		m.ended = register(reg, m.ended)
		m.resolves = register(reg, m.resolves)
		m.exchanges = register(reg, m.exchanges)
	}
	// Every result's series exists from the start, at zero (rates and
	// ratios over them work before the first of each).
	for _, r := range []string{"active", "not_active", "not_found", "closed", "over_budget", "banned", "error"} {
		m.resolves.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "unknown", "ended"} {
		m.exchanges.WithLabelValues(r)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second service on one registry shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func (m *metrics) resolved(result string)  { m.resolves.WithLabelValues(result).Inc() }
func (m *metrics) exchanged(result string) { m.exchanges.WithLabelValues(result).Inc() }

// LiveSessions counts the sessions live now (started, not ended, not
// expired) in the given pools of a tenant: one ZCOUNT of each pool's live
// index, pipelined. The gateway's crowdgate_sessions_live gauge sums it over
// every pool.
func (s *Service) LiveSessions(ctx context.Context, tenantID string, poolIDs []string) (int64, error) {
	now := "(" + strconv.FormatInt(s.now().UnixMilli(), 10)
	var total int64
	for batch := range slices.Chunk(poolIDs, countBatch) {
		cmds := make([]*redis.IntCmd, len(batch))
		if _, err := s.store.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, poolID := range batch {
				cmds[i] = p.ZCount(ctx, s.store.liveKey(tenantID, poolID), now, "+inf")
			}
			return nil
		}); err != nil {
			return 0, storage.Unavailable(err)
		}
		for _, c := range cmds {
			total += c.Val()
		}
	}
	return total, nil
}

// countBatch bounds the commands of one pipeline of LiveSessions.
const countBatch = 1000
