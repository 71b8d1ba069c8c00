package crowdload

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// maxListed bounds the problems and errors listed per kind.
const maxListed = 10

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(100 * time.Millisecond).String()
}

// WriteSummary writes the end-of-run tables: rates and latencies, chaos,
// memory, reconciliation and the verdict.
func (r *Result) WriteSummary(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\ncrowdload %s run %s: %d Tolokers x %d submits, concurrency %d, %d replica(s), %s\n",
		c.Mode, r.RunID, c.Tolokers, c.Submits, c.Concurrency, max(c.Replicas, len(r.Gateways)), strings.ToUpper(string(c.API)))
	if r.PoolID != "" {
		fmt.Fprintf(w, "pool %s (Toloka pool %s)\n", r.PoolID, r.TolokaPoolID)
	}

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tcount\tper second\tp50\tp95\tp99\tmax\t")
	row := func(name string, s LatencySummary, rate float64) {
		r := "-"
		if rate > 0 {
			r = fmt.Sprintf("%.1f", rate)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, s.Count, r, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max))
	}
	row("landing (GET /start)", r.Landing, Rate(r.Landed, r.LandingPhase))
	row("code exchange", r.Exchange, 0)
	row("submit (accepted)", r.Submit, Rate(r.Submit.Count, r.SubmitPhase))
	tw.Flush()
	fmt.Fprintf(w, "landing phase %s, submit phase %s; landings/s counts Tolokers who reached the platform with a session\n",
		r.LandingPhase.Round(time.Millisecond), r.SubmitPhase.Round(time.Millisecond))
	fmt.Fprintf(w, "Tolokers: %d landed, %d finished, %d failed; submit attempts %d, resends of a retry_id %d\n",
		r.Landed, r.TolokersDone, r.TolokersFailed, r.Attempts, r.Retries)
	if len(r.FailedAttempts) > 0 {
		keys := slices.Sorted(mapKeys(r.FailedAttempts))
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.FailedAttempts[k]))
		}
		fmt.Fprintf(w, "failed calls (retried unless the Toloker failed): %s\n", strings.Join(parts, "; "))
	}

	if c.Mode == ModeChaos {
		fmt.Fprintln(w)
		f := r.Faults
		fmt.Fprintf(w, "chaos: Toloka faults %.1f%% of API requests (5xx %.1f%%, timeout %.1f%% hanging %s, lost response %.1f%%, drop %.1f%%, 429 %.1f%%), %d bursts of %d x 429\n",
			100*f.Rate(), 100*(f.Rate()-f.TimeoutRate-f.LostResponseRate-f.DropRate-f.ThrottleRate), 100*f.TimeoutRate,
			time.Duration(f.HangMS)*time.Millisecond, 100*f.LostResponseRate, 100*f.DropRate, 100*f.ThrottleRate, r.Bursts, c.ThrottleBurst)
		kills, restarts := 0, 0
		for _, e := range r.Events {
			if e.Err == "" {
				if e.Kind == "kill" {
					kills++
				} else {
					restarts++
				}
			}
		}
		fmt.Fprintf(w, "chaos: %d/%d replica kills, %d/%d Redis restarts\n", kills, r.KillsPlanned, restarts, r.RedisRestartsPlanned)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, e := range r.Events {
			status := "back after " + e.Down.Round(time.Millisecond).String()
			if e.Err != "" {
				status = "FAILED: " + e.Err
			}
			fmt.Fprintf(tw, "  %s\t%s\tat %s\t(%d submits accepted)\t%s\n", e.Kind, e.Target, e.At.Round(time.Millisecond), e.Accepted, status)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "memory:")
	switch {
	case !r.Redis.Known:
		fmt.Fprintln(w, "  redis: INFO memory not available")
	case c.Mode == ModeThroughput && r.Redis.LiveSessions > 0:
		fmt.Fprintf(w, "  redis: %s per live session (used_memory %s before landing, %s with %d sessions live; target <= 2 KiB)\n",
			formatBytes(r.Redis.PerSession()), formatBytes(float64(r.Redis.Before)), formatBytes(float64(r.Redis.After)), r.Redis.LiveSessions)
	default:
		fmt.Fprintln(w, "  redis: per-session memory is measured in throughput mode (chaos interleaves sessions)")
	}
	if r.Redis.Series.Samples > 0 {
		s := r.Redis.Series
		fmt.Fprintf(w, "  redis used_memory: start %s, peak %s, end %s (%d samples)\n", formatBytes(float64(s.Start)), formatBytes(float64(s.Peak)), formatBytes(float64(s.End)), s.Samples)
	}
	if len(r.Gateways) == 0 {
		fmt.Fprintln(w, "  gateway RSS: not available")
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.Gateways) > 0 {
		fmt.Fprintln(tw, "  gateway RSS\tstart\tpeak\tend\tsamples\trestarts\tsource\t")
	}
	for _, g := range r.Gateways {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%s\t\n", g.Name, formatBytes(float64(g.RSS.Start)), formatBytes(float64(g.RSS.Peak)),
			formatBytes(float64(g.RSS.End)), g.RSS.Samples, g.Restarts, g.Source)
	}
	tw.Flush()

	if r.Soak != nil {
		r.Soak.write(w)
	}

	rec := r.Reconciliation
	fmt.Fprintln(w)
	fmt.Fprintln(w, "reconciliation (the emulator's ledger against what the platform sent):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  submits sent\t%d\t(accepted %d, refused %d, unconfirmed %d of which paid %d; never sent %d)\n",
		rec.Sent, rec.Accepted, rec.Refused, rec.Unconfirmed, rec.UnconfirmedPaid, r.SubmitsNotSent)
	fmt.Fprintf(tw, "  ledger entries\t%d\t(resends absorbed by Toloka's retry_id idempotency: %d)\n", rec.Paid, rec.DuplicatesRefused)
	for _, k := range problemOrder {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, rec.Count(k))
	}
	fmt.Fprintf(tw, "  expected total\t%s\t\n", rec.ExpectedTotal)
	fmt.Fprintf(tw, "  paid total\t%s\t(emulator reports %s)\n", rec.PaidTotal, rec.LedgerTotal)
	tw.Flush()
	if t := r.Totals; t != nil {
		fmt.Fprintf(w, "  GetPoolTotals: received %d, delivered %d (%s), queued %d (%s), dead %d\n",
			t.Received, t.Delivered, t.RewardDelivered, t.Queued, t.RewardQueued, t.Dead)
	}
	if g := rec.Registry; g != nil {
		fmt.Fprintf(w, "  Toloker registry: %d Tolokers, %s delivered (each one's against the ledger: %d problems)\n",
			g.Tolokers, g.Total, rec.Count(ProblemRegistry))
	}
	fmt.Fprintf(w, "  drain: %s (drained: %v)\n", r.DrainWait.Round(time.Millisecond), r.Drained)
	if e := r.EventCheck; e != nil {
		writeEventCheck(w, e, r.Totals)
	}
	for _, k := range problemOrder {
		n := 0
		for _, p := range rec.Problems {
			if p.Kind != k {
				continue
			}
			if n++; n > maxListed {
				fmt.Fprintf(w, "  ... and %d more %s\n", rec.Count(k)-maxListed, k)
				break
			}
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	if len(r.ReceiverErrors) > 0 {
		fmt.Fprintln(w, "\nwebhook deliveries the receiver refused (examples):")
		for i, e := range r.ReceiverErrors {
			if i == maxListed {
				break
			}
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "\nexample errors:")
		for i, e := range r.Errors {
			if i == maxListed {
				fmt.Fprintf(w, "  ... and %d more kinds\n", len(r.Errors)-maxListed)
				break
			}
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	for _, s := range r.Incomplete {
		fmt.Fprintf(w, "incomplete: %s\n", s)
	}
	if r.WorkDirKept {
		fmt.Fprintf(w, "logs kept in %s\n", r.WorkDir)
	}
	fmt.Fprintln(w)
	switch r.ExitCode() {
	case 0:
		fmt.Fprintf(w, "PASS: %d submits paid exactly once, %s in total", rec.Paid, rec.PaidTotal)
		if e := r.EventCheck; e != nil {
			fmt.Fprintf(w, "; %d events reconciled, each received by the webhook", e.Events)
		}
		fmt.Fprintln(w)
	case 1:
		events := rec.Count(ProblemEventLog) + rec.Count(ProblemWebhook)
		switch {
		case len(rec.Problems) == 0 && r.Soak != nil && !r.Soak.Flat():
			fmt.Fprintf(w, "FAIL: memory is not flat after %s (the money reconciles: %d submits paid exactly once, %s in total)\n",
				r.Soak.FlatAfter, rec.Paid, rec.PaidTotal)
		case events == 0:
			fmt.Fprintf(w, "FAIL: money is wrong (%d problems)\n", len(rec.Problems))
		case events == len(rec.Problems):
			fmt.Fprintf(w, "FAIL: events are wrong (%d problems)\n", events)
		default:
			fmt.Fprintf(w, "FAIL: money is wrong (%d problems) and events are wrong (%d problems)\n", len(rec.Problems)-events, events)
		}
	default:
		fmt.Fprintln(w, "INCOMPLETE: what was confirmed reconciles, but the run did not finish")
	}
}

// writeEventCheck writes the event log's and the receiver's reconciliation.
func writeEventCheck(w io.Writer, e *EventCheck, totals *PoolTotals) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "events (the tenant's log, ListEvents, against the run and the webhook receiver):")
	types := slices.Sorted(mapKeys(e.ByType))
	parts := make([]string, 0, len(types))
	for _, t := range types {
		parts = append(parts, fmt.Sprintf("%s %d", t, e.ByType[t]))
	}
	fmt.Fprintf(w, "  log: %d events (%s)\n", e.Events, strings.Join(parts, ", "))
	pool := ""
	if totals != nil {
		pool = fmt.Sprintf(" (pool totals: %d delivered, %d dead)", totals.Delivered, totals.Dead)
	}
	fmt.Fprintf(w, "  submissions: %d submission.delivered + %d submission.dead events%s\n", e.Delivered, e.Dead, pool)
	reasons := slices.Sorted(mapKeys(e.EndReasons))
	parts = parts[:0]
	for _, k := range reasons {
		parts = append(parts, fmt.Sprintf("%s %d", k, e.EndReasons[k]))
	}
	fmt.Fprintf(w, "  sessions: %d session.started, %d session.ended (%s); %d ended by crowdload with EndSession while settling, %d never seen by the platform\n",
		e.SessionsStarted, e.SessionsEnded, strings.Join(parts, ", "), e.EndedAtSettle, e.SessionsUnseen)
	if h := e.Webhook; h != nil {
		s := h.Stats
		fmt.Fprintf(w, "  webhook: %d events expected, %d received (distinct webhook-ids), %d missing, %d not in the log; caught up: %v after %s\n",
			h.Expected, s.Distinct, len(h.Missing), len(h.Extra), h.CaughtUp, h.WaitDescription)
		fmt.Fprintf(w, "  webhook requests: %d (verified %d: accepted %d of which duplicates %d, answered 503 on purpose %d; bad signature %d, malformed %d, before the secret %d)\n",
			s.Requests, s.Verified, s.Accepted, s.Duplicates, s.FailedOnPurpose, s.BadSignature, s.Malformed, s.NotReady)
	}
}
