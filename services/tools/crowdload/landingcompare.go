package crowdload

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// LandingComparison is the landing benchmark run alternately with two
// gateway binaries, A (LandingConfig.Crowdgate) and B
// (LandingConfig.CompareWith), pair after pair: on a shared machine, whose
// load moves from minute to minute, alternating is what lets a change be
// told from the noise.
type LandingComparison struct {
	// A and B are the runs of each binary, in the order they ran.
	A, B []*LandingResult
}

// RunLandingPairs runs the landing benchmark cfg.Pairs times with each
// binary, A then B. It stops at the first run that fails, returning the
// runs made so far.
func RunLandingPairs(ctx context.Context, cfg LandingConfig, progress io.Writer) (*LandingComparison, error) {
	if progress == nil {
		progress = io.Discard
	}
	cmp := &LandingComparison{}
	for i := range cfg.Pairs {
		for _, side := range []struct {
			name, bin string
			runs      *[]*LandingResult
		}{{"A", cfg.Crowdgate, &cmp.A}, {"B", cfg.CompareWith, &cmp.B}} {
			c := cfg
			c.Crowdgate, c.CompareWith, c.Pairs = side.bin, "", 0
			fmt.Fprintf(progress, "crowdload: pair %d of %d, %s: %s\n", i+1, cfg.Pairs, side.name, binName(side.bin))
			res, err := RunLanding(ctx, c, progress)
			if err != nil {
				return cmp, fmt.Errorf("pair %d, %s: %w", i+1, side.name, err)
			}
			*side.runs = append(*side.runs, res)
			res.WriteSummary(progress)
		}
	}
	return cmp, nil
}

// binName names a gateway binary for the report ("" is the source tree's).
func binName(bin string) string {
	if bin == "" {
		return "built from the source tree"
	}
	return bin
}

// landingMetric is one figure of a landing run, compared across runs.
type landingMetric struct {
	name string
	// format renders a value of it.
	format string
	get    func(*LandingResult) float64
}

// perAnswer is the CPU a process spent per counted answer of a phase, in
// microseconds (0 when the phase counted none).
func perAnswer(p PhaseResult, process string) float64 {
	if p.Requests <= 0 {
		return 0
	}
	return float64(p.CPU[process]) / float64(time.Microsecond) / float64(p.Requests)
}

// landingMetrics are the figures a comparison reports: each phase beside
// its ceiling, and the CPU per answer that issue 21's targets are about.
var landingMetrics = []landingMetric{
	{"ceiling: bare handler answers/s", "%.0f", func(r *LandingResult) float64 { return r.Ceiling.Rate() }},
	{"bare handler CPU per answer (us)", "%.1f", func(r *LandingResult) float64 { return perAnswer(r.Ceiling, bareHandlerProcess) }},
	{"warm landings/s", "%.0f", func(r *LandingResult) float64 { return r.Warm.Rate() }},
	{"warm share of the ceiling (%)", "%.0f", func(r *LandingResult) float64 { return 100 * r.Warm.Rate() / max(r.Ceiling.Rate(), 1) }},
	{"warm p99 (ms)", "%.2f", func(r *LandingResult) float64 { return float64(r.Warm.P99) / float64(time.Millisecond) }},
	{"gateway CPU per warm landing (us)", "%.1f", func(r *LandingResult) float64 { return perAnswer(r.Warm, "gateway") }},
	{"Redis CPU per warm landing (us)", "%.1f", func(r *LandingResult) float64 { return perAnswer(r.Warm, "redis") }},
	{"cold landings/s", "%.0f", func(r *LandingResult) float64 { return r.Cold.Rate() }},
	{"gateway CPU per cold landing (ms)", "%.2f", func(r *LandingResult) float64 { return perAnswer(r.Cold, "gateway") / 1000 }},
	{"Redis CPU per cold landing (ms)", "%.2f", func(r *LandingResult) float64 { return perAnswer(r.Cold, "redis") / 1000 }},
	{"Redis commands per cold landing", "%.1f", func(r *LandingResult) float64 {
		return float64(r.ColdRedis.Calls()) / float64(max(r.Cold.Requests, 1))
	}},
}

// medianRange renders the median of vs and their range with format:
// "1,300 (718–1,442)"; "-" for none. An even count's median is the mean
// of the middle two.
func medianRange(format string, vs []float64) string {
	if len(vs) == 0 {
		return "-"
	}
	s := slices.Sorted(slices.Values(vs))
	mid := s[len(s)/2]
	if len(s)%2 == 0 {
		mid = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	f := func(v float64) string { return thousands(fmt.Sprintf(format, v)) }
	if len(s) == 1 {
		return f(mid)
	}
	return fmt.Sprintf("%s (%s–%s)", f(mid), f(s[0]), f(s[len(s)-1]))
}

// thousands groups the integer digits of a formatted number by three:
// "12345.6" is "12,345.6".
func thousands(num string) string {
	sign := ""
	if strings.HasPrefix(num, "-") {
		sign, num = "-", num[1:]
	}
	whole, frac, dot := strings.Cut(num, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if dot {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

// WriteSummary prints each figure's median and range over A's runs and
// over B's, side by side.
func (c *LandingComparison) WriteSummary(w io.Writer, a, b string) {
	fmt.Fprintf(w, "crowdload landing, %s of each binary, alternated (median, range):\n", plural(max(len(c.A), len(c.B)), "run"))
	fmt.Fprintf(w, "  A: %s\n  B: %s\n", binName(a), binName(b))
	fmt.Fprintf(w, "  %-36s %-26s %s\n", "", "A", "B")
	for _, m := range landingMetrics {
		col := func(runs []*LandingResult) string {
			vs := make([]float64, len(runs))
			for i, r := range runs {
				vs[i] = m.get(r)
			}
			return medianRange(m.format, vs)
		}
		fmt.Fprintf(w, "  %-36s %-26s %s\n", m.name, col(c.A), col(c.B))
	}
}
