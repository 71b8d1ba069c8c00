package crowdload

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Comparison is a benchmark run alternately with two gateway binaries, A
// and B, pair after pair: on a shared machine, whose load moves from minute
// to minute, alternating is what lets a change be told from the noise.
// Every run is the whole benchmark, each phase beside its ceiling.
type Comparison[R any] struct {
	// Title names the benchmark ("crowdload landing").
	Title string
	// BinA and BinB are the binaries ("" is the one built from the source
	// tree).
	BinA, BinB string
	// A and B are the runs of each binary, in the order they ran.
	A, B []R
	// Metrics are the figures the summary compares.
	Metrics []Metric[R]
}

// Metric is one figure of a run, compared across runs.
type Metric[R any] struct {
	// Name names it, with its unit.
	Name string
	// Format renders a value of it ("%.0f").
	Format string
	// Get reads it from a run.
	Get func(R) float64
}

// runPairs runs the benchmark pairs times with each binary, a then b, by
// calling run with the binary. It stops at the first run that fails,
// returning the runs made so far; done reports each run as it ends.
func runPairs[R any](ctx context.Context, c *Comparison[R], pairs int, progress io.Writer,
	run func(ctx context.Context, bin string) (R, error), done func(R)) error {
	for i := range pairs {
		for _, side := range []struct {
			name, bin string
			runs      *[]R
		}{{"A", c.BinA, &c.A}, {"B", c.BinB, &c.B}} {
			fmt.Fprintf(progress, "crowdload: pair %d of %d, %s: %s\n", i+1, pairs, side.name, binName(side.bin))
			res, err := run(ctx, side.bin)
			if err != nil {
				return fmt.Errorf("pair %d, %s: %w", i+1, side.name, err)
			}
			*side.runs = append(*side.runs, res)
			done(res)
		}
	}
	return nil
}

// binName names a gateway binary for the report ("" is the source tree's).
func binName(bin string) string {
	if bin == "" {
		return "built from the source tree"
	}
	return bin
}

// WriteSummary prints each figure's median and range over A's runs and
// over B's, side by side.
func (c *Comparison[R]) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "%s, %s of each binary, alternated (median, range):\n", c.Title, plural(max(len(c.A), len(c.B)), "run"))
	fmt.Fprintf(w, "  A: %s\n  B: %s\n", binName(c.BinA), binName(c.BinB))
	fmt.Fprintf(w, "  %-36s %-26s %s\n", "", "A", "B")
	for _, m := range c.Metrics {
		col := func(runs []R) string {
			vs := make([]float64, len(runs))
			for i, r := range runs {
				vs[i] = m.Get(r)
			}
			return medianRange(m.Format, vs)
		}
		fmt.Fprintf(w, "  %-36s %-26s %s\n", m.Name, col(c.A), col(c.B))
	}
}

// compareFlags adds --compare-bin and --pairs to fs.
func compareFlags(fs *flag.FlagSet, bin *string, pairs *int) {
	fs.StringVar(bin, "compare-bin", "", "a second crowdgate binary: run the benchmark --pairs times with each, alternately, and report each figure's median and range for both (--crowdgate-bin is the first)")
	fs.IntVar(pairs, "pairs", 3, "runs of each binary with --compare-bin")
}

// checkPairs checks --pairs when --compare-bin is set.
func checkPairs(bin string, pairs int) error {
	if bin != "" && (pairs < 1 || pairs > 50) {
		return fmt.Errorf("--pairs must be within 1..50, got %d", pairs)
	}
	return nil
}

// perAnswer is the CPU a process spent per counted answer, in
// microseconds (0 when there were none).
func perAnswer(cpu map[string]time.Duration, process string, answers int64) float64 {
	if answers <= 0 {
		return 0
	}
	return float64(cpu[process]) / float64(time.Microsecond) / float64(answers)
}

// RunLandingPairs runs the landing benchmark cfg.Pairs times with each of
// cfg.Crowdgate and cfg.CompareWith, alternately.
func RunLandingPairs(ctx context.Context, cfg LandingConfig, progress io.Writer) (*Comparison[*LandingResult], error) {
	if progress == nil {
		progress = io.Discard
	}
	c := &Comparison[*LandingResult]{Title: "crowdload landing", BinA: cfg.Crowdgate, BinB: cfg.CompareWith, Metrics: landingMetrics}
	err := runPairs(ctx, c, cfg.Pairs, progress, func(ctx context.Context, bin string) (*LandingResult, error) {
		one := cfg
		one.Crowdgate, one.CompareWith, one.Pairs = bin, "", 0
		return RunLanding(ctx, one, progress)
	}, func(r *LandingResult) { r.WriteSummary(progress) })
	return c, err
}

