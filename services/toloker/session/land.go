package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/weburl"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/restriction"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Landing is what a landing answers the Toloker with.
type Landing struct {
	// RedirectURL is the project's platform URL with a one-time code.
	RedirectURL string
	// Code is the one-time code.
	Code string
	// Created reports that this landing started the session.
	Created bool
	// raw is the session's record as stored.
	raw []byte
}

// ErrNoSession is Find's answer for an assignment that has no session yet.
var ErrNoSession = errors.New("the assignment has no session yet")

// Find answers a repeat landing from Redis alone, with one GET: where to
// redirect the Toloker who landed with assignmentID again. It returns
// ErrNoSession when the assignment has no session yet (Land starts one),
// and otherwise Land's errors, less those of asking Toloka.
func (s *Service) Find(ctx context.Context, assignmentID string) (*Landing, error) {
	bin, ok := toloka.AssignmentIDBytes(assignmentID)
	if !ok {
		return nil, catalog.CheckAssignmentID("assignment_id", assignmentID)
	}
	return s.find(ctx, assignmentID, bin, "")
}

// find reads the assignment's session and answers with a fresh code.
func (s *Service) find(ctx context.Context, aid string, bin [assignmentBinLen]byte, onlyTenant string) (*Landing, error) {
	raw, err := s.store.get(ctx, aid)
	if errors.Is(err, errNoRecord) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	return s.landed(ctx, raw, bin, false, onlyTenant)
}

// Land starts or finds the session of an assignment for a Toloker who
// landed with it, and returns where to redirect them. The landing calls it
// once Find has found no session, so it does not read the session again:
// its first step, the script that takes the resolve lock, still answers a
// session stored meanwhile.
//
// Errors: InvalidArgument (malformed id), NotFound (unknown, or not in a
// pool Crowdgate manages), *NotActiveError, *EndedError, *LimitedError
// (the assignment's landing limit has no room), Unavailable (Toloka or
// Redis unreachable), FailedPrecondition (bound to another Toloker).
func (s *Service) Land(ctx context.Context, assignmentID string) (*Landing, error) {
	return s.land(ctx, assignmentID, "", false)
}

