package toloka

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	retries  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// newMetrics registers the collectors with reg, reusing collectors another
// Client registered there before (tests and multi-client processes).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_toloka_requests_total",
			Help: "HTTP requests to Toloka (every attempt), by API operation and HTTP status (\"network\" when no response arrived).",
		}, []string{"op", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_toloka_errors_total",
			Help: "Failed requests to Toloka (every attempt), by API operation and Toloka's error code (VALIDATION_ERROR, DOES_NOT_EXIST, ...; OTHER for a code Toloka does not document, http_<status> for an answer without one, network when no answer arrived).",
		}, []string{"op", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_toloka_retries_total",
			Help: "Requests to Toloka that were repeated after a transient failure, by API operation.",
		}, []string{"op"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crowdgate_toloka_request_seconds",
			Help:    "Duration of one HTTP request to Toloka, by API operation.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"op"}),
	}
	var err error
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	if m.errors, err = register(reg, m.errors); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) observe(a Attempt) {
	code := "network"
	if a.StatusCode != 0 {
		code = strconv.Itoa(a.StatusCode)
	}
	m.requests.WithLabelValues(a.Op, code).Inc()
	if a.StatusCode < 200 || a.StatusCode > 299 {
		m.errors.WithLabelValues(a.Op, errorCode(a)).Inc()
	}
	m.latency.WithLabelValues(a.Op).Observe(a.Duration.Seconds())
	if a.Retry {
		m.retries.WithLabelValues(a.Op).Inc()
	}
}

// documentedCodes are the error codes Toloka documents; errorCode keeps the
// metric's label set to these and a few of its own.
var documentedCodes = map[string]bool{
	CodeValidationError: true, CodeAuthenticationError: true, CodeAccessDenied: true, CodeDoesNotExist: true,
	CodeConflictState: true, CodeInappropriateStatus: true, CodeEmptyPool: true, CodeOperationAlreadyExists: true,
	CodeUnarchivedPoolsConflict: true, CodeThereIsActiveAssignment: true, CodeTooManyRequests: true,
	CodeInternalError: true, CodeRemoteServiceUnavailable: true,
}

// errorCode is a failed attempt's label: Toloka's code when it is one
// Toloka documents, OTHER for any other code, http_<status> for an answer
// without a code, network without an answer.
func errorCode(a Attempt) string {
	switch {
	case a.Code != "" && documentedCodes[a.Code]:
		return a.Code
	case a.Code != "":
		return "OTHER"
	case a.StatusCode == 0:
		return "network"
	case a.StatusCode >= 100 && a.StatusCode <= 599:
		return "http_" + strconv.Itoa(a.StatusCode)
	}
	return "OTHER"
}
