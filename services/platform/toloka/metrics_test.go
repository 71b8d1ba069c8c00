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
		"crowdgate_toloka_errors_total{code=DOES_NOT_EXIST,op=pool.get} 1",
		"crowdgate_toloka_errors_total{code=http_503,op=project.get} 1",
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

// TestErrorMetricsByTolokaCode: every failed attempt is counted by
// operation and Toloka's error code; a code Toloka has not documented counts
// as OTHER, an answer without a code by its status, no answer as network,
// so the label set stays bounded whatever a server sends.
func TestErrorMetricsByTolokaCode(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(c *Config) { c.Registerer, c.Retry.MaxAttempts = reg, 1 },
		tolokaError(http.StatusNotFound, CodeDoesNotExist, "no", ""),
		tolokaError(http.StatusBadRequest, "SOMETHING_NEW_"+strings.Repeat("X", 80), "new", ""),
		reply(http.StatusBadGateway, `<html>bad gateway</html>`),
		// net/http resends an idempotent request once on a connection
		// closed without an answer: hang up on both.
		hangUp(), hangUp(),
		okProject,
	)
	ctx := context.Background()
	for i := range 4 {
		if _, err := h.account.GetProject(ctx, "7"); err == nil {
			t.Fatalf("GetProject %d succeeded", i+1)
		}
	}
	if _, err := h.account.GetProject(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range families {
		if mf.GetName() != "crowdgate_toloka_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got = append(got, "{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(m.GetCounter().GetValue(), 'g', -1, 64))
		}
	}
	sort.Strings(got)
	want := []string{
		"{code=DOES_NOT_EXIST,op=project.get} 1",
		"{code=OTHER,op=project.get} 1",
		"{code=http_502,op=project.get} 1",
		"{code=network,op=project.get} 1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("crowdgate_toloka_errors_total (-want +got):\n%s", diff)
	}
}
