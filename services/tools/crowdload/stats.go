package crowdload

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p percent of
// the values are at or below it. It returns 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// LatencySummary describes a set of latencies.
type LatencySummary struct {
	// Count is how many were recorded.
	Count int
	// P50, P95 and P99 are nearest-rank percentiles.
	P50, P95, P99 time.Duration
	// Max is the largest.
	Max time.Duration
}

// Summarize sorts a copy of ds and summarizes it.
func Summarize(ds []time.Duration) LatencySummary {
	s := slices.Clone(ds)
	slices.Sort(s)
	out := LatencySummary{Count: len(s)}
	if len(s) == 0 {
		return out
	}
	out.P50, out.P95, out.P99 = Percentile(s, 50), Percentile(s, 95), Percentile(s, 99)
	out.Max = s[len(s)-1]
	return out
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) summary() LatencySummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Summarize(l.d)
}

// Rate returns n per second over d (0 when d is not positive).
func Rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// MemorySeries tracks a sampled quantity: the first, highest and last
// samples.
type MemorySeries struct {
	// Samples counts the samples taken.
	Samples int
	// Start, Peak and End are in bytes.
	Start, Peak, End uint64
}

// Add records one sample.
func (m *MemorySeries) Add(v uint64) {
	if m.Samples == 0 {
		m.Start = v
	}
	m.Samples++
	m.Peak = max(m.Peak, v)
	m.End = v
}
