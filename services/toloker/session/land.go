package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
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
	return s.landed(raw, bin, false, onlyTenant)
}

// Land starts or finds the session of an assignment for a Toloker who
// landed with it, and returns where to redirect them. It is the landing's
// whole work, and a repeat landing is one Redis GET.
//
// Errors: InvalidArgument (malformed id), NotFound (unknown, or not in a
// pool Crowdgate manages), *NotActiveError, *EndedError, Unavailable
// (Toloka or Redis unreachable), FailedPrecondition (bound to another
// Toloker).
func (s *Service) Land(ctx context.Context, assignmentID string) (*Landing, error) {
	return s.land(ctx, assignmentID, "")
}

// land is Land, only for pools of onlyTenant when it is not empty.
func (s *Service) land(ctx context.Context, aid, onlyTenant string) (*Landing, error) {
	bin, ok := toloka.AssignmentIDBytes(aid)
	if !ok {
		return nil, catalog.CheckAssignmentID("assignment_id", aid)
	}
	// The warm path: a repeat landing finds its session.
	if l, err := s.find(ctx, aid, bin, onlyTenant); !errors.Is(err, ErrNoSession) {
		return l, err
	}
	lockToken := newLockToken() // unique to this landing
	lockTTL := s.settings.ResolveTimeout + 2*time.Second
	deadline := time.Now().Add(lockTTL)
	for {
		kind, payload, err := s.store.land(ctx, aid, lockToken, lockTTL)
		if err != nil {
			return nil, err
		}
		switch kind {
		case foundSession:
			return s.landed([]byte(payload), bin, false, onlyTenant)
		case foundAnswer:
			return nil, cachedAnswer(aid, payload)
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
// minted now (after any wait for Toloka), so it has its whole CodeTTL.
func (s *Service) landed(raw []byte, bin [assignmentBinLen]byte, created bool, onlyTenant string) (*Landing, error) {
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
		return nil, &EndedError{Session: r.session}
	}
	return newLanding(base, suffix, s.codes.mint(bin, s.now().Add(s.settings.CodeTTL)), created, raw), nil
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
		if rerr := s.store.release(context.WithoutCancel(ctx), aid, lockToken, answer, ttl); rerr != nil {
			s.log.Warn("session: releasing the resolve lock failed", "assignment_id", aid, "err", rerr)
		}
		return nil, err
	}
	raw, err := r.marshal()
	if err != nil {
		return nil, err
	}
	// Toloka has answered: store the session even if this Toloker has gone
	// away meanwhile, so the next landing need not ask again.
	ctx = context.WithoutCancel(ctx)
	created, stored, err := s.store.create(ctx, aid, raw, r.session.GetExpireTime().AsTime().Sub(s.now()), lockToken)
	if err != nil {
		return nil, err
	}
	if stored == "" {
		return nil, &serviceerror.Unavailable{Message: "the session expired while it was being started; try again", RetryAfter: time.Second}
	}
	if created {
		s.metrics.started.Inc()
		if err := s.store.listLive(ctx, r, s.now()); err != nil {
			s.log.Warn("session: listing a live session failed", "session_id", r.session.SessionId, "err", err)
		}
		// A fresh landing, with an assignment Toloka gave this Toloker,
		// lifts a bar from an earlier revoked session in the pool.
		if err := s.store.unblock(ctx, r.session.TenantId, r.session.PoolId, r.session.UserId); err != nil {
			s.log.Warn("session: lifting a bar failed", "session_id", r.session.SessionId, "err", err)
		}
		return s.landed([]byte(stored), bin, true, onlyTenant)
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
	return s.landed([]byte(stored), bin, false, onlyTenant)
}

// resolve asks the catalog for the assignment (Toloka through the pool's
// project's credential) and builds the session. A pool or project that is
// archived, or whose budget of unknown ids is spent, is refused before
// Toloka is asked.
func (s *Service) resolve(ctx context.Context, aid string, bin [assignmentBinLen]byte, onlyTenant string) (*record, error) {
	budget := s.settings.UnknownPerPool
	now := s.now()
	window := now.UnixMilli() / budget.Per.Milliseconds()
	check := func(r *catalog.Resolved) error {
		switch {
		case r.Project.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED:
			return &negative{err: &ClosedError{AssignmentID: aid, What: "project"}, answer: "c:project", ttl: s.settings.NotActiveTTL}
		case r.Pool.GetStatus() == crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED:
			return &negative{err: &ClosedError{AssignmentID: aid, What: "pool"}, answer: "c:pool", ttl: s.settings.NotActiveTTL}
		}
		spent, err := s.store.unknownSpent(ctx, r.Pool.GetTenantId(), r.Pool.GetPoolId(), window)
		if err != nil {
			return err
		}
		if spent >= int64(budget.Rate) {
			ends := time.UnixMilli((window + 1) * budget.Per.Milliseconds())
			return &BudgetError{RetryAfter: ends.Sub(now)}
		}
		return nil
	}
	found, err := s.catalog.FindAssignment(ctx, aid, onlyTenant, check)
	var (
		notFound *catalog.AssignmentNotFound
		neg      *negative
		budgetE  *BudgetError
	)
	switch {
	case errors.As(err, &notFound):
		s.metrics.resolved("not_found")
		for _, p := range notFound.AskedIn {
			if err := s.store.spendUnknown(context.WithoutCancel(ctx), p.GetTenantId(), p.GetPoolId(), window, budget.Per); err != nil {
				s.log.Warn("session: counting an unknown assignment id failed", "pool_id", p.GetPoolId(), "err", err)
			}
		}
		answer := "n"
		if !notFound.Final {
			answer = "" // another tenant's pool was left out: not final for everyone
		}
		return nil, &negative{err: notFound, answer: answer, ttl: s.settings.NotFoundTTL}
	case errors.As(err, &neg):
		s.metrics.resolved("closed")
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
	s.metrics.resolved("active")
	return s.newRecord(aid, bin, found.Pool, found.Project, a.UserID)
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
	return &serviceerror.Unavailable{Message: "unavailable while asking Toloka about the assignment", RetryAfter: 5 * time.Second, Cause: err}
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
		audience = audienceOf(prj.GetPlatformUrl())
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
	}, nil
}
