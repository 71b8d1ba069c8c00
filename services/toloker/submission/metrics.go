package submission

import (
	"context"
	"errors"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// metrics are the service's Prometheus metrics.
type metrics struct {
	// enabled is false when no Registerer was given: the collectors still
	// count, but nothing reads them, so the outbox gauges are not polled.
	enabled bool

	received, replayed, delivered, dead, requeued, reclaimed, replicaShortfall, expired prometheus.Counter

	attempts *prometheus.CounterVec
	claims   *prometheus.CounterVec
	latency  prometheus.Histogram
	lag      prometheus.Gauge
	backlog  *prometheus.GaugeVec

	oldestUnpaid prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		enabled:          reg != nil,
		received:         counter("crowdgate_submissions_received_total", "Submits accepted into the outbox (replays not counted)."),
		replayed:         counter("crowdgate_submissions_replayed_total", "Submits answered from an earlier one with the same retry_id."),
		delivered:        counter("crowdgate_submissions_delivered_total", "Submissions Toloka accepted."),
		dead:             counter("crowdgate_submissions_dead_total", "Submissions moved to the dead letters (Toloka refused them)."),
		requeued:         counter("crowdgate_submissions_requeued_total", "Dead submissions an operator put back in the outbox."),
		reclaimed:        counter("crowdgate_submission_outbox_reclaimed_total", "Outbox entries reclaimed from a consumer that left them unacknowledged."),
		replicaShortfall: counter("crowdgate_submission_replica_shortfall_total", "Submits fewer Redis replicas acknowledged than asked for."),
		expired:          counter("crowdgate_submissions_expired_total", "Delivered submissions deleted with their idempotency keys once their retention passed."),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_submission_delivery_attempts_total",
			Help: "Delivery attempts to Toloka, by outcome: delivered, retry (transient failure) or dead.",
		}, []string{"outcome"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_submission_outbox_claims_total",
			Help: "Outbox entries taken by a worker, by result: ok (delivered by it), busy (another holds the lease) or stale (already done).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crowdgate_submission_delivery_latency_seconds",
			Help:    "Time from a submit's acceptance to Toloka accepting it.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crowdgate_submission_outbox_lag_seconds",
			Help: "Age of the oldest outbox entry waiting for delivery (ready in a stream, or a retry overdue).",
		}),
		oldestUnpaid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crowdgate_submission_oldest_unpaid_seconds",
			Help: "How long the oldest submission waiting to be paid (QUEUED, retries included) has waited since it was accepted or an operator retried it; 0 when none waits.",
		}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crowdgate_submission_outbox_entries",
			Help: "Outbox entries, by kind: ready (in the streams) or scheduled (waiting for a retry).",
		}, []string{"kind"}),
	}
	// Every outcome's series exists from the start, at zero, so rates and
	// ratios over them (dashboards, alerts) work before the first of each.
	for _, o := range []string{outDelivered, outRetry, outDead} {
		m.attempts.WithLabelValues(o)
	}
	for _, r := range []string{"ok", "busy", "stale"} {
		m.claims.WithLabelValues(r)
	}
	for _, k := range []string{"ready", "scheduled"} {
		m.backlog.WithLabelValues(k)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.received, m.replayed, m.delivered, m.dead, m.requeued, m.reclaimed,
			m.replicaShortfall, m.expired, m.attempts, m.claims, m.latency, m.lag, m.backlog, m.oldestUnpaid} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// DeadLetters counts the submissions DEAD now in the given pools of a
// tenant: one HGET of each shard's part of each pool's totals (kept exact
// by the Lua scripts), pipelined. The gateway's
// crowdgate_submission_dead_letters gauge sums it over every pool.
func (s *Service) DeadLetters(ctx context.Context, tenantID string, poolIDs []string) (int64, error) {
	shards, err := s.shardCount(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for batch := range slices.Chunk(poolIDs, max(countBatch/shards, 1)) {
		cmds := make([]*redis.StringCmd, 0, len(batch)*shards)
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, poolID := range batch {
				for shard := range shards {
					cmds = append(cmds, p.HGet(ctx, s.st.totalsKey(shard, tenantID, poolID), "dead"))
				}
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return 0, storage.Unavailable(err)
		}
		for _, c := range cmds {
			n, err := c.Int64()
			if err != nil && !errors.Is(err, redis.Nil) {
				return 0, storage.Unavailable(err)
			}
			total += n
		}
	}
	return total, nil
}

// countBatch bounds the commands of one pipeline of DeadLetters.
const countBatch = 1000
