// Package session is the Toloker's step after the landing: a session in
// Redis for one Toloka assignment, for as long as the Toloker works on the
// partner platform.
//
// A session starts when the Toloker lands (Crowdgate's landing, or
// StartSession from a platform with its own landing). The catalog resolves
// the assignment id to its pool, project and Toloka account and asks Toloka
// GET /api/v1/assignments/{id}; only an ACTIVE assignment of a pool
// Crowdgate manages starts one, and the Toloker's user_id comes from
// Toloka's answer only.
//
// The same assignment always maps to one session: the record is created with
// SET NX under the assignment id, so a double click, a reload or a second
// replica finds the session the first one made, and Toloka is asked once per
// assignment (a Redis lock makes concurrent first landings wait for one
// resolution; Toloka's final answers, "unknown" and "not active", are cached
// for a while too). An assignment's first landings also spend its landing
// limit (Config.PerAssignment), shared by every replica, in the script that
// takes that lock, so a landing the limit refuses asks nothing and one that
// finds its session spends nothing. A repeat landing is one Redis GET.
// Every landing mints a fresh one-time code, which the platform trades for
// a signed token with ExchangeCode; a code works once and for CodeTTL.
// Codes are authenticated (HMAC under the code key) rather than stored, so
// a landing writes nothing; the exchange marks a code used (codes.go).
//
// Every session started and ended is recorded in the Toloker registry
// (Tolokers), which also holds the Toloker's bans: a landing refuses a
// banned Toloker (BannedError) as soon as it knows who lands, without
// asking Toloka when the assignment's session (its record names the
// Toloker) or an earlier refusal (cached with the assignment) tells it; the
// first landing of an assignment asks Toloka once, as every first landing
// does. The registry lists a new session before it is stored, reading the
// bans in the same script, so a ban made meanwhile is never missed by
// both. A warm
// landing of a live session reads nothing more than its record.
//
// A session is stored only once its pool has listed it live (enlist.lua),
// and a pool an archive fenced lists nothing (Fence): an archive sees every
// session that will ever be sent to a pool it archives. Every step of a
// landing is safe to run twice for one call (go-redis sends a command
// again when its reply is lost): each recognises its own earlier run by
// the landing's lock token or session id.
//
// A session's record expires with the pool's assignment_max_duration_seconds
// plus a margin (its Redis TTL), and a session ends earlier on close_session,
// on Toloka's flags (restricted, filtered out) or explicitly (EndSession,
// ENDED or REVOKED). An ended session stays readable until it expires, so a
// reload shows "ended" rather than starting over.
//
// Files: session.go (the service, its settings, reads and ends), land.go
// (landing: find, lock, resolve, create), codes.go (one-time codes and
// their exchange), store.go (the Redis layout and its Lua scripts in lua/),
// record.go (the record's encoding), ids.go (session ids).
package session

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/restriction"
	"github.com/crowdgate/crowdgate/services/platform/settings"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/token"
)

// MaxClockSkew is how far apart replicas' clocks may be for one-time codes
// to stay single-use: a code's used-marker outlives the code by it, and a
// code whose expiry lies further than CodeTTL plus it in the future is
// refused.
const MaxClockSkew = 5 * time.Minute

// defaultMaxDuration bounds a session whose pool has no
// assignment_max_duration_seconds (Toloka requires one; this is a guard).
const defaultMaxDuration = time.Hour

