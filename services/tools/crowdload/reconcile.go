package crowdload

import (
	"fmt"
	"slices"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// Outcome is what the platform learnt about one submit.
type Outcome int

// The outcomes.
const (
	// OutcomeAccepted: the gateway answered DELIVERED or QUEUED (possibly
	// as a replay of an earlier attempt). Toloka must pay it exactly once.
	OutcomeAccepted Outcome = iota + 1
	// OutcomeRefused: the gateway answered a non-retryable error (or DEAD),
	// so the platform believes it was not paid. Toloka must not pay it.
	OutcomeRefused
	// OutcomeUnconfirmed: sent, but no answer accepted it before the run
	// ended. A real platform would keep resending the same retry_id, so it
	// may be paid once or not yet; never twice.
	OutcomeUnconfirmed
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case OutcomeAccepted:
		return "accepted"
	case OutcomeRefused:
		return "refused"
	case OutcomeUnconfirmed:
		return "unconfirmed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Sent is one submit the platform sent (at least once).
type Sent struct {
	// RetryID is the idempotency key Toloka sees: the retry_id the gateway
	// answered in the submission (the one the platform sent, unless the
	// gateway rewrote it).
	RetryID string
	// UserID is the Toloker's Toloka user_id.
	UserID string
	// Reward is the reward sent.
	Reward money.Decimal
	// Outcome is what the platform learnt.
	Outcome Outcome
}

// LedgerEntry is one submit the emulator recorded: what Toloka pays. It is
// the subset of the emulator's GET /_admin/ledger entry the harness reads.
type LedgerEntry struct {
	// Account is the requester account that pays.
	Account string `json:"account"`
	// PoolID is Toloka's pool id.
	PoolID string `json:"pool_id"`
	// UserID is the Toloker paid.
	UserID string `json:"user_id"`
	// RetryID is the idempotency key the submit carried ("" if none).
	RetryID string `json:"retry_id"`
	// AssignmentID is the Toloker's assignment.
	AssignmentID string `json:"assignment_id"`
	// Reward is the amount paid.
	Reward money.Decimal `json:"reward"`
	// CloseSession reports whether the submit closed the session.
	CloseSession bool `json:"close_session"`
	// DuplicatesRefused counts resends of this retry_id answered from
	// this entry without paying again.
	DuplicatesRefused int `json:"duplicates_refused"`
}

// Ledger is the emulator's GET /_admin/ledger answer.
type Ledger struct {
	// Entries are the recorded submits, oldest first.
	Entries []LedgerEntry `json:"entries"`
	// Count is len(Entries) as the emulator counted it.
	Count int `json:"count"`
	// RewardTotal is the emulator's exact sum of the entries' rewards.
	RewardTotal money.Decimal `json:"reward_total"`
	// DuplicatesRefused counts resent retry_ids the emulator answered
	// from the first entry without paying again.
	DuplicatesRefused int `json:"duplicates_refused"`
}

// ProblemKind classifies a reconciliation problem.
type ProblemKind string

// The problem kinds. Each one fails the run.
const (
	// ProblemMissing: accepted by the gateway, never paid (lost).
	ProblemMissing ProblemKind = "missing"
	// ProblemDuplicate: one retry_id paid more than once.
	ProblemDuplicate ProblemKind = "paid twice"
	// ProblemUnexpected: paid under a retry_id the platform never sent
	// (a second payment under a new key, or no key at all).
	ProblemUnexpected ProblemKind = "paid but never sent"
	// ProblemAmount: paid a different reward than sent.
	ProblemAmount ProblemKind = "amount mismatch"
	// ProblemUser: paid to a different Toloker than sent.
	ProblemUser ProblemKind = "user mismatch"
	// ProblemRefused: the gateway refused a valid submit: the Toloker
	// did the work and the platform was told it cannot be paid.
	ProblemRefused ProblemKind = "refused"
	// ProblemPaidRefused: refused to the platform, yet paid.
	ProblemPaidRefused ProblemKind = "paid though refused"
	// ProblemTotal: totals disagree.
	ProblemTotal ProblemKind = "total mismatch"
	// ProblemGatewayTotals: GetPoolTotals disagrees with the ledger.
	ProblemGatewayTotals ProblemKind = "gateway totals"
	// ProblemRegistry: the Toloker registry (ListTolokers) disagrees with
	// the ledger about a Toloker, or misses one who landed.
	ProblemRegistry ProblemKind = "registry"
)

// problemOrder is the order problems are reported in.
var problemOrder = []ProblemKind{
	ProblemMissing, ProblemDuplicate, ProblemUnexpected, ProblemAmount, ProblemUser,
	ProblemRefused, ProblemPaidRefused, ProblemTotal, ProblemGatewayTotals, ProblemRegistry,
	ProblemEventLog, ProblemWebhook,
}

// Problem is one thing wrong with the money.
type Problem struct {
	// Kind classifies it.
	Kind ProblemKind
	// RetryID is the submit concerned ("" for totals).
	RetryID string
	// Detail says what is wrong, with the amounts.
	Detail string
}

// String renders the problem for the summary.
func (p Problem) String() string {
	if p.RetryID == "" {
		return fmt.Sprintf("%s: %s", p.Kind, p.Detail)
	}
	return fmt.Sprintf("%s: retry_id %s: %s", p.Kind, p.RetryID, p.Detail)
}

// Reconciliation compares what the platform sent with what Toloka paid.
type Reconciliation struct {
	// Sent counts submits sent at least once; Accepted, Refused and
	// Unconfirmed split them by outcome.
	Sent, Accepted, Refused, Unconfirmed int
	// UnconfirmedPaid counts unconfirmed submits Toloka paid (once): the
	// answer was lost, the money was not.
	UnconfirmedPaid int
	// Paid counts ledger entries.
	Paid int
	// DuplicatesRefused counts resends Toloka's idempotency absorbed.
	DuplicatesRefused int
	// ExpectedTotal sums the rewards that must be paid: accepted submits
	// and unconfirmed ones that were paid.
	ExpectedTotal money.Decimal
	// PaidTotal sums the ledger's rewards (computed here, exactly).
	PaidTotal money.Decimal
	// LedgerTotal is the total the emulator reported.
	LedgerTotal money.Decimal
	// Registry is what the Toloker registry was found to hold (nil when
	// it was not checked).
	Registry *RegistryCheck
	// Problems lists everything wrong, in problemOrder then retry_id order.
	Problems []Problem
}

// RegistryEntry is the part of a Toloker of the registry (ListTolokers)
// the harness checks.
type RegistryEntry struct {
	// Delivered counts the Toloker's submits Toloka accepted.
	Delivered int64
	// RewardDelivered is the reward Toloka accepted for them.
	RewardDelivered money.Decimal
}

// RegistryCheck is what CheckRegistry compared.
type RegistryCheck struct {
	// Tolokers is how many Tolokers the registry listed for the pool;
	// Total the sum of their reward delivered.
	Tolokers int
	Total    money.Decimal
}

// CheckRegistry adds a problem to r for every Toloker whose registry entry
// disagrees with the ledger once the outbox has drained: every Toloker who
// landed is listed, and each one's delivered count and reward equal the
// ledger's entries for them, exactly.
func (r *Reconciliation) CheckRegistry(ledger Ledger, landed []string, registry map[string]RegistryEntry) {
	add := func(format string, args ...any) {
		r.Problems = append(r.Problems, Problem{Kind: ProblemRegistry, Detail: fmt.Sprintf(format, args...)})
	}
	type paid struct {
		n     int64
		total money.Decimal
	}
	byUser := map[string]paid{}
	for _, e := range ledger.Entries {
		p := byUser[e.UserID]
		if p.total.IsZeroValue() {
			p.total = money.Zero
		}
		p.n++
		p.total = p.total.Add(reward(e.Reward))
		byUser[e.UserID] = p
	}
	check := &RegistryCheck{Tolokers: len(registry), Total: money.Zero}
	for _, u := range slices.Sorted(mapKeys(registry)) {
		check.Total = check.Total.Add(reward(registry[u].RewardDelivered))
	}
	r.Registry = check
	for _, u := range landed {
		if _, ok := registry[u]; !ok {
			add("Toloker %s landed but the registry does not list them", u)
		}
	}
	users := slices.Sorted(mapKeys(byUser))
	for _, u := range slices.Sorted(mapKeys(registry)) {
		if _, ok := byUser[u]; !ok {
			users = append(users, u)
		}
	}
	for _, u := range users {
		p, e := byUser[u], registry[u]
		want := reward(p.total)
		if got := reward(e.RewardDelivered); got.Cmp(want) != 0 || e.Delivered != p.n {
			add("Toloker %s: the registry counts %d delivered, %s; the ledger %d, %s", u, e.Delivered, got, p.n, want)
		}
	}
}

// OK reports whether every submit was paid exactly once with the right
// amount and nothing else was paid.
func (r *Reconciliation) OK() bool { return len(r.Problems) == 0 }

// Count returns how many problems of kind k were found.
func (r *Reconciliation) Count(k ProblemKind) int {
	n := 0
	for _, p := range r.Problems {
		if p.Kind == k {
			n++
		}
	}
	return n
}

// RetryIDs returns the retry_ids of the problems of kind k, sorted.
func (r *Reconciliation) RetryIDs(k ProblemKind) []string {
	var out []string
	for _, p := range r.Problems {
		if p.Kind == k {
			out = append(out, p.RetryID)
		}
	}
	slices.Sort(out)
	return out
}

// Reconcile compares the submits the platform sent with the emulator's
// ledger of one pool. Rewards are compared and summed exactly.
func Reconcile(sent []Sent, ledger Ledger) Reconciliation {
	r := Reconciliation{
		Sent: len(sent), Paid: len(ledger.Entries), DuplicatesRefused: ledger.DuplicatesRefused,
		ExpectedTotal: money.Zero, PaidTotal: money.Zero, LedgerTotal: ledger.RewardTotal,
	}
	if r.LedgerTotal.IsZeroValue() {
		r.LedgerTotal = money.Zero
	}
	byRetry := make(map[string][]LedgerEntry, len(ledger.Entries))
	for _, e := range ledger.Entries {
		byRetry[e.RetryID] = append(byRetry[e.RetryID], e)
		r.PaidTotal = r.PaidTotal.Add(reward(e.Reward))
	}
	problems := map[ProblemKind][]Problem{}
	add := func(k ProblemKind, retryID, format string, args ...any) {
		problems[k] = append(problems[k], Problem{Kind: k, RetryID: retryID, Detail: fmt.Sprintf(format, args...)})
	}
	known := make(map[string]bool, len(sent))
	for _, s := range sent {
		if known[s.RetryID] {
			add(ProblemDuplicate, s.RetryID, "the platform sent this retry_id for two different submits (harness bug)")
			continue
		}
		known[s.RetryID] = true
		paid := byRetry[s.RetryID]
		switch s.Outcome {
		case OutcomeAccepted:
			r.Accepted++
		case OutcomeRefused:
			r.Refused++
			add(ProblemRefused, s.RetryID, "the gateway refused the submit of %s (reward %s)", s.UserID, s.Reward)
			if len(paid) > 0 {
				add(ProblemPaidRefused, s.RetryID, "refused to the platform but paid %d time(s)", len(paid))
			}
			continue
		case OutcomeUnconfirmed:
			r.Unconfirmed++
			if len(paid) == 0 {
				continue
			}
			r.UnconfirmedPaid++
		default:
			add(ProblemRefused, s.RetryID, "unknown outcome %v", s.Outcome)
			continue
		}
		r.ExpectedTotal = r.ExpectedTotal.Add(reward(s.Reward))
		switch {
		case len(paid) == 0:
			add(ProblemMissing, s.RetryID, "accepted for %s (reward %s) but never paid", s.UserID, s.Reward)
			continue
		case len(paid) > 1:
			add(ProblemDuplicate, s.RetryID, "paid %d times", len(paid))
		}
		for _, e := range paid {
			if reward(e.Reward).Cmp(reward(s.Reward)) != 0 {
				add(ProblemAmount, s.RetryID, "sent %s, paid %s", s.Reward, reward(e.Reward))
			}
			if e.UserID != s.UserID {
				add(ProblemUser, s.RetryID, "sent for %s, paid to %s", s.UserID, e.UserID)
			}
		}
	}
	for _, id := range slices.Sorted(mapKeys(byRetry)) {
		if known[id] {
			continue
		}
		es := byRetry[id]
		total := money.Zero
		for _, e := range es {
			total = total.Add(reward(e.Reward))
		}
		if id == "" {
			add(ProblemUnexpected, "", "%d payment(s) without a retry_id, %s in total", len(es), total)
			continue
		}
		add(ProblemUnexpected, id, "%d payment(s) to %s, %s in total", len(es), es[0].UserID, total)
	}
	if r.ExpectedTotal.Cmp(r.PaidTotal) != 0 {
		add(ProblemTotal, "", "expected %s paid, the ledger's entries add up to %s", r.ExpectedTotal, r.PaidTotal)
	}
	if r.LedgerTotal.Cmp(r.PaidTotal) != 0 {
		add(ProblemTotal, "", "the emulator reports %s in total, its entries add up to %s", r.LedgerTotal, r.PaidTotal)
	}
	if ledger.Count != len(ledger.Entries) {
		add(ProblemTotal, "", "the emulator reports %d entries and lists %d", ledger.Count, len(ledger.Entries))
	}
	for _, k := range problemOrder {
		ps := problems[k]
		slices.SortStableFunc(ps, func(a, b Problem) int {
			switch {
			case a.RetryID < b.RetryID:
				return -1
			case a.RetryID > b.RetryID:
				return 1
			}
			return 0
		})
		r.Problems = append(r.Problems, ps...)
	}
	return r
}

// reward treats an unset decimal as zero (it never is, in valid input).
func reward(d money.Decimal) money.Decimal {
	if d.IsZeroValue() {
		return money.Zero
	}
	return d
}

// PoolTotals is the subset of GetPoolTotals the harness checks.
type PoolTotals struct {
	// Received, Delivered, Queued and Dead count submits.
	Received, Delivered, Queued, Dead int64
	// RewardDelivered and RewardQueued sum their rewards.
	RewardDelivered, RewardQueued money.Decimal
}

// CheckGatewayTotals adds a problem to r for every way the gateway's own
// totals disagree with the ledger once the outbox has drained: delivered
// must equal the ledger's entries and reward, nothing may be queued or
// dead.
func (r *Reconciliation) CheckGatewayTotals(t PoolTotals) {
	add := func(format string, args ...any) {
		r.Problems = append(r.Problems, Problem{Kind: ProblemGatewayTotals, Detail: fmt.Sprintf(format, args...)})
	}
	if t.Delivered != int64(r.Paid) {
		add("the gateway counts %d delivered, the ledger %d", t.Delivered, r.Paid)
	}
	if reward(t.RewardDelivered).Cmp(r.PaidTotal) != 0 {
		add("the gateway counts %s delivered, the ledger %s", reward(t.RewardDelivered), r.PaidTotal)
	}
	if t.Queued != 0 {
		add("%d submits still queued (reward %s)", t.Queued, reward(t.RewardQueued))
	}
	if t.Dead != 0 {
		add("%d submits DEAD: Toloka refused them", t.Dead)
	}
}
