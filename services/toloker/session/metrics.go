package session

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
			Help: "First landings resolved through the catalog and Toloka (GET /assignments/{id}), by result: active, not_active, not_found, closed (archived pool or project), over_budget (too many unknown ids in the pool), error.",
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