// Settings are the sessions' lifetimes.
type Settings struct {
	// CodeTTL is how long a one-time code may be exchanged.
	CodeTTL time.Duration
	// ExpiryMargin is added to the pool's assignment_max_duration_seconds
	// to make a session's lifetime.
	ExpiryMargin time.Duration
	// ResolveTimeout bounds asking Toloka about an assignment (a Toloker is
	// waiting), and a concurrent landing's wait for that answer.
	ResolveTimeout time.Duration
	// NotFoundTTL is how long "unknown or not Crowdgate's" is remembered
	// for an assignment id; NotActiveTTL, how long "not ACTIVE" is.
	NotFoundTTL, NotActiveTTL time.Duration
	// DefaultReturnURL is where a Toloker goes back to when the project
	// sets no return_url.
	DefaultReturnURL string
	// UnknownPerPool bounds what landings of made-up assignment ids cost a
	// requester: at most Rate ids Toloka does not know per pool and Per
	// (a fixed window); beyond it, first landings in the pool are refused
	// without asking Toloka until the window ends.
	UnknownPerPool ratelimit.Limit
	// UnknownPerClient bounds one client's share of that: at most Rate
	// ids Toloka does not know per client (an IPv4 address or an IPv6
	// /64, named by WithClient), Toloka pool and Per. One client alone
	// cannot spend a pool's whole budget and shut its first landings to
	// everyone else.
	UnknownPerClient ratelimit.Limit
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("session-code-ttl", "CROWDGATE_SESSION_CODE_TTL", "1m",
			"how long the one-time code of a landing's redirect may be exchanged for a token", settings.Duration(&s.CodeTTL)),
		settings.New("session-expiry-margin", "CROWDGATE_SESSION_EXPIRY_MARGIN", "15m",
			"added to the pool's assignment_max_duration_seconds to make a session's lifetime", settings.Duration(&s.ExpiryMargin)),
		settings.New("session-resolve-timeout", "CROWDGATE_SESSION_RESOLVE_TIMEOUT", "10s",
			"bound on asking Toloka about a landing's assignment, and on other landings' wait for that answer", settings.Duration(&s.ResolveTimeout)),
		settings.New("session-not-found-ttl", "CROWDGATE_SESSION_NOT_FOUND_TTL", "10s",
			"how long an assignment id Toloka or the catalog does not know is remembered", settings.Duration(&s.NotFoundTTL)),
		settings.New("session-not-active-ttl", "CROWDGATE_SESSION_NOT_ACTIVE_TTL", "10m",
			"how long Toloka's answer that an assignment is not ACTIVE is remembered", settings.Duration(&s.NotActiveTTL)),
		settings.New("session-default-return-url", "CROWDGATE_SESSION_DEFAULT_RETURN_URL", "https://toloka.ai/tasks",
			"where a Toloker is sent back to when the project sets no return_url", settings.String(&s.DefaultReturnURL)),
		settings.New("session-unknown-per-pool", "CROWDGATE_SESSION_UNKNOWN_PER_POOL", "60/m",
			"landings of assignment ids Toloka does not know, per pool: RATE/PERIOD (a fixed window); beyond it first landings in the pool get the 429 page without a Toloka call",
			windowLimit(&s.UnknownPerPool, "60/m")),
		settings.New("session-unknown-per-client", "CROWDGATE_SESSION_UNKNOWN_PER_CLIENT", "10/m",
			"one landing client's share of CROWDGATE_SESSION_UNKNOWN_PER_POOL: landings of assignment ids Toloka does not know per client (an IPv4 address or an IPv6 /64) and pool, RATE/PERIOD (a fixed window); beyond it that client's first landings in the pool get the 429 page, so one client cannot spend the pool's budget for everyone",
			windowLimit(&s.UnknownPerClient, "10/m")),
	}
}

// windowLimit is the value of a fixed-window budget setting: RATE/PERIOD
// (example is one, for the error), with no burst.
func windowLimit(p *ratelimit.Limit, example string) flag.Value {
	return settings.Func(p, func(v string) (ratelimit.Limit, error) {
		l, err := ratelimit.ParseRate(v)
		if err == nil && strings.Contains(v, ",") {
			err = fmt.Errorf("want RATE/PERIOD such as %s (a window has no burst), got %q", example, v)
		}
		l.Burst = 0
		return l, err
	}, func(l ratelimit.Limit) string { r := l.RateString(); return r[:strings.IndexByte(r, ',')] })
}

// DefaultSettings returns the settings' built-in defaults.
func DefaultSettings() Settings {
	var s Settings
	settings.Defaults(s.List())
	return s
}

