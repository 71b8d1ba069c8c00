package crowdload

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestSoakJudgesFlatAndGrowingCurves(t *testing.T) {
	const mib = 1 << 20
	curve := func(f func(i int) uint64) []SoakSample {
		var out []SoakSample
		for i := range 120 {
			out = append(out, SoakSample{At: time.Duration(i) * time.Second, Accepted: int64(i * 100), Redis: f(i), Gateway: 40 * mib})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    func(i int) uint64
		flat bool
	}{
		// Growth until the settling time, then a plateau with noise.
		{"plateau", func(i int) uint64 { return uint64(min(i, 60))*mib + uint64(i%3)*mib }, true},
		// Growth in proportion to the data: what no retention looks like.
		{"linear", func(i int) uint64 { return 10*mib + uint64(i)*2*mib }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &SoakResult{FlatAfter: 60 * time.Second, Samples: curve(tc.f)}
			s.judge()
			if len(s.Verdicts) != 2 {
				t.Fatalf("%d verdicts, want redis and gateway", len(s.Verdicts))
			}
			if got := s.Verdicts[0].Flat; got != tc.flat {
				t.Errorf("redis judged flat=%v (%+v), want %v", got, s.Verdicts[0], tc.flat)
			}
			if !s.Verdicts[1].Flat {
				t.Errorf("a constant gateway RSS judged growing: %+v", s.Verdicts[1])
			}
			var b bytes.Buffer
			s.write(&b)
			want := "FLAT"
			if !tc.flat {
				want = "GROWING"
			}
			if !strings.Contains(b.String(), "redis used_memory") || !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "R") {
				t.Errorf("report lacks the redis verdict %s or the plot:\n%s", want, b.String())
			}
		})
	}
	short := &SoakResult{FlatAfter: time.Minute, Samples: curve(func(int) uint64 { return mib })[:70]}
	short.judge()
	if len(short.Verdicts) != 0 || short.Flat() {
		t.Errorf("10 samples after the settling time were judged: %+v", short.Verdicts)
	}
}

func TestSoakThatGrowsFailsTheRunEvenWithExactMoney(t *testing.T) {
	const mib = 1 << 20
	var samples []SoakSample
	for i := range 60 {
		samples = append(samples, SoakSample{At: time.Duration(i) * time.Second, Redis: uint64(10+2*i) * mib, Gateway: 40 * mib})
	}
	r := &Result{Drained: true, Soak: &SoakResult{FlatAfter: 10 * time.Second, Samples: samples}}
	r.Soak.judge()
	if got := r.ExitCode(); got != 1 {
		t.Fatalf("exit code %d, want 1 for memory that keeps growing", got)
	}
	var b bytes.Buffer
	r.WriteSummary(&b)
	if !strings.Contains(b.String(), "FAIL: memory is not flat after 10s") {
		t.Errorf("summary does not say memory is not flat:\n%s", b.String())
	}
}
