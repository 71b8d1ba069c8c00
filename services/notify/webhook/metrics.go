package webhook

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of a delivery attempt, the outcome label of
// crowdgate_webhook_deliveries_total.
const (
	outDelivered = "delivered"
	outRetry     = "retry"
	outDead      = "dead"
	// outDropped: not attempted, its endpoint was disabled or deleted.
	outDropped = "dropped"
)

// metrics are the service's Prometheus metrics.
type metrics struct {
	attempts  *prometheus.CounterVec
	duration  prometheus.Histogram
	latency   prometheus.Histogram
	queued    prometheus.Counter
	disabled  prometheus.Counter
	reclaimed prometheus.Counter
	deferred  prometheus.Counter
	lag       prometheus.Gauge
	backlog   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_webhook_deliveries_total",
			Help: "Webhook delivery attempts, by outcome: delivered (2xx), retry, dead (the schedule ran out) or dropped (endpoint disabled or deleted).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crowdgate_webhook_delivery_duration_seconds",
			Help:    "Time of one webhook delivery attempt, from connecting to the answer read.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crowdgate_webhook_delivery_latency_seconds",
			Help:    "Time from an event to its delivery (2xx) to an endpoint.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400},
		}),
		queued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crowdgate_webhook_deliveries_queued_total",
			Help: "Webhook deliveries queued (an event for an endpoint, or an operator's redelivery).",
		}),
		disabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crowdgate_webhook_endpoints_disabled_total",
			Help: "Webhook endpoints disabled because they kept failing.",
		}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crowdgate_webhook_outbox_reclaimed_total",
			Help: "Webhook outbox entries reclaimed from a consumer that left them unacknowledged (a replica gone, or a delivery deferred).",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crowdgate_webhook_deliveries_deferred_total",
			Help: "Webhook deliveries left for later without an attempt: their endpoint is slow and has its share of the workers.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crowdgate_webhook_outbox_lag_seconds",
			Help: "Age of the oldest webhook delivery waiting (ready, or a retry overdue).",
		}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crowdgate_webhook_outbox_entries",
			Help: "Webhook outbox entries, by kind: ready (in the streams) or scheduled (waiting for a retry).",
		}, []string{"kind"}),
	}
	for _, o := range []string{outDelivered, outRetry, outDead, outDropped} {
		m.attempts.WithLabelValues(o)
	}
	for _, k := range []string{"ready", "scheduled"} {
		m.backlog.WithLabelValues(k)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.attempts, m.duration, m.latency, m.queued, m.disabled, m.reclaimed, m.deferred, m.lag, m.backlog} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