// Config is what the service is built from.
type Config struct {
	// Redis keeps the sessions; Prefix starts every key.
	Redis  redis.UniversalClient
	Prefix string
	// Catalog resolves assignments to their pool, project and account.
	Catalog *catalog.Catalog
	// Signer signs the tokens ExchangeCode returns.
	Signer *token.Signer
	// CodeKey authenticates one-time codes (CodeKeySize bytes). Replicas
	// that share Redis must share it: the gateway derives it from the
	// encryption key.
	CodeKey []byte
	// Settings are the lifetimes (DefaultSettings for zero fields).
	Settings Settings
	// Limiter and PerAssignment, when both are set, limit an assignment's
	// first landings (those that find no session, and may ask Toloka)
	// across every replica: Land reserves a slot of PerAssignment in the
	// same script that takes the assignment's resolve lock, in the
	// assignment's hash slot, so a landing the limit refuses asks nothing,
	// and one that finds a session stored meanwhile spends nothing. The
	// landing's own setting is passed here (landing.Settings); only its
	// Rate, Per and Burst are used.
	Limiter       *ratelimit.Limiter
	PerAssignment ratelimit.Limit
	// DirectLanding turns off the pipelining of concurrent landings'
	// commands (see AutoPipelined), for benchmarks that compare the two.
	DirectLanding bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives errors worth an operator's attention (never a secret).
	Log *slog.Logger
	// Metrics, when set, registers the service's metrics.
	Metrics prometheus.Registerer
}

// Tolokers is the registry of Tolokers the sessions keep up to date and
// read bans from (*registry.Registry). Its writes happen on a session's
// start (an assignment's first landing) and end only, never on a warm
// landing.
type Tolokers interface {
	// Started records a started session, once, before it is stored, and
	// returns the Toloker's restrictions in force.
	Started(ctx context.Context, sess *crowdgatev1.Session) ([]restriction.Restriction, error)
	// StartedUnlessRestricted is Started when the Toloker has no
	// restriction stored; otherwise it records nothing and returns the
	// restrictions in force with listed false.
	StartedUnlessRestricted(ctx context.Context, sess *crowdgatev1.Session) (rs []restriction.Restriction, listed bool, err error)
	// Confirmed records that the started session was stored (its
	// session.started event), once, and returns the Toloker's
	// restrictions in force after the store.
	Confirmed(ctx context.Context, sess *crowdgatev1.Session) ([]restriction.Restriction, error)
	// Abandoned takes back a started session that was not stored after all.
	Abandoned(ctx context.Context, tenantID, userID, sessionID string) error
	// Ended records how a session ended (and its session.ended event), once.
	Ended(ctx context.Context, sess *crowdgatev1.Session) (bool, error)
	// Restrictions returns the Toloker's restrictions in force.
	Restrictions(ctx context.Context, tenantID, userID string) ([]restriction.Restriction, error)
	// LiveSessions returns the Toloker's live sessions.
	LiveSessions(ctx context.Context, tenantID, userID string) ([]restriction.LiveSession, error)
}

// Service implements crowdgatev1.SessionServiceServer and the session
// operations other capabilities use (Get, End, RecordSubmit, LiveCount).
type Service struct {
	crowdgatev1.UnimplementedSessionServiceServer
	store    *store
	tolokers Tolokers
	catalog  *catalog.Catalog
	signer   *token.Signer
	codes    *codeMinter
	settings Settings
	limiter  *ratelimit.Limiter
	perAsg   ratelimit.Limit // Name set; used only with limiter
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics
}

