package session

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestEveryResolveResultIsExportedFromTheStart: the README lists each
// result of crowdgate_session_toloka_resolves_total; a series that appears
// only with its first event breaks rates and alerts over it until then
// (banned was missing; found by the operations review).
func TestEveryResolveResultIsExportedFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	// Gathered before anything touches a label (WithLabelValues would
	// make the series).
	got, err := testutil.GatherAndCount(reg, "crowdgate_session_toloka_resolves_total")
	if err != nil {
		t.Fatal(err)
	}
	if got != 7 {
		t.Errorf("crowdgate_session_toloka_resolves_total has %d series at start, want the 7 results the README lists (active, not_active, not_found, closed, over_budget, banned, error)", got)
	}
}
