package gatewaytest

import (
	"io"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics scrapes the gateway's /metrics and returns the text and the
// parsed families by name.
func (e *Env) Metrics() (string, map[string]*dto.MetricFamily) {
	e.T.Helper()
	resp, err := http.Get(e.HTTP + "/metrics")
	if err != nil {
		e.T.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.T.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		e.T.Fatalf("/metrics does not parse: %v", err)
	}
	return string(b), mfs
}

// MetricValue is the value of the series of family name whose labels
// include labels (name, value pairs): a counter's or gauge's value, a
// histogram's sample count. ok is false when no series matches.
func MetricValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	mf, found := mfs[name]
	if !found {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}