// NewService returns the session service over the Toloker registry.
// Redis, Catalog, Signer and a CodeKey of CodeKeySize bytes are required.
func NewService(cfg Config, tolokers Tolokers) (*Service, error) {
	switch {
	case cfg.Redis == nil || cfg.Catalog == nil || cfg.Signer == nil || tolokers == nil:
		return nil, errors.New("session: Config.Redis, Catalog, Signer and the Tolokers are required")
	case len(cfg.CodeKey) != CodeKeySize:
		return nil, fmt.Errorf("session: Config.CodeKey must be %d bytes", CodeKeySize)
	}
	def := DefaultSettings()
	st := cfg.Settings
	for _, d := range []struct{ got, def *time.Duration }{
		{&st.CodeTTL, &def.CodeTTL}, {&st.ExpiryMargin, &def.ExpiryMargin}, {&st.ResolveTimeout, &def.ResolveTimeout},
		{&st.NotFoundTTL, &def.NotFoundTTL}, {&st.NotActiveTTL, &def.NotActiveTTL},
	} {
		if *d.got <= 0 {
			*d.got = *d.def
		}
	}
	if st.DefaultReturnURL == "" {
		st.DefaultReturnURL = def.DefaultReturnURL
	}
	if st.UnknownPerPool.Rate <= 0 || st.UnknownPerPool.Per <= 0 {
		st.UnknownPerPool = def.UnknownPerPool
	}
	if st.UnknownPerClient.Rate <= 0 || st.UnknownPerClient.Per <= 0 {
		st.UnknownPerClient = def.UnknownPerClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.PerAssignment.Rate <= 0 {
		cfg.Limiter = nil // no limit
	}
	cfg.PerAssignment.Name = "landing-asg"
	if cfg.Limiter != nil { // a limit that cannot be reserved fails here, not at a landing
		if _, err := cfg.Limiter.Prepare("check", cfg.PerAssignment); err != nil {
			return nil, fmt.Errorf("session: Config.PerAssignment: %w", err)
		}
	}
	landing := storage.AutoPipelined(cfg.Redis)
	if cfg.DirectLanding {
		landing = cfg.Redis
	}
	return &Service{
		store:    &store{rdb: cfg.Redis, landing: landing, prefix: cfg.Prefix},
		tolokers: tolokers,
		catalog:  cfg.Catalog,
		signer:   cfg.Signer,
		codes:    newCodeMinter(cfg.CodeKey),
		settings: st,
		limiter:  cfg.Limiter,
		perAsg:   cfg.PerAssignment,
		now:      cfg.Now,
		log:      cfg.Log,
		metrics:  newMetrics(cfg.Metrics),
	}, nil
}

// LimitedError is Land's refusal of an assignment's first landing when the
// assignment's landing limit (Config.PerAssignment) has no room now: nothing
// was asked. It unwraps to a serviceerror.ResourceExhausted whose
// RetryAfter says when the limit has room.
type LimitedError struct {
	// AssignmentID is the assignment.
	AssignmentID string
	// Exhausted is the limit's refusal, with its RetryAfter.
	Exhausted *serviceerror.ResourceExhausted
}

func (e *LimitedError) Error() string { return e.Exhausted.Error() }

// Unwrap returns Exhausted.
func (e *LimitedError) Unwrap() error { return e.Exhausted }

// NotActiveError reports an assignment Toloka does not answer as ACTIVE:
// already submitted (SUBMITTED, ACCEPTED, REJECTED), EXPIRED or SKIPPED.
// It unwraps to a serviceerror.FailedPrecondition.
type NotActiveError struct {
	// AssignmentID is the assignment.
	AssignmentID string
	// Status is Toloka's status of it.
	Status string
}

// Error describes the refusal.
func (e *NotActiveError) Error() string {
	return fmt.Sprintf("assignment %s is %s in Toloka, not ACTIVE", e.AssignmentID, e.Status)
}

// Unwrap returns the domain error.
func (e *NotActiveError) Unwrap() error { return &serviceerror.FailedPrecondition{Message: e.Error()} }

// EndedError reports an assignment whose session has ended. It unwraps to a
// serviceerror.FailedPrecondition.
type EndedError struct {
	// Session is the ended session.
	Session *crowdgatev1.Session
}

// Error describes the refusal.
func (e *EndedError) Error() string {
	return fmt.Sprintf("session %s has ended (%s)", e.Session.GetSessionId(), e.Session.GetEndReason())
}

// Unwrap returns the domain error.
func (e *EndedError) Unwrap() error { return &serviceerror.FailedPrecondition{Message: e.Error()} }

// ClosedError reports an assignment of a pool or project that was archived:
// nobody can work on it any more, and Toloka is not asked. It unwraps to a
// serviceerror.FailedPrecondition.
type ClosedError struct {
	// AssignmentID is the assignment.
	AssignmentID string
	// What is closed: "pool" or "project".
	What string
}

// Error describes the refusal.
func (e *ClosedError) Error() string {
	return fmt.Sprintf("assignment %s belongs to an archived %s", e.AssignmentID, e.What)
}

// Unwrap returns the domain error.
func (e *ClosedError) Unwrap() error { return &serviceerror.FailedPrecondition{Message: e.Error()} }

// BannedError reports a Toloker who is restricted (banned) in the scope of
// the assignment (its pool, its project, or all of the requester's
// projects): they cannot take this task. It unwraps to a
// serviceerror.PermissionDenied.
type BannedError struct {
	// AssignmentID is the assignment.
	AssignmentID string
	// Scope is the restriction's scope: "pool", "project" or "all_projects".
	Scope string
}

// Error describes the refusal.
func (e *BannedError) Error() string {
	return fmt.Sprintf("the Toloker of assignment %s is restricted in this %s", e.AssignmentID, strings.ReplaceAll(e.Scope, "_", " "))
}

// Unwrap returns the domain error.
func (e *BannedError) Unwrap() error { return &serviceerror.PermissionDenied{Message: e.Error()} }

// clientKey is the context key of WithClient.
type clientKey struct{}

// WithClient names the client a landing comes from (an IPv4 address or an
// IPv6 /64, as the landing's own limit names it), whose share of a pool's
// budget of unknown assignment ids (Settings.UnknownPerClient) Land then
// spends. A call without one (StartSession, an authenticated platform)
// spends the pool's budget only.
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

func clientOf(ctx context.Context) string {
	c, _ := ctx.Value(clientKey{}).(string)
	return c
}

// BudgetError reports a first landing refused because the pool's budget of
// assignment ids Toloka does not know (or the landing client's share of
// it) is spent for now. It unwraps to a serviceerror.ResourceExhausted.
type BudgetError struct {
	// RetryAfter is when the budget is renewed.
	RetryAfter time.Duration
}

// Error describes the refusal.
func (e *BudgetError) Error() string { return e.Unwrap().Error() }

// Unwrap returns the domain error.
func (e *BudgetError) Unwrap() error {
	return &serviceerror.ResourceExhausted{Message: "too many unknown assignment ids in this pool", RetryAfter: e.RetryAfter}
}

// view presents a record as of now: an active session past its expiry is
// ENDED with reason EXPIRED.
func (s *Service) view(r *record) {
	if r.active() && !s.now().Before(r.session.GetExpireTime().AsTime()) {
		r.session.State = crowdgatev1.SessionState_SESSION_STATE_ENDED
		r.session.EndReason = crowdgatev1.EndReason_END_REASON_EXPIRED
		r.session.EndTime = r.session.GetExpireTime()
	}
}

// Get returns a tenant's session. A session past its expiry reads as ENDED
// (EXPIRED) until Redis drops it; then, like a foreign tenant's, it is
// NotFound.
func (s *Service) Get(ctx context.Context, tenantID, sessionID string) (*crowdgatev1.Session, error) {
	sess, _, err := s.Read(ctx, tenantID, sessionID)
	return sess, err
}

// Read is Get, and the version of the session it read: a RecordSubmit
// given that version starts from it instead of reading the session again
// (and reads it again only when it changed meanwhile).
func (s *Service) Read(ctx context.Context, tenantID, sessionID string) (*crowdgatev1.Session, string, error) {
	r, err := s.store.read(ctx, tenantID, sessionID)
	if err != nil {
		return nil, "", err
	}
	s.view(r)
	return r.session, r.stored, nil
}

// End ends a session for reason (UNSPECIFIED means ENDED); ending an ended
// session returns it unchanged. Its codes stop working and landings with its
// assignment show that it ended.
func (s *Service) End(ctx context.Context, tenantID, sessionID string, reason crowdgatev1.EndReason) (*crowdgatev1.Session, error) {
	if reason == crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
		reason = crowdgatev1.EndReason_END_REASON_ENDED
	}
	if _, ok := crowdgatev1.EndReason_name[int32(reason)]; !ok {
		return nil, serviceerror.NewInvalidArgument("reason", "unknown end reason %d", reason)
	}
	ended := false
	r, err := s.store.update(ctx, tenantID, sessionID, "", func(r *record) bool {
		ended = false // a try before found the session changed meanwhile
		s.view(r)
		if !r.active() {
			return false
		}
		r.session.State = crowdgatev1.SessionState_SESSION_STATE_ENDED
		r.session.EndReason = reason
		r.session.EndTime = timestamppb.New(s.now())
		ended = true
		return true
	})
	if err != nil {
		return nil, err
	}
	if ended {
		s.metrics.ended.WithLabelValues(reason.String()).Inc()
	}
	if !r.active() {
		// Unlisted whenever an end is seen, not only by the call that
		// ended it: a landing that listed its session live after a ban
		// had ended it is taken off the pool's live index by its own End.
		if err := s.store.unlistLive(ctx, r.session.TenantId, r.session.PoolId, sessionID); err != nil {
			s.log.Warn("session: unlisting an ended session failed", "session_id", sessionID, "err", err)
		}
	}
	if !r.active() {
		// Counted once by the registry, however often the end is seen, so
		// an end whose count was lost to a failure is counted by the next.
		// Tried again briefly: this records the session.ended event.
		if err := tryThrice(func() error {
			_, err := s.tolokers.Ended(context.WithoutCancel(ctx), r.session)
			return err
		}); err != nil {
			s.log.Warn("session: recording an ended session in the Toloker registry failed", "session_id", sessionID, "err", err)
		}
	}
	barred := r.session
	if !bars(barred.GetEndReason()) && bars(reason) && !r.active() {
		// Ended already another way (a close_session answered before its
		// delivery brought Toloka's flags): the session keeps its end, and
		// the flags bar its Toloker all the same.
		barred = proto.CloneOf(r.session)
		barred.EndReason = reason
	}
	if bars(barred.GetEndReason()) {
		// Written whenever such an end is seen (also again), so a bar lost
		// to a failure is restored by the next End; not over a later
		// session's landing, which lifted it for that session.
		if err := s.store.block(ctx, barred); err != nil {
			return nil, err
		}
	}
	return r.session, nil
}