// landingMetrics are the figures a landing comparison reports: each phase
// beside its ceiling, and the CPU per answer issue 21's targets are about.
var landingMetrics = []Metric[*LandingResult]{
	{"ceiling: bare handler answers/s", "%.0f", func(r *LandingResult) float64 { return r.Ceiling.Rate() }},
	{"bare handler CPU per answer (us)", "%.1f", func(r *LandingResult) float64 {
		return perAnswer(r.Ceiling.CPU, bareHandlerProcess, r.Ceiling.Requests)
	}},
	{"warm landings/s", "%.0f", func(r *LandingResult) float64 { return r.Warm.Rate() }},
	{"warm share of the ceiling (%)", "%.0f", func(r *LandingResult) float64 { return 100 * r.Warm.Rate() / max(r.Ceiling.Rate(), 1) }},
	{"warm p99 (ms)", "%.2f", func(r *LandingResult) float64 { return float64(r.Warm.P99) / float64(time.Millisecond) }},
	{"gateway CPU per warm landing (us)", "%.1f", func(r *LandingResult) float64 { return perAnswer(r.Warm.CPU, "gateway", r.Warm.Requests) }},
	{"Redis CPU per warm landing (us)", "%.1f", func(r *LandingResult) float64 { return perAnswer(r.Warm.CPU, "redis", r.Warm.Requests) }},
	{"cold landings/s", "%.0f", func(r *LandingResult) float64 { return r.Cold.Rate() }},
	{"gateway CPU per cold landing (ms)", "%.2f", func(r *LandingResult) float64 {
		return perAnswer(r.Cold.CPU, "gateway", r.Cold.Requests) / 1000
	}},
	{"Redis CPU per cold landing (ms)", "%.2f", func(r *LandingResult) float64 {
		return perAnswer(r.Cold.CPU, "redis", r.Cold.Requests) / 1000
	}},
	{"Redis commands per cold landing", "%.1f", func(r *LandingResult) float64 {
		return float64(r.ColdRedis.Calls()) / float64(max(r.Cold.Requests, 1))
	}},
}

// RunWebhooksPairs runs the webhook benchmark cfg.Pairs times with each of
// cfg.Crowdgate and cfg.CompareWith, alternately.
func RunWebhooksPairs(ctx context.Context, cfg WebhooksConfig, progress io.Writer) (*Comparison[*WebhooksResult], error) {
	if progress == nil {
		progress = io.Discard
	}
	c := &Comparison[*WebhooksResult]{Title: "crowdload webhooks", BinA: cfg.Crowdgate, BinB: cfg.CompareWith, Metrics: webhookMetrics}
	err := runPairs(ctx, c, cfg.Pairs, progress, func(ctx context.Context, bin string) (*WebhooksResult, error) {
		one := cfg
		one.Crowdgate, one.CompareWith, one.Pairs = bin, "", 0
		return RunWebhooks(ctx, one, progress)
	}, func(r *WebhooksResult) { r.WriteSummary(progress) })
	return c, err
}

// webhookMetrics are the figures a webhook comparison reports: the
// backlog's rate beside the endpoint's ceiling, and the CPU per event.
var webhookMetrics = []Metric[*WebhooksResult]{
	{"ceiling: wrk against the receiver/s", "%.0f", func(r *WebhooksResult) float64 { return r.Ceiling.Rate() }},
	{"backlog events/s", "%.0f", func(r *WebhooksResult) float64 { return r.Backlog.Rate() }},
	{"backlog share of the ceiling (%)", "%.1f", func(r *WebhooksResult) float64 {
		return 100 * r.Backlog.Rate() / max(r.Ceiling.Rate(), 1)
	}},
	{"bare Go sender's share of the ceiling (%)", "%.1f", func(r *WebhooksResult) float64 {
		return 100 * r.Bare.Rate() / max(r.Ceiling.Rate(), 1)
	}},
	{"backlog p99 (ms)", "%.0f", func(r *WebhooksResult) float64 { return float64(r.Backlog.P99) / float64(time.Millisecond) }},
	{"live p99 (ms)", "%.0f", func(r *WebhooksResult) float64 { return float64(r.Live.P99) / float64(time.Millisecond) }},
	{"gateway CPU per backlog event (us)", "%.1f", func(r *WebhooksResult) float64 {
		return perAnswer(r.Backlog.CPU, "gateway", r.Backlog.Events)
	}},
	{"Redis CPU per backlog event (us)", "%.1f", func(r *WebhooksResult) float64 {
		return perAnswer(r.Backlog.CPU, "redis", r.Backlog.Events)
	}},
	{"receiver CPU per backlog event (us)", "%.1f", func(r *WebhooksResult) float64 {
		return perAnswer(r.Backlog.CPU, "receiver", r.Backlog.Events)
	}},
	{"Redis commands per backlog event", "%.1f", func(r *WebhooksResult) float64 {
		return float64(r.BacklogRedis.Calls()) / float64(max(r.Backlog.Events, 1))
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