// land is Land, only for pools of onlyTenant when it is not empty; with
// findFirst it answers a session that exists with one GET (Find's path).
func (s *Service) land(ctx context.Context, aid, onlyTenant string, findFirst bool) (*Landing, error) {
	bin, ok := toloka.AssignmentIDBytes(aid)
	if !ok {
		return nil, catalog.CheckAssignmentID("assignment_id", aid)
	}
	if findFirst {
		if l, err := s.find(ctx, aid, bin, onlyTenant); !errors.Is(err, ErrNoSession) {
			return l, err
		}
	}
	lockToken := newLockToken() // unique to this landing
	lockTTL := s.settings.ResolveTimeout + 2*time.Second
	deadline := time.Now().Add(lockTTL)
	// The assignment's landing limit, spent once per landing: by its first
	// step only, not while it waits for another landing's answer.
	var limit *ratelimit.Reservation
	if s.limiter != nil {
		var err error
		if limit, err = s.limiter.Prepare(aid, s.perAsg); err != nil {
			return nil, err
		}
	}
	for {
		kind, payload, err := s.store.land(ctx, aid, lockToken, lockTTL, limit)
		limit = nil
		if err != nil {
			return nil, err
		}
		switch kind {
		case foundSession:
			return s.landed(ctx, []byte(payload), bin, false, onlyTenant)
		case foundAnswer:
			if onlyTenant != "" && payload != "n" {
				// The answer is about the pool that gave it, which may be
				// another tenant's: the caller's own pools answer instead
				// (NOT_FOUND when the id is in none of them). Only "n"
				// holds for every tenant.
				if err := s.resolveWithin(ctx, aid, bin, onlyTenant); err != nil {
					return nil, err
				}
			}
			if !strings.HasPrefix(payload, "b:") {
				return nil, cachedAnswer(aid, payload)
			}
			// The Toloker was banned where the assignment is: still so?
			banned, err := s.stillBanned(ctx, aid, payload)
			if err != nil {
				return nil, err
			}
			if banned != nil {
				return nil, banned
			}
			if err := s.store.forget(ctx, aid, payload); err != nil {
				return nil, err
			}
			continue // the ban was lifted: ask Toloka again
		case tookLock:
			return s.resolveAndCreate(ctx, aid, bin, lockToken, onlyTenant)
		}
		// Another landing is asking Toloka: wait for its answer.
		if time.Now().After(deadline) {
			return nil, &serviceerror.Unavailable{Message: "Toloka is slow to answer about this assignment; try again", RetryAfter: time.Second}
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// landed turns a stored record into the landing's answer, with a code
// minted now (after any wait for Toloka), so it has its whole CodeTTL. An
// ended session of a Toloker banned where it is answers *BannedError (no
// Toloka call: the record names the Toloker); only ended records are
// checked, so a warm landing stays one GET.
func (s *Service) landed(ctx context.Context, raw []byte, bin [assignmentBinLen]byte, created bool, onlyTenant string) (*Landing, error) {
	active, base, suffix, _, err := redirectSlices(raw)
	if err != nil {
		return nil, err
	}
	if active && onlyTenant == "" {
		// The warm path: no protobuf decoding. (An active record is never
		// past its expiry: its key's TTL is the expiry.)
		return newLanding(base, suffix, s.codes.mint(bin, s.now().Add(s.settings.CodeTTL)), created, raw), nil
	}
	r, err := unmarshalRecord(raw)
	if err != nil {
		return nil, err
	}
	s.view(r)
	if onlyTenant != "" && r.session.GetTenantId() != onlyTenant {
		return nil, &serviceerror.NotFound{Resource: "assignment", ID: r.session.GetAssignmentId()}
	}
	if !r.active() {
		sess := r.session
		ban, banned, err := s.bannedIn(ctx, sess.GetTenantId(), sess.GetUserId(), sess.GetPoolId())
		if err != nil {
			return nil, err
		}
		if banned {
			return nil, &BannedError{AssignmentID: sess.GetAssignmentId(), Scope: ban.Scope.Name()}
		}
		return nil, &EndedError{Session: r.session}
	}
	return newLanding(base, suffix, s.codes.mint(bin, s.now().Add(s.settings.CodeTTL)), created, raw), nil
}

// banAnswer is the cached answer about an assignment whose Toloker (as
// Toloka answered) was banned where the assignment is,
// "b:<tenant>\t<user>\t<credential>\t<project>\t<pool>": later landings
// with it are refused without asking Toloka while the ban lasts.
func banAnswer(tenantID, userID string, t restriction.Target) string {
	return "b:" + strings.Join([]string{tenantID, userID, t.CredentialID, t.ProjectID, t.PoolID}, "\t")
}

// stillBanned checks a cached ban answer against the Toloker's bans now:
// the refusal when one still covers the assignment's place, nil when none
// does.
func (s *Service) stillBanned(ctx context.Context, aid, answer string) (*BannedError, error) {
	parts := strings.Split(strings.TrimPrefix(answer, "b:"), "\t")
	if len(parts) != 5 {
		return nil, nil // not readable: ask Toloka again
	}
	rs, err := s.tolokers.Restrictions(ctx, parts[0], parts[1])
	if err != nil {
		return nil, err
	}
	if r, ok := restriction.Covering(rs, restriction.Target{CredentialID: parts[2], ProjectID: parts[3], PoolID: parts[4]}, s.now()); ok {
		return &BannedError{AssignmentID: aid, Scope: r.Scope.Name()}, nil
	}
	return nil, nil
}

// newLanding builds the redirect to base + "code=" + code + suffix in one
// allocation; Code shares its bytes.
func newLanding(base, suffix []byte, code *rawCode, created bool, raw []byte) *Landing {
	var b strings.Builder
	b.Grow(len(base) + len("code=") + codeLen + len(suffix))
	b.Write(base)
	b.WriteString("code=")
	at := b.Len()
	var enc [codeLen]byte
	base64.RawURLEncoding.Encode(enc[:], code[:])
	b.Write(enc[:])
	b.Write(suffix)
	u := b.String()
	return &Landing{RedirectURL: u, Code: u[at : at+codeLen], Created: created, raw: raw}
}

// newLockToken returns a random token that names one landing's hold on a
// resolve lock.
func newLockToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// negative is a final answer about an assignment, remembered for a while
// so repeats do not ask again.
type negative struct {
	err    error
	answer string // "" when not to be remembered
	ttl    time.Duration
}

func (n *negative) Error() string { return n.err.Error() }
func (n *negative) Unwrap() error { return n.err }

// Cached answers: "n" (not found), "s:<status>" (not active) or
// "c:<pool|project>" (archived).
func cachedAnswer(aid, answer string) error {
	switch {
	case strings.HasPrefix(answer, "s:"):
		return &NotActiveError{AssignmentID: aid, Status: answer[2:]}
	case strings.HasPrefix(answer, "c:"):
		return &ClosedError{AssignmentID: aid, What: answer[2:]}
	}
	return &serviceerror.NotFound{Resource: "assignment", ID: aid}
}

// resolveAndCreate asks Toloka (holding the resolve lock) and stores the
// session.
func (s *Service) resolveAndCreate(ctx context.Context, aid string, bin [assignmentBinLen]byte, lockToken, onlyTenant string) (*Landing, error) {
	rctx, cancel := context.WithTimeout(ctx, s.settings.ResolveTimeout)
	r, err := s.resolve(rctx, aid, bin, onlyTenant)
	cancel()
	if err != nil {
		answer, ttl := "", time.Duration(0)
		var neg *negative
		if errors.As(err, &neg) {
			answer, ttl, err = neg.answer, neg.ttl, neg.err
		}
		s.releaseLock(context.WithoutCancel(ctx), aid, lockToken, answer, ttl)
		return nil, err
	}
	raw, err := r.marshal()
	if err != nil {
		s.metrics.resolved("error")
		s.releaseLock(context.WithoutCancel(ctx), aid, lockToken, "", 0)
		return nil, err
	}
	// Toloka has answered: store the session even if this Toloker has gone
	// away meanwhile, so the next landing need not ask again.
	ctx = context.WithoutCancel(ctx)
	sess := r.session
	// Toloka has named the Toloker: a ban of theirs that covers the pool
	// refuses the landing, and the answer is kept so that the next
	// landings with this assignment are refused without asking Toloka.
	//
	// The Toloker registry lists the session before it exists, so no
	// session exists that the registry missed (a replica killed between
	// the two writes leaves a session counted that never existed: it reads
	// as expired). It reads the Toloker's bans in the same script: before
	// listing, where it lists nothing for a Toloker with any restriction
	// stored (almost every Toloker has none: one step for bans and
	// listing), and after listing when called again for a Toloker whose
	// restrictions do not cover this pool. A ban writes its restriction
	// before it looks for live sessions to end, so one of the two always
	// sees the other.
	//
	// The pool lists the session beside the registry's step (independent
	// writes share Redis's write to disk), before the session is stored:
	// no session is stored unlisted, and none in a pool an archive fenced
	// (Fence). A listing whose session is not stored is taken back.
	enlisted := make(chan error, 1)
	go s.enlist(ctx, r, enlisted)
	unlist := func() {
		if err := s.store.unlistLive(ctx, sess.TenantId, sess.PoolId, sess.SessionId); err != nil {
			s.log.Warn("session: taking back the listing of a session that was not stored failed", "session_id", sess.SessionId, "err", err)
		}
	}
	refuse := func(ban restriction.Restriction) (*Landing, error) {
		s.metrics.resolved("banned")
		unlist()
		s.releaseLock(ctx, aid, lockToken, banAnswer(sess.TenantId, sess.UserId, r.target()), s.settings.NotActiveTTL)
		return nil, &BannedError{AssignmentID: aid, Scope: ban.Scope.Name()}
	}
	rs, listed, err := s.tolokers.StartedUnlessRestricted(ctx, sess)
	if perr := <-enlisted; perr != nil {
		// (A listing whose reply was lost may have been made.)
		unlist()
		if err == nil && listed {
			s.abandon(ctx, sess)
		}
		s.releaseLock(ctx, aid, lockToken, "", 0)
		switch {
		case errors.Is(perr, errSealed):
			s.metrics.resolved("closed")
			return nil, &ClosedError{AssignmentID: aid, What: "pool"}
		case errors.Is(perr, errFenced):
			// The archive is refused, and the pool open again, or the
			// pool is archived: either way the Toloker hears soon.
			s.metrics.resolved("closed")
			return nil, &serviceerror.Unavailable{Message: "the pool is being archived; try again shortly", RetryAfter: 5 * time.Second}
		}
		s.metrics.resolved("error")
		return nil, perr
	}
	if err == nil && !listed {
		if ban, ok := restriction.Covering(rs, r.target(), s.now()); ok {
			return refuse(ban) // nothing was listed
		}
		rs, err = s.tolokers.Started(ctx, sess)
	}
	if err != nil {
		s.metrics.resolved("error")
		unlist()
		s.releaseLock(ctx, aid, lockToken, "", 0)
		return nil, err
	}
	if ban, ok := restriction.Covering(rs, r.target(), s.now()); ok {
		s.abandon(ctx, sess)
		return refuse(ban)
	}
	s.metrics.resolved("active")
	created, stored, err := s.store.create(ctx, aid, raw, sess.GetExpireTime().AsTime().Sub(s.now()), lockToken)
	if err == nil && !created && stored != "" {
		// The store run twice for this one call (go-redis sends a command
		// again when its reply is lost: a Redis restart, a dropped
		// connection) finds this landing's own session the second time.
		created = storedIs(stored, sess.GetSessionId())
	}
	if err != nil {
		// The write may have happened all the same (Redis failed after it,
		// or its reply was lost): read the session back before taking the
		// registry's count back.
		got, gerr := s.store.get(ctx, aid)
		switch {
		case gerr == nil:
			created, stored, err = storedIs(string(got), sess.GetSessionId()), string(got), nil
		case errors.Is(gerr, errNoRecord):
			// Not stored: abandoned below, and the resolve lock (which the
			// create would have released) is released now, so the next
			// landing need not wait for it to expire.
			s.releaseLock(ctx, aid, lockToken, "", 0)
		default:
			// Not known: the registry keeps the listing, so no stored
			// session goes uncounted (one that was not stored reads as
			// expired at its deadline: the registry's package doc).
			return nil, err
		}
	}
	if err != nil || !created {
		s.abandon(ctx, sess) // this session was not stored
		unlist()
	}
	if err != nil {
		return nil, err
	}
	if stored == "" {
		return nil, &serviceerror.Unavailable{Message: "the session expired while it was being started; try again", RetryAfter: time.Second}
	}
	if created {
		s.metrics.started.Inc()
		if ban, ok := s.recordStart(ctx, r); ok {
			// A ban made while the session was being stored: it looked
			// for the Toloker's sessions before this one existed, so the
			// landing ends it as the ban would have.
			if err := tryThrice(func() error {
				_, err := s.End(ctx, sess.TenantId, sess.SessionId, crowdgatev1.EndReason_END_REASON_REVOKED)
				return err
			}); err != nil {
				s.log.Error("session: ending a session a ban made while it was stored covers failed", "session_id", sess.SessionId, "err", err)
				return nil, err
			}
			return nil, &BannedError{AssignmentID: aid, Scope: ban.Scope.Name()}
		}
		return s.landed(ctx, []byte(stored), bin, true, onlyTenant)
	}
	// Another landing stored the assignment's session first (its lock
	// expired while this one waited on Toloka): it must be the same Toloker.
	existing, err := unmarshalRecord([]byte(stored))
	if err != nil {
		return nil, err
	}
	if existing.session.GetUserId() != r.session.GetUserId() {
		s.log.Error("session: Toloka answered another user for an assignment bound to a session",
			"assignment_id", aid, "session_id", existing.session.GetSessionId())
		return nil, serviceerror.NewFailedPrecondition("assignment %s is bound to another Toloker's session", aid)
	}
	return s.landed(ctx, []byte(stored), bin, false, onlyTenant)
}

// enlist lists r's session in its pool (store.enlist) and sends the
// answer on to.
func (s *Service) enlist(ctx context.Context, r *record, to chan<- error) {
	defer func() { // the landing's own recover does not reach this goroutine
		if p := recover(); p != nil {
			to <- fmt.Errorf("panic: %v", p)
		}
	}()
	to <- s.store.enlist(ctx, r, s.now())
}

// recordStart makes the writes that follow a stored session, at once:
// they are independent, so under appendfsync always they share Redis's
// write to disk instead of each waiting for its own. The registry records
// the session.started event (lost to a fault, it is recorded with the
// session's end: the registry's package doc) and answers the Toloker's
// bans as they are now, the ban that covers the session's pool (if any)
// is returned; the store lifts the Toloker's bar in the pool.
func (s *Service) recordStart(ctx context.Context, r *record) (restriction.Restriction, bool) {
	sess := r.session
	type answer struct {
		rs  []restriction.Restriction
		err error
	}
	confirmed := make(chan answer, 1)
	go func() {
		defer func() { // the landing's own recover does not reach this goroutine
			if p := recover(); p != nil {
				confirmed <- answer{err: fmt.Errorf("panic: %v", p)}
			}
		}()
		rs, err := s.tolokers.Confirmed(ctx, sess)
		confirmed <- answer{rs, err}
	}()
	if err := s.store.lift(ctx, r, s.now()); err != nil {
		s.log.Warn("session: lifting the Toloker's bar in the pool failed", "session_id", sess.SessionId, "err", err)
	}
	got := <-confirmed
	if got.err != nil {
		s.log.Warn("session: recording the session.started event failed; it is recorded with the end", "session_id", sess.SessionId, "err", got.err)
		// The bans are still read after the store, on their own.
		if got.rs, got.err = s.tolokers.Restrictions(ctx, sess.TenantId, sess.UserId); got.err != nil {
			s.log.Warn("session: reading the Toloker's bans after the store failed", "session_id", sess.SessionId, "err", got.err)
		}
	}
	return restriction.Covering(got.rs, r.target(), s.now())
}

// releaseLock stores a final answer about the assignment (when answer is
// not empty) and releases the resolve lock held with token.
func (s *Service) releaseLock(ctx context.Context, aid, token, answer string, ttl time.Duration) {
	if err := s.store.release(ctx, aid, token, answer, ttl); err != nil {
		s.log.Warn("session: releasing the resolve lock failed", "assignment_id", aid, "err", err)
	}
}

// abandon takes back the registry's count of a session that was not
// stored after all.
func (s *Service) abandon(ctx context.Context, sess *crowdgatev1.Session) {
	if err := s.tolokers.Abandoned(ctx, sess.TenantId, sess.UserId, sess.SessionId); err != nil {
		s.log.Warn("session: taking back a session the Toloker registry counted failed", "session_id", sess.SessionId, "err", err)
	}
}

// resolveWithin asks for the assignment in onlyTenant's pools alone,
// caching nothing: nil when one of them holds it (a cached answer about it
// is then the tenant's own), else the answer of the tenant's pools.
func (s *Service) resolveWithin(ctx context.Context, aid string, bin [assignmentBinLen]byte, onlyTenant string) error {
	rctx, cancel := context.WithTimeout(ctx, s.settings.ResolveTimeout)
	defer cancel()
	_, err := s.resolve(rctx, aid, bin, onlyTenant)
	var neg *negative
	if errors.As(err, &neg) {
		return neg.err
	}
	return err
}

// windowOf is the number of the fixed window of length per that holds t
// (a budget's counter is kept per window).
func windowOf(t time.Time, per time.Duration) int64 { return t.UnixMilli() / per.Milliseconds() }

// budgetSpent is the refusal of a landing at now whose budget is spent in
// window (of length per) until that window ends.
func budgetSpent(now time.Time, window int64, per time.Duration) *BudgetError {
	ends := time.UnixMilli((window + 1) * per.Milliseconds())
	return &BudgetError{RetryAfter: ends.Sub(now)}
}

// resolve asks the catalog for the assignment (Toloka through the pool's
// project's credential) and builds the session. A pool or project that is
// archived, or whose budget of unknown ids is spent, is refused before
// Toloka is asked.
func (s *Service) resolve(ctx context.Context, aid string, bin [assignmentBinLen]byte, onlyTenant string) (*record, error) {
	budget := s.settings.UnknownPerPool
	now := s.now()
	window := windowOf(now, budget.Per)
	// The landing client's share of the pool's budget, read before the
	// pool's: a client that has spent its share is refused, however much
	// of the pool's is left for everyone else.
	var clientKey string
	if client := clientOf(ctx); client != "" {
		share := s.settings.UnknownPerClient
		cwindow := windowOf(now, share.Per)
		clientKey = s.store.unknownClientKey(aid, client, cwindow)
		spent, err := s.store.clientUnknowns(ctx, clientKey)
		if err != nil {
			s.metrics.resolved("error")
			return nil, err
		}
		if spent >= int64(share.Rate) {
			s.metrics.resolved("over_budget")
			return nil, budgetSpent(now, cwindow, share.Per)
		}
	}
	// The budget's counter is read with the pool and its project (one
	// round trip), before Toloka is asked.
	check := &catalog.Check{Key: func(tenantID, poolID string) string {
		return s.store.unknownKey(tenantID, poolID, window)
	}}
	check.Vet = func(r *catalog.Resolved, value string) error {
		switch {
		case r.Project.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED:
			return &negative{err: &ClosedError{AssignmentID: aid, What: "project"}, answer: "c:project", ttl: s.settings.NotActiveTTL}
		case r.Pool.GetStatus() == crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED:
			return &negative{err: &ClosedError{AssignmentID: aid, What: "pool"}, answer: "c:pool", ttl: s.settings.NotActiveTTL}
		}
		// Only INCR writes the counter; "" (none yet) is 0.
		if spent, _ := strconv.ParseInt(value, 10, 64); spent >= int64(budget.Rate) {
			return budgetSpent(now, window, budget.Per)
		}
		return nil
	}
	found, err := s.catalog.FindAssignment(ctx, aid, onlyTenant, check)
	var (
		notFound *catalog.AssignmentNotFound
		refusal  *catalog.Refusal
		neg      *negative
		budgetE  *BudgetError
	)
	// Every pool Toloka did not know the id in spends its budget, also
	// when another pool's refusal answers.
	spend := func(asked []*crowdgatev1.Pool) {
		for _, p := range asked {
			if err := s.store.spendUnknown(context.WithoutCancel(ctx), s.store.unknownKey(p.GetTenantId(), p.GetPoolId(), window), budget.Per); err != nil {
				s.log.Warn("session: counting an unknown assignment id failed", "pool_id", p.GetPoolId(), "err", err)
			}
		}
	}
	if errors.As(err, &refusal) {
		spend(refusal.AskedIn)
	}
	switch {
	case errors.As(err, &notFound):
		s.metrics.resolved("not_found")
		spend(notFound.AskedIn)
		if clientKey != "" && len(notFound.AskedIn) > 0 {
			if err := s.store.spendUnknown(context.WithoutCancel(ctx), clientKey, s.settings.UnknownPerClient.Per); err != nil {
				s.log.Warn("session: counting a client's unknown assignment id failed", "err", err)
			}
		}
		answer := "n"
		if !notFound.Final {
			answer = "" // another tenant's pool was left out: not final for everyone
		}
		return nil, &negative{err: notFound, answer: answer, ttl: s.settings.NotFoundTTL}
	case errors.As(err, &neg):
		s.metrics.resolved("closed")
		if onlyTenant != "" {
			// Other tenants' pools were left out: not an answer for
			// everyone, so not cached.
			return nil, &negative{err: neg.err}
		}
		return nil, neg
	case errors.As(err, &budgetE):
		s.metrics.resolved("over_budget")
		return nil, budgetE
	case err != nil:
		s.metrics.resolved("error")
		return nil, tolokaUnavailable(err)
	}
	a := found.Assignment
	if a.Status != toloka.AssignmentActive {
		s.metrics.resolved("not_active")
		return nil, &negative{err: &NotActiveError{AssignmentID: aid, Status: string(a.Status)}, answer: "s:" + string(a.Status), ttl: s.settings.NotActiveTTL}
	}
	if a.UserID == "" {
		s.metrics.resolved("error")
		return nil, tolokaUnavailable(errors.New("Toloka answered an assignment without user_id"))
	}
	// The Toloker's bans are judged where the session is listed
	// (resolveAndCreate), which also counts the resolution.
	rec, err := s.newRecord(aid, bin, found.Pool, found.Project, a.UserID)
	if err != nil {
		s.metrics.resolved("error")
	}
	return rec, err
}

// tolokaUnavailable is the Unavailable of a resolution that could not ask
// Toloka (or read the catalog): the Toloker may try again.
func tolokaUnavailable(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var un *serviceerror.Unavailable
	if errors.As(err, &un) {
		return &serviceerror.Unavailable{Message: "Toloka is unavailable while asking Toloka about the assignment: " + un.Message, RetryAfter: un.RetryAfter, Cause: un.Cause}
	}
	// Toloka's own hint when it throttles the requester's account: a page
	// that came back sooner would only ask Toloka again, spending the
	// quota every Toloker of the account shares.
	retry := 5 * time.Second
	if re := (*serviceerror.ResourceExhausted)(nil); errors.As(err, &re) && re.RetryAfter > 0 {
		retry = re.RetryAfter
	}
	return &serviceerror.Unavailable{Message: "unavailable while asking Toloka about the assignment", RetryAfter: retry, Cause: err}
}

// newRecord builds a new active session.
func (s *Service) newRecord(aid string, bin [assignmentBinLen]byte, p *crowdgatev1.Pool, prj *crowdgatev1.Project, userID string) (*record, error) {
	base, suffix, err := splitPlatformURL(prj.GetPlatformUrl())
	if err != nil {
		s.log.Error("session: the project's platform_url cannot be redirected to", "project_id", prj.GetProjectId(), "err", err)
		return nil, &serviceerror.Unavailable{Message: "the project's platform is not configured correctly"}
	}
	audience := prj.GetPlatformAudience()
	if audience == "" {
		audience = weburl.Origin(prj.GetPlatformUrl())
	}
	returnURL := prj.GetReturnUrl()
	if returnURL == "" {
		returnURL = s.settings.DefaultReturnURL
	}
	maxDuration := time.Duration(p.GetAssignmentMaxDurationSeconds()) * time.Second
	if maxDuration <= 0 {
		maxDuration = defaultMaxDuration
	}
	now := s.now()
	return &record{
		session: &crowdgatev1.Session{
			SessionId:    newSessionID(bin),
			TenantId:     p.GetTenantId(),
			ProjectId:    p.GetProjectId(),
			PoolId:       p.GetPoolId(),
			AssignmentId: aid,
			UserId:       userID,
			State:        crowdgatev1.SessionState_SESSION_STATE_ACTIVE,
			CreateTime:   timestamppb.New(now),
			ExpireTime:   timestamppb.New(now.Add(maxDuration + s.settings.ExpiryMargin)),
			ReturnUrl:    returnURL,
			RewardTotal:  money.Zero.String(),
		},
		redirectBase:   base,
		redirectSuffix: suffix,
		audience:       audience,
		tolokaPoolID:   p.GetTolokaPoolId(),
		credentialID:   prj.GetCredentialId(),
	}, nil
}