// bars reports whether a session ended this way bars its Toloker from the
// pool: revoked by the platform or the requester, or ended by Toloka's
// flags (restricted, filtered out).
func bars(reason crowdgatev1.EndReason) bool {
	switch reason {
	case crowdgatev1.EndReason_END_REASON_REVOKED, crowdgatev1.EndReason_END_REASON_RESTRICTED, crowdgatev1.EndReason_END_REASON_FILTERED_OUT:
		return true
	}
	return false
}

// Barred returns why a Toloker may not submit to a pool without a session
// (END_REASON_UNSPECIFIED when they may): once a session of theirs in the
// pool was revoked or ended by Toloka's flags, until a fresh landing opens
// a new one; and while a ban covers the pool (REVOKED).
func (s *Service) Barred(ctx context.Context, tenantID, poolID, userID string) (crowdgatev1.EndReason, error) {
	v, err := s.store.blocked(ctx, tenantID, poolID, userID)
	if err != nil {
		return crowdgatev1.EndReason_END_REASON_UNSPECIFIED, err
	}
	if v != "" {
		return crowdgatev1.EndReason(crowdgatev1.EndReason_value[v]), nil
	}
	_, banned, err := s.bannedIn(ctx, tenantID, userID, poolID)
	switch {
	case err != nil:
		return crowdgatev1.EndReason_END_REASON_UNSPECIFIED, err
	case banned:
		return crowdgatev1.EndReason_END_REASON_REVOKED, nil
	}
	return crowdgatev1.EndReason_END_REASON_UNSPECIFIED, nil
}

