package toloka

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(c *Config) { c.Registerer = reg },
		reply(http.StatusServiceUnavailable, ``), okProject, tolokaError(http.StatusNotFound, CodeDoesNotExist, "no", ""))
	ctx := context.Background()
	if _, err := h.account.GetProject(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.account.GetPool(ctx, "8"); err == nil {
		t.Fatal("GetPool succeeded")
	}
	// A second client on the same registry reuses the collectors.
	if _, err := New(Config{Registerer: reg}); err != nil {
		t.Fatalf("second client: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if hist := m.GetHistogram(); hist != nil {
				v = float64(hist.GetSampleCount())
			}
			got = append(got, mf.GetName()+"{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	sort.Strings(got)
	want := []string{
		"crowdgate_toloka_request_seconds{op=pool.get} 1",
		"crowdgate_toloka_request_seconds{op=project.get} 2",
		"crowdgate_toloka_requests_total{code=200,op=project.get} 1",
		"crowdgate_toloka_requests_total{code=404,op=pool.get} 1",
		"crowdgate_toloka_requests_total{code=503,op=project.get} 1",
		"crowdgate_toloka_retries_total{op=project.get} 1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
