package crowdload

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func msList(vs ...int) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond // 1..100 ms
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", msList(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100 is the 50th", hundred, 50, 50 * time.Millisecond},
		{"p95 of 1..100 is the 95th", hundred, 95, 95 * time.Millisecond},
		{"p99 of 1..100 is the 99th", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p0 is the min", hundred, 0, 1 * time.Millisecond},
		// Nearest rank: ceil(0.5*4) = 2nd of four, not an interpolation.
		{"p50 of four values", msList(10, 20, 30, 40), 50, 20 * time.Millisecond},
		{"p51 of four values moves up", msList(10, 20, 30, 40), 51, 30 * time.Millisecond},
		// ceil(0.99*10) = 10: with few samples p99 is the max.
		{"p99 of ten values", msList(1, 2, 3, 4, 5, 6, 7, 8, 9, 1000), 99, 1000 * time.Millisecond},
		{"p95 of twenty values", msList(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 500), 95, 19 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSortsACopy(t *testing.T) {
	in := msList(30, 10, 20, 40)
	got := Summarize(in)
	want := LatencySummary{Count: 4, P50: 20 * time.Millisecond, P95: 40 * time.Millisecond, P99: 40 * time.Millisecond, Max: 40 * time.Millisecond}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Summarize (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(msList(30, 10, 20, 40), in); diff != "" {
		t.Errorf("Summarize changed its input (-want +got):\n%s", diff)
	}
	if got := Summarize(nil); got != (LatencySummary{}) {
		t.Errorf("Summarize(nil) = %+v", got)
	}
}

func TestLatenciesConcurrent(t *testing.T) {
	var l latencies
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			for j := range 100 {
				l.add(time.Duration(i*100+j) * time.Microsecond)
			}
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	s := l.summary()
	if s.Count != 800 || s.Max != 799*time.Microsecond {
		t.Errorf("summary %+v, want 800 values up to 799µs", s)
	}
}

func TestRate(t *testing.T) {
	if got := Rate(150, 3*time.Second); got != 50 {
		t.Errorf("Rate(150, 3s) = %v, want 50", got)
	}
	if got := Rate(5, 0); got != 0 {
		t.Errorf("Rate(5, 0) = %v, want 0", got)
	}
}

func TestMemorySeries(t *testing.T) {
	var m MemorySeries
	for _, v := range []uint64{100, 300, 250, 120} {
		m.Add(v)
	}
	if diff := cmp.Diff(MemorySeries{Samples: 4, Start: 100, Peak: 300, End: 120}, m); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tcrowdgate\nVmPeak:\t  900000 kB\nVmRSS:\t   25432 kB\nThreads:\t9\n"
	got, err := parseVmRSS(strings.NewReader(status))
	if err != nil || got != 25432*1024 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 25432*1024)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseVmRSS(strings.NewReader(bad)); err == nil {
			t.Errorf("parseVmRSS(%q) accepted", bad)
		}
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP process_resident_memory_bytes Resident memory size in bytes.\n" +
		"# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_total 1\n" +
		"process_resident_memory_bytes 3.3554432e+07\n"
	got, err := parseMetric(strings.NewReader(text), "process_resident_memory_bytes")
	if err != nil || got != 33554432 {
		t.Errorf("parseMetric = %v, %v; want 33554432", got, err)
	}
	if _, err := parseMetric(strings.NewReader(text), "go_goroutines"); err == nil {
		t.Error("parseMetric found a metric that is not there")
	}
}

func TestParseUsedMemory(t *testing.T) {
	info := "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nused_memory_rss:2000000\r\n"
	got, err := parseUsedMemory(info)
	if err != nil || got != 1048576 {
		t.Errorf("parseUsedMemory = %d, %v; want 1048576", got, err)
	}
	if _, err := parseUsedMemory("# Memory\r\nused_memory_rss:1\r\n"); err == nil {
		t.Error("parseUsedMemory accepted INFO without used_memory")
	}
}

func TestRedisMemoryPerSession(t *testing.T) {
	m := RedisMemory{Known: true, Before: 1_000_000, After: 1_000_000 + 1500*1000, LiveSessions: 1000}
	if got := m.PerSession(); got != 1500 {
		t.Errorf("PerSession = %v, want 1500", got)
	}
	if got := (RedisMemory{Known: false, Before: 1, After: 2, LiveSessions: 1}).PerSession(); got != 0 {
		t.Errorf("unknown memory gives %v per session", got)
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[float64]string{512: "512 B", 2048: "2.0 KiB", 1536 * 1024: "1.5 MiB", 3 << 30: "3.00 GiB", -2048: "-2.0 KiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%v) = %q, want %q", in, got, want)
		}
	}
}