// bannedIn returns the ban of the Toloker that covers the pool, if any.
// The pool's project and credential come from its route (kept in memory).
func (s *Service) bannedIn(ctx context.Context, tenantID, userID, poolID string) (restriction.Restriction, bool, error) {
	rs, err := s.tolokers.Restrictions(ctx, tenantID, userID)
	if err != nil || len(rs) == 0 {
		return restriction.Restriction{}, false, err
	}
	route, err := s.catalog.Route(ctx, tenantID, poolID)
	if err != nil {
		return restriction.Restriction{}, false, err
	}
	r, ok := restriction.Covering(rs, restriction.Target{CredentialID: route.CredentialID, ProjectID: route.ProjectID, PoolID: poolID}, s.now())
	return r, ok, nil
}

// LiveSession returns the Toloker's live session in the pool (the one
// that expires last, if several) and its assignment, "" when they have
// none.
func (s *Service) LiveSession(ctx context.Context, tenantID, poolID, userID string) (sessionID, assignmentID string, err error) {
	live, err := s.tolokers.LiveSessions(ctx, tenantID, userID)
	if err != nil {
		return "", "", err
	}
	for _, l := range live {
		if l.PoolID != poolID {
			continue
		}
		if aid, ok := assignmentOfSession(l.SessionID); ok {
			return l.SessionID, aid, nil
		}
	}
	return "", "", nil
}

