package crowdload

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

func sent(id, user, reward string, o Outcome) Sent {
	return Sent{RetryID: id, UserID: user, Reward: money.MustParse(reward), Outcome: o}
}

func paid(id, user, reward string) LedgerEntry {
	return LedgerEntry{RetryID: id, UserID: user, Reward: money.MustParse(reward)}
}

// ledgerOf builds a consistent ledger answer (count and total as the
// emulator computes them).
func ledgerOf(entries ...LedgerEntry) Ledger {
	total := money.Zero
	for _, e := range entries {
		total = total.Add(e.Reward)
	}
	return Ledger{Entries: entries, Count: len(entries), RewardTotal: total}
}

func kinds(r Reconciliation) map[ProblemKind][]string {
	out := map[ProblemKind][]string{}
	for _, p := range r.Problems {
		out[p.Kind] = append(out[p.Kind], p.RetryID)
	}
	return out
}

func TestReconcile(t *testing.T) {
	A := OutcomeAccepted
	tests := []struct {
		name   string
		sent   []Sent
		ledger Ledger
		want   map[ProblemKind][]string
	}{
		{
			name:   "every submit paid once",
			sent:   []Sent{sent("r1", "u1", "0.10", A), sent("r2", "u1", "0.20", A), sent("r3", "u2", "1.05", A)},
			ledger: ledgerOf(paid("r2", "u1", "0.20"), paid("r1", "u1", "0.10"), paid("r3", "u2", "1.05")),
			want:   map[ProblemKind][]string{},
		},
		{
			name:   "an accepted submit never paid is missing",
			sent:   []Sent{sent("r1", "u1", "0.10", A), sent("r2", "u1", "0.20", A)},
			ledger: ledgerOf(paid("r1", "u1", "0.10")),
			want:   map[ProblemKind][]string{ProblemMissing: {"r2"}, ProblemTotal: {""}},
		},
		{
			name:   "a retry_id paid twice",
			sent:   []Sent{sent("r1", "u1", "0.10", A)},
			ledger: ledgerOf(paid("r1", "u1", "0.10"), paid("r1", "u1", "0.10")),
			want:   map[ProblemKind][]string{ProblemDuplicate: {"r1"}, ProblemTotal: {""}},
		},
		{
			name:   "a second payment under a new retry_id",
			sent:   []Sent{sent("r1", "u1", "0.10", A)},
			ledger: ledgerOf(paid("r1", "u1", "0.10"), paid("r1-again", "u1", "0.10")),
			want:   map[ProblemKind][]string{ProblemUnexpected: {"r1-again"}, ProblemTotal: {""}},
		},
		{
			name:   "a payment without a retry_id",
			sent:   []Sent{sent("r1", "u1", "0.10", A)},
			ledger: ledgerOf(paid("r1", "u1", "0.10"), paid("", "u1", "0.10")),
			want:   map[ProblemKind][]string{ProblemUnexpected: {""}, ProblemTotal: {""}},
		},
		{
			name:   "paid a different amount",
			sent:   []Sent{sent("r1", "u1", "0.10", A), sent("r2", "u1", "0.20", A)},
			ledger: ledgerOf(paid("r1", "u1", "0.10"), paid("r2", "u1", "0.21")),
			want:   map[ProblemKind][]string{ProblemAmount: {"r2"}, ProblemTotal: {""}},
		},
		{
			name:   "the same amount in other digits is no mismatch",
			sent:   []Sent{sent("r1", "u1", "0.10", A), sent("r2", "u1", "2", A)},
			ledger: ledgerOf(paid("r1", "u1", "0.1"), paid("r2", "u1", "2.00")),
			want:   map[ProblemKind][]string{},
		},
		{
			name:   "paid to another Toloker",
			sent:   []Sent{sent("r1", "u1", "0.10", A)},
			ledger: ledgerOf(paid("r1", "u2", "0.10")),
			want:   map[ProblemKind][]string{ProblemUser: {"r1"}},
		},
		{
			name:   "a refused submit is a problem, and worse if paid",
			sent:   []Sent{sent("r1", "u1", "0.10", OutcomeRefused), sent("r2", "u1", "0.20", OutcomeRefused)},
			ledger: ledgerOf(paid("r2", "u1", "0.20")),
			want:   map[ProblemKind][]string{ProblemRefused: {"r1", "r2"}, ProblemPaidRefused: {"r2"}, ProblemTotal: {""}},
		},
		{
			name:   "unconfirmed submits may be paid once or not yet",
			sent:   []Sent{sent("r1", "u1", "0.10", OutcomeUnconfirmed), sent("r2", "u1", "0.20", OutcomeUnconfirmed)},
			ledger: ledgerOf(paid("r2", "u1", "0.20")),
			want:   map[ProblemKind][]string{},
		},
		{
			name:   "but never twice",
			sent:   []Sent{sent("r1", "u1", "0.10", OutcomeUnconfirmed)},
			ledger: ledgerOf(paid("r1", "u1", "0.10"), paid("r1", "u1", "0.10")),
			want:   map[ProblemKind][]string{ProblemDuplicate: {"r1"}, ProblemTotal: {""}},
		},
		{
			name: "the emulator's own total disagrees with its entries",
			sent: []Sent{sent("r1", "u1", "0.10", A)},
			ledger: Ledger{Entries: []LedgerEntry{paid("r1", "u1", "0.10")}, Count: 1,
				RewardTotal: money.MustParse("0.11")},
			want: map[ProblemKind][]string{ProblemTotal: {""}},
		},
		{
			name: "the emulator's count disagrees with its entries",
			sent: []Sent{sent("r1", "u1", "0.10", A)},
			ledger: Ledger{Entries: []LedgerEntry{paid("r1", "u1", "0.10")}, Count: 2,
				RewardTotal: money.MustParse("0.10")},
			want: map[ProblemKind][]string{ProblemTotal: {""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Reconcile(tt.sent, tt.ledger)
			if diff := cmp.Diff(tt.want, kinds(r)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\n%v", diff, r.Problems)
			}
			if r.OK() != (len(tt.want) == 0) {
				t.Errorf("OK() = %v with problems %v", r.OK(), r.Problems)
			}
		})
	}
}

// Totals are exact: a float64 sum of many 0.10s and 0.07s drifts; the
// reconciliation must not.
func TestReconcileTotalsAreExact(t *testing.T) {
	var s []Sent
	var l []LedgerEntry
	for i := range 1000 {
		reward := "0.10"
		if i%3 == 0 {
			reward = "0.07"
		}
		id := fmt.Sprintf("r%04d", i)
		s = append(s, sent(id, "u", reward, OutcomeAccepted))
		l = append(l, paid(id, "u", reward))
	}
	r := Reconcile(s, ledgerOf(l...))
	if !r.OK() {
		t.Fatalf("problems: %v", r.Problems)
	}
	// 666 x 0.10 + 334 x 0.07 = 66.60 + 23.38 = 89.98
	want := money.MustParse("89.98")
	if r.ExpectedTotal.Cmp(want) != 0 || r.PaidTotal.Cmp(want) != 0 {
		t.Errorf("expected %s, paid %s; want %s both", r.ExpectedTotal, r.PaidTotal, want)
	}

	// One cent off anywhere is a mismatch.
	l[500].Reward = money.MustParse("0.11")
	r = Reconcile(s, ledgerOf(l...))
	if r.Count(ProblemAmount) != 1 || r.Count(ProblemTotal) != 1 {
		t.Errorf("a cent off: problems %v, want one amount mismatch and one total mismatch", r.Problems)
	}
	if got := r.PaidTotal.String(); got != "89.99" {
		t.Errorf("paid total %s, want 89.99", got)
	}
}

func TestReconcileCounts(t *testing.T) {
	r := Reconcile([]Sent{
		sent("a", "u", "1", OutcomeAccepted), sent("b", "u", "2", OutcomeAccepted),
		sent("c", "u", "4", OutcomeUnconfirmed), sent("d", "u", "8", OutcomeUnconfirmed),
	}, Ledger{Entries: []LedgerEntry{paid("a", "u", "1"), paid("b", "u", "2"), paid("c", "u", "4")}, Count: 3,
		RewardTotal: money.MustParse("7"), DuplicatesRefused: 5})
	got := []any{r.Sent, r.Accepted, r.Refused, r.Unconfirmed, r.UnconfirmedPaid, r.Paid, r.DuplicatesRefused, r.ExpectedTotal.String(), r.PaidTotal.String()}
	want := []any{4, 2, 0, 2, 1, 3, 5, "7", "7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

func TestCheckGatewayTotals(t *testing.T) {
	r := Reconcile([]Sent{sent("a", "u", "1.50", OutcomeAccepted)}, ledgerOf(paid("a", "u", "1.50")))
	tests := []struct {
		name   string
		totals PoolTotals
		want   int
	}{
		{"agrees", PoolTotals{Received: 1, Delivered: 1, RewardDelivered: money.MustParse("1.5")}, 0},
		{"counts one more delivered", PoolTotals{Received: 2, Delivered: 2, RewardDelivered: money.MustParse("1.5")}, 1},
		{"a cent more delivered", PoolTotals{Received: 1, Delivered: 1, RewardDelivered: money.MustParse("1.51")}, 1},
		{"still queued", PoolTotals{Received: 2, Delivered: 1, Queued: 1, RewardDelivered: money.MustParse("1.5"), RewardQueued: money.MustParse("1")}, 1},
		{"dead", PoolTotals{Received: 2, Delivered: 1, Dead: 1, RewardDelivered: money.MustParse("1.5")}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := r
			rr.Problems = nil
			rr.CheckGatewayTotals(tt.totals)
			if got := rr.Count(ProblemGatewayTotals); got != tt.want {
				t.Errorf("%d gateway-total problems (%v), want %d", got, rr.Problems, tt.want)
			}
		})
	}
}

func TestResultExitCode(t *testing.T) {
	missing := Problem{Kind: ProblemMissing, RetryID: "r"}
	dup := Problem{Kind: ProblemDuplicate, RetryID: "r"}
	tests := []struct {
		name       string
		problems   []Problem
		drained    bool
		incomplete []string
		want       int
	}{
		{"pass", nil, true, nil, 0},
		{"paid twice fails even before the drain", []Problem{dup}, false, nil, 1},
		{"missing after the drain is lost", []Problem{missing}, true, nil, 1},
		{"missing before the drain may be late", []Problem{missing}, false, []string{"not drained"}, 4},
		{"incomplete but exact", nil, true, []string{"hit --duration"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Result{Drained: tt.drained, Incomplete: tt.incomplete, Reconciliation: Reconciliation{Problems: tt.problems}}
			if got := r.ExitCode(); got != tt.want {
				t.Errorf("ExitCode() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestCheckRegistry: the registry's reward and delivered count for each
// Toloker must be the ledger's to the digit, and every Toloker who landed
// must be listed.
func TestCheckRegistry(t *testing.T) {
	ledger := ledgerOf(paid("a", "u1", "0.10"), paid("b", "u1", "0.00000001"), paid("c", "u2", "2"))
	entry := func(n int64, reward string) RegistryEntry {
		return RegistryEntry{Delivered: n, RewardDelivered: money.MustParse(reward)}
	}
	agrees := map[string]RegistryEntry{"u1": entry(2, "0.10000001"), "u2": entry(1, "2.00"), "u3": entry(0, "0")}
	tests := []struct {
		name     string
		landed   []string
		registry map[string]RegistryEntry
		want     int
	}{
		{"agrees, a Toloker who landed and was never paid included", []string{"u1", "u2", "u3"}, agrees, 0},
		{"a hundred-millionth short", []string{"u1"}, map[string]RegistryEntry{"u1": entry(2, "0.1"), "u2": entry(1, "2")}, 1},
		{"a delivered submit too many", nil, map[string]RegistryEntry{"u1": entry(3, "0.10000001"), "u2": entry(1, "2")}, 1},
		{"a paid Toloker missing", []string{"u2"}, map[string]RegistryEntry{"u1": entry(2, "0.10000001")}, 2},
		{"paid in the registry, not in the ledger", nil, map[string]RegistryEntry{"u1": entry(2, "0.10000001"), "u2": entry(1, "2"), "u9": entry(1, "1")}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Reconciliation
			r.CheckRegistry(ledger, tt.landed, tt.registry)
			if got := r.Count(ProblemRegistry); got != tt.want {
				t.Errorf("%d registry problems (%v), want %d", got, r.Problems, tt.want)
			}
			if r.Registry == nil || r.Registry.Tolokers != len(tt.registry) {
				t.Errorf("Registry = %+v", r.Registry)
			}
		})
	}
}
