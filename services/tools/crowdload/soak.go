package crowdload

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// A soak run (--memory-flat-after, or --preset=soak) is a long flow with
// the gateway's retentions set to minutes: memory must stop growing once
// the oldest data starts expiring. The run samples Redis's used_memory and
// the gateway's RSS every second, prints the curves and judges them flat.

// SoakSample is one sample of a run's memory.
type SoakSample struct {
	// At is the time since the load began.
	At time.Duration
	// Accepted counts the submits accepted by then.
	Accepted int64
	// Redis is used_memory; Gateway the first replica's RSS (0 when not
	// read).
	Redis, Gateway uint64
}

// SoakVerdict judges one curve after the settling time: the samples after
// it are split into halves, and the curve is flat when the second half's
// peak is at most the first half's peak plus flatSlack of it plus
// flatFloor (a curve that still grows in proportion to the data fails).
type SoakVerdict struct {
	// Name is what was measured.
	Name string
	// FirstPeak and SecondPeak are the halves' peaks in bytes.
	FirstPeak, SecondPeak uint64
	// Flat reports the judgement; Samples how many samples it used.
	Flat    bool
	Samples int
}

// Flatness bounds: 10% of the first half's peak plus 8 MiB (allocator and
// GC noise of a small process).
const (
	flatSlack = 0.10
	flatFloor = 8 << 20
)

// SoakResult is what a soak run found.
type SoakResult struct {
	// FlatAfter is the settling time (--memory-flat-after).
	FlatAfter time.Duration
	// Samples are the memory samples of the load phase.
	Samples []SoakSample
	// Verdicts judge Redis and the gateway; empty when the load did not
	// last long enough after FlatAfter (then the run is incomplete).
	Verdicts []SoakVerdict
}

// Flat reports whether every verdict is flat (false without verdicts).
func (s *SoakResult) Flat() bool {
	if len(s.Verdicts) == 0 {
		return false
	}
	for _, v := range s.Verdicts {
		if !v.Flat {
			return false
		}
	}
	return true
}

// judge fills s.Verdicts from s.Samples.
func (s *SoakResult) judge() {
	var after []SoakSample
	for _, x := range s.Samples {
		if x.At >= s.FlatAfter {
			after = append(after, x)
		}
	}
	// At least ten samples a half: a judgement over a few seconds says
	// nothing.
	if len(after) < 20 {
		return
	}
	half := len(after) / 2
	for _, c := range []struct {
		name string
		v    func(SoakSample) uint64
	}{
		{"redis used_memory", func(x SoakSample) uint64 { return x.Redis }},
		{"gateway RSS", func(x SoakSample) uint64 { return x.Gateway }},
	} {
		v := SoakVerdict{Name: c.name, Samples: len(after)}
		for i, x := range after {
			if i < half {
				v.FirstPeak = max(v.FirstPeak, c.v(x))
			} else {
				v.SecondPeak = max(v.SecondPeak, c.v(x))
			}
		}
		if v.FirstPeak == 0 {
			continue // not measured
		}
		v.Flat = float64(v.SecondPeak) <= float64(v.FirstPeak)*(1+flatSlack)+flatFloor
		s.Verdicts = append(s.Verdicts, v)
	}
}

// write prints the curves and the verdicts.
func (s *SoakResult) write(w io.Writer) {
	fmt.Fprintf(w, "\nsoak: memory over the load (R = redis used_memory, G = gateway RSS, | = --memory-flat-after %s):\n", s.FlatAfter)
	plotMemory(w, s.Samples, s.FlatAfter, 72, 14)
	if len(s.Verdicts) == 0 {
		fmt.Fprintf(w, "  not judged: fewer than 20 samples after %s\n", s.FlatAfter)
		return
	}
	for _, v := range s.Verdicts {
		verdict := "FLAT"
		if !v.Flat {
			verdict = "GROWING"
		}
		fmt.Fprintf(w, "  %-17s after %s: first half peak %s, second half peak %s (%d samples): %s\n",
			v.Name, s.FlatAfter, formatBytes(float64(v.FirstPeak)), formatBytes(float64(v.SecondPeak)), v.Samples, verdict)
	}
	if n := len(s.Samples); n > 0 {
		last := s.Samples[n-1]
		fmt.Fprintf(w, "  %d submits accepted in %s (%.0f/s)\n", last.Accepted, last.At.Round(time.Second), Rate(int(last.Accepted), last.At))
	}
}

// plotMemory draws the samples' Redis and gateway memory as a width ×
// height character plot in MiB, with the time axis below and a column of
// '|' at mark.
func plotMemory(w io.Writer, samples []SoakSample, mark time.Duration, width, height int) {
	if len(samples) == 0 {
		fmt.Fprintln(w, "  (no samples)")
		return
	}
	end := samples[len(samples)-1].At
	if end <= 0 {
		end = time.Second
	}
	var top float64
	for _, x := range samples {
		top = max(top, float64(x.Redis), float64(x.Gateway))
	}
	top = niceCeil(top / (1 << 20))
	grid := make([][]byte, height)
	for i := range grid {
		grid[i] = []byte(strings.Repeat(" ", width))
	}
	col := func(at time.Duration) int {
		return min(width-1, int(float64(at)/float64(end)*float64(width-1)+0.5))
	}
	row := func(v uint64) int {
		return height - 1 - min(height-1, int(float64(v)/(1<<20)/top*float64(height-1)+0.5))
	}
	if mark > 0 && mark <= end {
		c := col(mark)
		for i := range grid {
			grid[i][c] = '|'
		}
	}
	for _, x := range samples {
		c := col(x.At)
		if x.Gateway > 0 {
			grid[row(x.Gateway)][c] = 'G'
		}
		if x.Redis > 0 {
			grid[row(x.Redis)][c] = 'R'
		}
	}
	for i, line := range grid {
		label := ""
		switch i {
		case 0:
			label = fmt.Sprintf("%.0f MiB", top)
		case height / 2:
			label = fmt.Sprintf("%.0f MiB", top/2)
		case height - 1:
			label = "0 MiB"
		}
		fmt.Fprintf(w, "  %9s |%s\n", label, strings.TrimRight(string(line), " "))
	}
	fmt.Fprintf(w, "  %9s +%s\n", "", strings.Repeat("-", width))
	fmt.Fprintf(w, "  %9s  0%s%s\n", "", strings.Repeat(" ", max(1, width-1-len(end.Round(time.Second).String()))), end.Round(time.Second))
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