// sideDoorHold bounds how long a side-door submit stays listed should its
// replica stop before taking it off (an archive is refused meanwhile).
const sideDoorHold = time.Minute

// SideDoor lets a submit by pool and user (no session) into a pool, as a
// landing's session is let in: it is listed in the pool's side-door index,
// which an archive's fence counts with the live sessions, until the
// returned leave takes it off (call it once the submit is accepted or
// refused). While an archive checks the pool it is UNAVAILABLE, and once
// the pool is archived FAILED_PRECONDITION: Toloka refuses submits to an
// archived pool, so work accepted then would never be paid.
func (s *Service) SideDoor(ctx context.Context, tenantID, poolID string) (leave func(), err error) {
	token := "side/" + newLockToken()
	now := s.now()
	switch err := s.store.enlistSide(ctx, tenantID, poolID, token, now.Add(sideDoorHold), now); {
	case errors.Is(err, errSealed):
		return nil, serviceerror.NewFailedPrecondition("pool %s is archived: Toloka takes no submits to it", poolID)
	case errors.Is(err, errFenced):
		return nil, &serviceerror.Unavailable{Message: "pool " + poolID + " is being archived; try again shortly", RetryAfter: 5 * time.Second}
	case err != nil:
		return nil, err
	}
	return func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.store.unlistSide(lctx, tenantID, poolID, token); err != nil {
			s.log.Warn("session: could not take a side-door submit off its pool's index; it expires on its own",
				"pool_id", poolID, "err", err)
		}
	}, nil
}

// OfAssignments returns the sessions Crowdgate still keeps of assignments
// of the tenant, by assignment id (the others are left out).
func (s *Service) OfAssignments(ctx context.Context, tenantID string, assignmentIDs []string) (map[string]*crowdgatev1.Session, error) {
	raws, err := s.store.getMany(ctx, assignmentIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*crowdgatev1.Session, len(raws))
	for aid, raw := range raws {
		r, err := unmarshalRecord(raw)
		if err != nil {
			return nil, err
		}
		if r.session.GetTenantId() != tenantID {
			continue
		}
		s.view(r)
		out[aid] = r.session
	}
	return out, nil
}

// RecordSubmit adds one submit and its reward to a session's totals,
// exactly (also after the session ended: the submit happened in it).
// version is what Read returned with the session ("" to read it here).
func (s *Service) RecordSubmit(ctx context.Context, tenantID, sessionID, version string, reward money.Decimal) error {
	if reward.IsZeroValue() {
		return serviceerror.NewInvalidArgument("reward", "required")
	}
	var bad error
	_, err := s.store.update(ctx, tenantID, sessionID, version, func(r *record) bool {
		total := money.Zero
		if t := r.session.GetRewardTotal(); t != "" {
			var err error
			if total, err = money.Parse(t); err != nil {
				bad = fmt.Errorf("session %s: stored reward_total %q: %w", sessionID, t, err)
				return false
			}
		}
		r.session.SubmitsCount++
		r.session.RewardTotal = total.Add(reward).String()
		return true
	})
	if err != nil {
		return err
	}
	return bad
}

// LiveCount returns how many sessions of a pool are active.
func (s *Service) LiveCount(ctx context.Context, tenantID, poolID string) (int64, error) {
	return s.store.liveCount(ctx, tenantID, poolID, s.now())
}

// Fence stops sessions from starting in a pool and returns how many of its
// sessions are active, in one step: a session that started before is
// counted, and none starts after (a landing stores its session only once
// its pool listed it, which a fenced pool refuses: the landing answers
// Unavailable, to try again shortly, and *ClosedError once the pool is
// sealed). It is how an archive sees every session it would strand.
// The fence is holder's until Unfence (the archive did not happen) or Seal
// (it did); one left by an archive that died expires after ttl. Fencing
// again with the same holder renews it; a pool another holder fenced is
// Unavailable (another archive is checking it).
func (s *Service) Fence(ctx context.Context, tenantID, poolID, holder string, ttl time.Duration) (int64, error) {
	n, err := s.store.fence(ctx, tenantID, poolID, holder, ttl, s.now())
	if errors.Is(err, errFenceHeld) {
		return 0, &serviceerror.Unavailable{Message: "pool " + poolID + " is being archived by another request; try again", RetryAfter: time.Second}
	}
	return n, err
}

// Unfence lets sessions start again in a pool holder fenced, unless
// holder took the fence over from an archive that left it unsettled (see
// LeaveFenced): then the fence stays up, unsettled, for its remaining time.
func (s *Service) Unfence(ctx context.Context, tenantID, poolID, holder string) error {
	return s.store.unfence(ctx, tenantID, poolID, holder, false, 0)
}

// LeaveFenced hands over a fence holder could not settle (Toloka may yet
// archive the pool): sessions stay out of the pool for ttl, and the next
// archive of the pool may take the fence over.
func (s *Service) LeaveFenced(ctx context.Context, tenantID, poolID, holder string, ttl time.Duration) error {
	return s.store.unfence(ctx, tenantID, poolID, holder, true, ttl)
}

// Seal fences an archived pool for good: no session starts in it, even by
// a landing that read the pool before it was archived.
func (s *Service) Seal(ctx context.Context, tenantID, poolID string) error {
	return s.store.seal(ctx, tenantID, poolID)
}

// The RPCs. The tenant is the caller's (tenant.FromContext).

// StartSession resolves the assignment (within the caller's tenant) and
// returns its session and a fresh one-time code, for platforms that run
// their own landing.
func (s *Service) StartSession(ctx context.Context, req *crowdgatev1.StartSessionRequest) (*crowdgatev1.StartSessionResponse, error) {
	if req.GetAssignmentId() == "" {
		return nil, serviceerror.NewInvalidArgument("assignment_id", "required")
	}
	l, err := s.land(ctx, req.GetAssignmentId(), tenant.FromContext(ctx), true)
	if err != nil {
		return nil, err
	}
	r, err := unmarshalRecord(l.raw)
	if err != nil {
		return nil, err
	}
	s.view(r)
	return &crowdgatev1.StartSessionResponse{Session: r.session, Code: l.Code, RedirectUrl: l.RedirectURL}, nil
}

// GetSession returns one of the caller's sessions.
func (s *Service) GetSession(ctx context.Context, req *crowdgatev1.GetSessionRequest) (*crowdgatev1.GetSessionResponse, error) {
	if req.GetSessionId() == "" {
		return nil, serviceerror.NewInvalidArgument("session_id", "required")
	}
	sess, err := s.Get(ctx, tenant.FromContext(ctx), req.GetSessionId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetSessionResponse{Session: sess}, nil
}

// EndSession ends one of the caller's sessions, as ENDED (the default) or
// REVOKED.
func (s *Service) EndSession(ctx context.Context, req *crowdgatev1.EndSessionRequest) (*crowdgatev1.EndSessionResponse, error) {
	if req.GetSessionId() == "" {
		return nil, serviceerror.NewInvalidArgument("session_id", "required")
	}
	reason := req.GetReason()
	switch reason {
	case crowdgatev1.EndReason_END_REASON_UNSPECIFIED:
		reason = crowdgatev1.EndReason_END_REASON_ENDED
	case crowdgatev1.EndReason_END_REASON_ENDED, crowdgatev1.EndReason_END_REASON_REVOKED:
	default:
		return nil, serviceerror.NewInvalidArgument("reason", "EndSession takes END_REASON_ENDED or END_REASON_REVOKED")
	}
	sess, err := s.End(ctx, tenant.FromContext(ctx), req.GetSessionId(), reason)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.EndSessionResponse{Session: sess}, nil
}

// ExchangeCode trades a one-time code for a signed token.
func (s *Service) ExchangeCode(ctx context.Context, req *crowdgatev1.ExchangeCodeRequest) (*crowdgatev1.ExchangeCodeResponse, error) {
	return s.Exchange(ctx, tenant.FromContext(ctx), req.GetCode())
}

// tryThrice runs f up to three times, 100 ms and then 200 ms apart, until
// it succeeds, and returns its last error: for a write that must follow
// another, tried again briefly before giving up.
func tryThrice(f func() error) error {
	var err error
	for try := range 3 {
		if err = f(); err == nil {
			return nil
		}
		if try < 2 {
			time.Sleep(time.Duration(100<<try) * time.Millisecond)
		}
	}
	return err
}
