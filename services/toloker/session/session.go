// Package session holds Tolokers' sessions on the partner platform in Redis.
//
// A session is a Toloker's stay on the platform for one Toloka assignment.
// It starts when the Toloker lands (Crowdgate's landing, or StartSession
// from a platform with its own landing): the assignment id is resolved with
// GET /api/v1/assignments/{id} using the credential of the project that owns
// the assignment's pool, and only an ACTIVE assignment of a pool Crowdgate
// manages starts one. The Toloker's user_id comes from Toloka's answer only.
//
// The same assignment always maps to one session: the record is created with
// SET NX under the assignment id, so a double click, a reload or a second
// replica finds the session the first one made, and Toloka is asked once per
// assignment (a Redis lock makes concurrent first landings wait for one
// resolution; Toloka's final answers, "unknown" and "not active", are cached
// for a while too). A repeat landing is one Redis GET. Every landing mints a
// fresh one-time code, which the platform trades for a signed token with
// ExchangeCode; a code works once and for CodeTTL. Codes are authenticated
// (HMAC under Config.CodeKey) rather than stored, so a landing writes
// nothing; the exchange marks a code used.
//
// A session's record expires with the pool's assignment_max_duration_seconds
// plus a margin (its Redis TTL), and a session ends earlier on close_session,
// on Toloka's flags (restricted, filtered out) or explicitly (EndSession,
// ENDED or REVOKED). An ended session stays readable until it expires, so a
// reload shows "ended" rather than starting over.
//
// Redis layout (P is the configured prefix; the assignment id is the hash
// tag of every per-session key, so they share one Cluster slot):
//
//	P ses:{aid}            the session record (see record.go), TTL = expiry
//	P ses-used:{aid}:<n>   a used one-time code (n is its nonce), until it expires + MaxClockSkew
//	P ses-neg:{aid}        Toloka's cached final "no" for the assignment
//	P ses-lock:{aid}       the resolve lock while Toloka is asked
//	P ses-live:{tenant/pool} sorted set of active session ids by expiry
package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Pools finds Crowdgate's pools; *pool.Service implements it.
type Pools interface {
	// ByTolokaID returns the pools (of any tenant) with this Toloka pool id.
	ByTolokaID(ctx context.Context, tolokaPoolID string) ([]*crowdgatev1.Pool, error)
}

// Projects reads projects; *project.Service implements it.
type Projects interface {
	// Get returns a tenant's project.
	Get(ctx context.Context, tenantID, projectID string) (*crowdgatev1.Project, error)
}

// Credentials opens Toloka accounts; *credential.Service implements it.
type Credentials interface {
	// Account returns the Toloka account of a tenant's credential.
	Account(ctx context.Context, tenantID, credentialID string) (*toloka.Account, error)
}

// MaxClockSkew is how far apart replicas' clocks may be for one-time codes
// to stay single-use: a code's used-marker outlives the code by it, and a
// code whose expiry lies further than CodeTTL plus it in the future is
// refused.
const MaxClockSkew = 5 * time.Minute

// Defaults for Config's zero fields.
const (
	DefaultCodeTTL        = time.Minute
	DefaultExpiryMargin   = 15 * time.Minute
	DefaultResolveTimeout = 10 * time.Second
	DefaultNotFoundTTL    = 10 * time.Second
	DefaultNotActiveTTL   = 10 * time.Minute
	// DefaultReturnURL is Toloka's task list, where a Toloker goes back to
	// when a project sets no return_url.
	DefaultReturnURL = "https://toloka.ai/tasks"
	// defaultMaxDuration bounds a session whose pool has no
	// assignment_max_duration_seconds (Toloka requires one; this is a guard).
	defaultMaxDuration = time.Hour
)

// Config is what the service is built from.
type Config struct {
	// Redis keeps the sessions; Prefix starts every key.
	Redis  redis.UniversalClient
	Prefix string
	// LandingRedis, when set, runs the landing's scripts (Land,
	// StartSession) instead of Redis: give it AutoPipelined(Redis), which
	// batches concurrent landings' commands into pipelines. Everything
	// else (code exchange, End, RecordSubmit) uses Redis.
	LandingRedis redis.UniversalClient
	// Pools, Projects and Credentials are the requester flow's catalog.
	Pools       Pools
	Projects    Projects
	Credentials Credentials
	// Signer signs the tokens ExchangeCode returns.
	Signer *token.Signer
	// CodeKey authenticates one-time codes (CodeKeySize bytes). Replicas
	// that share Redis must share it: the gateway derives it from the
	// encryption key. Nil makes a random one, good for one replica only.
	CodeKey []byte
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
	NotFoundTTL  time.Duration
	NotActiveTTL time.Duration
	// DefaultReturnURL is the return URL of projects that set none
	// (DefaultReturnURL when empty).
	DefaultReturnURL string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives errors worth an operator's attention (never a secret).
	Log *slog.Logger
	// Metrics, when set, registers the service's metrics.
	Metrics prometheus.Registerer
}

// Service implements crowdgatev1.SessionServiceServer and the session
// operations other capabilities use (Get, End, RecordSubmit, LiveCount).
type Service struct {
	crowdgatev1.UnimplementedSessionServiceServer
	cfg     Config
	codes   *codeMinter
	metrics *metrics
}

// NewService returns the session service.
func NewService(cfg Config) *Service {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.CodeTTL, DefaultCodeTTL)
	def(&cfg.ExpiryMargin, DefaultExpiryMargin)
	def(&cfg.ResolveTimeout, DefaultResolveTimeout)
	def(&cfg.NotFoundTTL, DefaultNotFoundTTL)
	def(&cfg.NotActiveTTL, DefaultNotActiveTTL)
	if cfg.DefaultReturnURL == "" {
		cfg.DefaultReturnURL = DefaultReturnURL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.LandingRedis == nil {
		cfg.LandingRedis = cfg.Redis
	}
	key := cfg.CodeKey
	if len(key) == 0 {
		key = make([]byte, CodeKeySize)
		_, _ = rand.Read(key)
	}
	return &Service{cfg: cfg, codes: newCodeMinter(key), metrics: newMetrics(cfg.Metrics)}
}

// AutoPipelined returns a client that batches the commands of concurrent
// callers into pipelines over rdb (go-redis's blocking AutoPipeline: each
// call still waits for its own answer), or rdb itself when it cannot. Under
// many concurrent landings this saves system calls on both sides: in
// BenchmarkLanding/warm it cuts the CPU a landing costs by about 30%. A batch that fails on the network may be
// resent whole, so give it only commands that are safe to repeat: the
// landing's scripts and rate limits are (a repeat re-reads a session, or
// spends a slot twice); the code exchange is not, and does not use it.
func AutoPipelined(rdb redis.UniversalClient) redis.UniversalClient {
	c, ok := rdb.(interface {
		AutoPipeline() (*redis.AutoPipeliner, error)
	})
	if !ok {
		return rdb
	}
	ap, err := c.AutoPipeline()
	if err != nil {
		return rdb
	}
	return ap
}

// Keys.

func (s *Service) sessionKey(aid string) string { return s.cfg.Prefix + "ses:{" + aid + "}" }
func (s *Service) usedKey(aid, nonce string) string {
	return s.cfg.Prefix + "ses-used:{" + aid + "}:" + nonce
}
func (s *Service) negKey(aid string) string  { return s.cfg.Prefix + "ses-neg:{" + aid + "}" }
func (s *Service) lockKey(aid string) string { return s.cfg.Prefix + "ses-lock:{" + aid + "}" }
func (s *Service) liveKey(tenantID, poolID string) string {
	return s.cfg.Prefix + "ses-live:{" + tenantID + "/" + poolID + "}"
}

// Errors a landing shows to a Toloker.

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

// Scripts. Every key of one call shares the assignment's hash tag.

// landScript answers a first landing from Redis: the session if one exists
// {1, record}; else a cached final answer {2, answer}; else it takes the
// resolve lock {3}, or reports that another landing holds it {4}.
var landScript = redis.NewScript(`
local s = redis.call('GET', KEYS[1])
if s then
  return {1, s}
end
local n = redis.call('GET', KEYS[2])
if n then
  return {2, n}
end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) then
  return {3}
end
return {4}
`)

// createScript stores a new session unless one exists, releases the
// resolve lock, and returns {created, record} of whichever session is
// stored.
var createScript = redis.NewScript(`
local created = 0
local s = ARGV[1]
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  created = 1
else
  s = redis.call('GET', KEYS[1])
end
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
if not s then
  return {0, ''}
end
return {created, s}
`)

// releaseScript stores a final answer (when ARGV[2] is not empty) and
// releases the resolve lock if this landing holds it.
var releaseScript = redis.NewScript(`
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
`)

// exchangeScript marks a code used (KEYS[1], for ARGV[1] ms) and returns
// the session's record (nil when the code was used before, "" when the
// session is gone).
var exchangeScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return false
end
return redis.call('GET', KEYS[2]) or ''
`)

// liveAddScript lists an active session under its pool until it expires,
// dropping entries that expired, and keeps the index alive as long as its
// longest session.
var liveAddScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`)

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
	bin, ok := assignmentBin(assignmentID)
	if !ok {
		_, err := ParseAssignmentID("assignment_id", assignmentID)
		return nil, err
	}
	return s.find(ctx, assignmentID, bin, "")
}

// find reads the assignment's session and answers with a fresh code.
func (s *Service) find(ctx context.Context, aid string, bin [assignmentBinLen]byte, onlyTenant string) (*Landing, error) {
	raw, err := s.cfg.LandingRedis.Get(ctx, s.sessionKey(aid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, storeError(err)
	}
	return s.landed(ctx, raw, bin, false, onlyTenant)
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
	return s.land(ctx, "assignment_id", assignmentID, "")
}

// land is Land, optionally only for pools of one tenant.
func (s *Service) land(ctx context.Context, field, aid, onlyTenant string) (*Landing, error) {
	bin, ok := assignmentBin(aid)
	if !ok {
		_, err := ParseAssignmentID(field, aid)
		return nil, err
	}
	// The warm path: a repeat landing finds its session.
	if l, err := s.find(ctx, aid, bin, onlyTenant); !errors.Is(err, ErrNoSession) {
		return l, err
	}
	keys := []string{s.sessionKey(aid), s.negKey(aid), s.lockKey(aid)}
	lockToken := newLockToken() // unique to this landing
	lockTTL := s.cfg.ResolveTimeout + 2*time.Second
	deadline := time.Now().Add(lockTTL)
	for {
		res, err := landScript.Run(ctx, s.cfg.LandingRedis, keys, lockTTL.Milliseconds(), lockToken).Slice()
		if err != nil {
			return nil, storeError(err)
		}
		switch kind, _ := res[0].(int64); kind {
		case 1:
			raw, _ := res[1].(string)
			return s.landed(ctx, []byte(raw), bin, false, onlyTenant)
		case 2:
			answer, _ := res[1].(string)
			return nil, cachedAnswer(aid, answer)
		case 3:
			return s.resolveAndCreate(ctx, aid, bin, keys, lockToken, onlyTenant)
		}
		// Another landing is asking Toloka: wait for its answer.
		if time.Now().After(deadline) {
			return nil, &serviceerror.Unavailable{Message: "Toloka is slow to answer about this assignment; try again"}
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
func (s *Service) landed(ctx context.Context, raw []byte, bin [assignmentBinLen]byte, created bool, onlyTenant string) (*Landing, error) {
	active, base, suffix, _, err := redirectSlices(raw)
	if err != nil {
		return nil, err
	}
	if active && onlyTenant == "" {
		// The warm path: no protobuf decoding. (An active record is never
		// past its expiry: its key's TTL is the expiry.)
		return newLanding(base, suffix, s.codes.mint(bin, s.cfg.Now().Add(s.cfg.CodeTTL)), created, raw), nil
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
	return newLanding(base, suffix, s.codes.mint(bin, s.cfg.Now().Add(s.cfg.CodeTTL)), created, raw), nil
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

// view presents a record as of now: an active session past its expiry is
// ENDED with reason EXPIRED.
func (s *Service) view(r *record) {
	if r.active() && !s.cfg.Now().Before(r.session.GetExpireTime().AsTime()) {
		r.session.State = crowdgatev1.SessionState_SESSION_STATE_ENDED
		r.session.EndReason = crowdgatev1.EndReason_END_REASON_EXPIRED
		r.session.EndTime = r.session.GetExpireTime()
	}
}

// negative is a final answer from the catalog or Toloka, remembered for a
// while so repeats do not ask again.
type negative struct {
	err    error
	answer string // "" when not to be remembered
	ttl    time.Duration
}

func (n *negative) Error() string { return n.err.Error() }
func (n *negative) Unwrap() error { return n.err }

func cachedAnswer(aid, answer string) error {
	if len(answer) > 2 && answer[:2] == "s:" {
		return &NotActiveError{AssignmentID: aid, Status: answer[2:]}
	}
	return &serviceerror.NotFound{Resource: "assignment", ID: aid}
}

// resolveAndCreate asks Toloka (holding the resolve lock) and stores the
// session.
func (s *Service) resolveAndCreate(ctx context.Context, aid string, bin [assignmentBinLen]byte, keys []string, lockToken, onlyTenant string) (*Landing, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ResolveTimeout)
	r, err := s.resolve(rctx, aid, bin, onlyTenant)
	cancel()
	if err != nil {
		answer, ttl := "", time.Duration(0)
		var neg *negative
		if errors.As(err, &neg) {
			answer, ttl, err = neg.answer, neg.ttl, neg.err
		}
		if rerr := releaseScript.Run(context.WithoutCancel(ctx), s.cfg.LandingRedis, []string{keys[2], keys[1]}, lockToken, answer, ttl.Milliseconds()).Err(); rerr != nil {
			s.cfg.Log.Warn("session: releasing the resolve lock failed", "assignment_id", aid, "err", rerr)
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
	ttl := r.session.GetExpireTime().AsTime().Sub(s.cfg.Now())
	res, err := createScript.Run(ctx, s.cfg.LandingRedis, []string{keys[0], keys[2]}, raw, ttl.Milliseconds(), lockToken).Slice()
	if err != nil {
		return nil, storeError(err)
	}
	created := res[0].(int64) == 1
	stored, _ := res[1].(string)
	if stored == "" {
		return nil, &serviceerror.Unavailable{Message: "the session expired while it was being started; try again"}
	}
	if created {
		s.metrics.started.Inc()
		ms := r.session.GetExpireTime().AsTime().UnixMilli()
		if err := liveAddScript.Run(ctx, s.cfg.LandingRedis, []string{s.liveKey(r.session.TenantId, r.session.PoolId)}, r.session.SessionId, ms, s.cfg.Now().UnixMilli()).Err(); err != nil {
			s.cfg.Log.Warn("session: listing a live session failed", "session_id", r.session.SessionId, "err", err)
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
		s.cfg.Log.Error("session: Toloka answered another user for an assignment bound to a session",
			"assignment_id", aid, "session_id", existing.session.GetSessionId())
		return nil, serviceerror.NewFailedPrecondition("assignment %s is bound to another Toloker's session", aid)
	}
	return s.landed(ctx, []byte(stored), bin, false, onlyTenant)
}

// resolve finds the assignment's pool, asks Toloka about it with the
// credential of the pool's project, and builds the session.
func (s *Service) resolve(ctx context.Context, aid string, bin [assignmentBinLen]byte, onlyTenant string) (*record, error) {
	tolokaPoolID, _ := ParseAssignmentID("assignment_id", aid)
	notFound := &negative{err: &serviceerror.NotFound{Resource: "assignment", ID: aid}, answer: "n", ttl: s.cfg.NotFoundTTL}
	if s.cfg.Pools == nil || s.cfg.Projects == nil || s.cfg.Credentials == nil {
		return nil, &serviceerror.Unavailable{Message: "sessions are not configured with a catalog"}
	}
	pools, err := s.cfg.Pools.ByTolokaID(ctx, tolokaPoolID)
	if err != nil && !isNotFound(err) {
		return nil, unavailable("looking up the pool", err)
	}
	var candidates []*crowdgatev1.Pool
	for _, p := range pools {
		if p.GetTolokaPoolId() != tolokaPoolID {
			continue
		}
		if onlyTenant != "" && p.GetTenantId() != onlyTenant {
			notFound.answer = "" // another tenant's: not a final answer for everyone
			continue
		}
		candidates = append(candidates, p)
	}
	var transient error
	for _, p := range candidates {
		prj, err := s.cfg.Projects.Get(ctx, p.GetTenantId(), p.GetProjectId())
		if err != nil {
			if !isNotFound(err) {
				transient = err
			}
			continue
		}
		acct, err := s.cfg.Credentials.Account(ctx, p.GetTenantId(), prj.GetCredentialId())
		if err != nil {
			if !isNotFound(err) {
				transient = err
				s.cfg.Log.Warn("session: the project's credential cannot be used", "project_id", prj.GetProjectId(), "err", err)
			}
			continue
		}
		a, err := acct.GetAssignment(ctx, aid)
		if err != nil {
			var pd *serviceerror.PermissionDenied
			switch {
			case isNotFound(err), errors.As(err, &pd):
				s.metrics.resolved("not_found")
			default:
				s.metrics.resolved("error")
				transient = err
			}
			continue
		}
		if a.PoolID != p.GetTolokaPoolId() || (a.ID != "" && a.ID != aid) {
			s.metrics.resolved("foreign")
			continue
		}
		if a.Status != toloka.AssignmentActive {
			s.metrics.resolved("not_active")
			return nil, &negative{err: &NotActiveError{AssignmentID: aid, Status: string(a.Status)}, answer: "s:" + string(a.Status), ttl: s.cfg.NotActiveTTL}
		}
		if a.UserID == "" {
			s.metrics.resolved("error")
			transient = errors.New("Toloka answered an assignment without user_id")
			continue
		}
		s.metrics.resolved("active")
		return s.newRecord(aid, bin, p, prj, a.UserID)
	}
	if transient != nil {
		return nil, unavailable("asking Toloka about the assignment", transient)
	}
	return nil, notFound
}

// newRecord builds a new active session.
func (s *Service) newRecord(aid string, bin [assignmentBinLen]byte, p *crowdgatev1.Pool, prj *crowdgatev1.Project, userID string) (*record, error) {
	base, suffix, err := splitPlatformURL(prj.GetPlatformUrl())
	if err != nil {
		s.cfg.Log.Error("session: the project's platform_url cannot be redirected to", "project_id", prj.GetProjectId(), "err", err)
		return nil, &serviceerror.Unavailable{Message: "the project's platform is not configured correctly"}
	}
	audience := prj.GetPlatformAudience()
	if audience == "" {
		audience = audienceOf(prj.GetPlatformUrl())
	}
	returnURL := prj.GetReturnUrl()
	if returnURL == "" {
		returnURL = s.cfg.DefaultReturnURL
	}
	maxDuration := time.Duration(p.GetAssignmentMaxDurationSeconds()) * time.Second
	if maxDuration <= 0 {
		maxDuration = defaultMaxDuration
	}
	now := s.cfg.Now()
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
			ExpireTime:   timestamppb.New(now.Add(maxDuration + s.cfg.ExpiryMargin)),
			ReturnUrl:    returnURL,
			RewardTotal:  money.Zero.String(),
		},
		redirectBase:   base,
		redirectSuffix: suffix,
		audience:       audience,
		tolokaPoolID:   p.GetTolokaPoolId(),
	}, nil
}

// Exchange trades a one-time code for a token. The code is consumed
// whatever the outcome. Errors: InvalidArgument (malformed code), NotFound
// (unknown, used or expired code, or another tenant's),
// FailedPrecondition (the session has ended).
func (s *Service) Exchange(ctx context.Context, tenantID, code string) (*crowdgatev1.ExchangeCodeResponse, error) {
	if code == "" {
		return nil, serviceerror.NewInvalidArgument("code", "required")
	}
	c, shaped, authentic := s.codes.parseCode(code)
	if !shaped {
		return nil, serviceerror.NewInvalidArgument("code", "not a code from Crowdgate's redirect")
	}
	notFound := &serviceerror.NotFound{Resource: "code", ID: ""}
	// A code lives CodeTTL by the clock of the replica that minted it. One
	// that claims to live longer than CodeTTL plus the clock skew allowed
	// between replicas was not minted by a sane clock; refuse it, so that
	// the used-marker, which outlives the code by that skew, is always
	// there while another replica could still accept the code.
	left := c.expiry.Sub(s.cfg.Now())
	if !authentic || left <= 0 || left > s.cfg.CodeTTL+MaxClockSkew {
		s.metrics.exchanged("unknown")
		return nil, notFound
	}
	raw, err := exchangeScript.Run(ctx, s.cfg.Redis, []string{s.usedKey(c.aid, c.nonce), s.sessionKey(c.aid)}, (left + MaxClockSkew).Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		s.metrics.exchanged("unknown")
		return nil, notFound
	}
	if err != nil {
		return nil, storeError(err)
	}
	if raw == "" {
		s.metrics.exchanged("unknown")
		return nil, notFound
	}
	r, err := unmarshalRecord([]byte(raw))
	if err != nil {
		return nil, err
	}
	if r.session.GetTenantId() != tenantID {
		s.metrics.exchanged("unknown")
		return nil, notFound
	}
	s.view(r)
	if !r.active() {
		s.metrics.exchanged("ended")
		return nil, &EndedError{Session: r.session}
	}
	if s.cfg.Signer == nil {
		return nil, &serviceerror.Unavailable{Message: "token signing is not configured"}
	}
	sess := r.session
	claims := token.Claims{
		TenantID:     sess.TenantId,
		ProjectID:    sess.ProjectId,
		PoolID:       sess.PoolId,
		TolokaPoolID: r.tolokaPoolID,
		AssignmentID: sess.AssignmentId,
		SessionID:    sess.SessionId,
	}
	claims.Subject = sess.UserId
	claims.Audience = []string{r.audience}
	claims.ExpiresAt = jwt.NewNumericDate(sess.GetExpireTime().AsTime())
	signed, exp, err := s.cfg.Signer.Sign(ctx, claims)
	if err != nil {
		return nil, err
	}
	s.metrics.exchanged("ok")
	return &crowdgatev1.ExchangeCodeResponse{Token: signed, ExpireTime: timestamppb.New(exp), Session: sess}, nil
}

// Get returns a tenant's session. A session past its expiry reads as ENDED
// (EXPIRED) until Redis drops it; then, like a foreign tenant's, it is
// NotFound.
func (s *Service) Get(ctx context.Context, tenantID, sessionID string) (*crowdgatev1.Session, error) {
	r, err := s.read(ctx, tenantID, sessionID)
	if err != nil {
		return nil, err
	}
	return r.session, nil
}

func (s *Service) read(ctx context.Context, tenantID, sessionID string) (*record, error) {
	aid, ok := assignmentOfSession(sessionID)
	if !ok {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	b, err := s.cfg.Redis.Get(ctx, s.sessionKey(aid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	if err != nil {
		return nil, storeError(err)
	}
	r, err := unmarshalRecord(b)
	if err != nil {
		return nil, err
	}
	if r.session.GetSessionId() != sessionID || r.session.GetTenantId() != tenantID {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	s.view(r)
	return r, nil
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
	r, err := s.update(ctx, tenantID, sessionID, func(r *record) bool {
		s.view(r)
		if !r.active() {
			return false
		}
		r.session.State = crowdgatev1.SessionState_SESSION_STATE_ENDED
		r.session.EndReason = reason
		r.session.EndTime = timestamppb.New(s.cfg.Now())
		ended = true
		return true
	})
	if err != nil {
		return nil, err
	}
	if ended {
		s.metrics.ended.WithLabelValues(reason.String()).Inc()
		if err := s.cfg.Redis.ZRem(ctx, s.liveKey(r.session.TenantId, r.session.PoolId), sessionID).Err(); err != nil {
			s.cfg.Log.Warn("session: unlisting an ended session failed", "session_id", sessionID, "err", err)
		}
	}
	return r.session, nil
}

// RecordSubmit adds one submit and its reward to a session's totals,
// exactly (also after the session ended: the submit happened in it).
func (s *Service) RecordSubmit(ctx context.Context, tenantID, sessionID string, reward money.Decimal) error {
	if reward.IsZeroValue() {
		return serviceerror.NewInvalidArgument("reward", "required")
	}
	var bad error
	_, err := s.update(ctx, tenantID, sessionID, func(r *record) bool {
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

// update changes a session's record atomically (optimistic locking with
// WATCH), keeping its TTL. change reports whether it changed the record.
func (s *Service) update(ctx context.Context, tenantID, sessionID string, change func(*record) bool) (*record, error) {
	aid, ok := assignmentOfSession(sessionID)
	if !ok {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	key := s.sessionKey(aid)
	for range 50 {
		var out *record
		err := s.cfg.Redis.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return &serviceerror.NotFound{Resource: "session", ID: sessionID}
			}
			if err != nil {
				return err
			}
			r, err := unmarshalRecord(b)
			if err != nil {
				return err
			}
			if r.session.GetSessionId() != sessionID || r.session.GetTenantId() != tenantID {
				return &serviceerror.NotFound{Resource: "session", ID: sessionID}
			}
			out = r
			if !change(r) {
				return nil
			}
			nb, err := r.marshal()
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.SetArgs(ctx, key, nb, redis.SetArgs{KeepTTL: true, Mode: "XX"})
				return nil
			})
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue // changed meanwhile: read again
		}
		if err != nil {
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return nil, err
			}
			return nil, storeError(err)
		}
		return out, nil
	}
	return nil, &serviceerror.Unavailable{Message: "the session is being changed concurrently; try again"}
}

// LiveCount returns how many sessions of a pool are active.
func (s *Service) LiveCount(ctx context.Context, tenantID, poolID string) (int64, error) {
	n, err := s.cfg.Redis.ZCount(ctx, s.liveKey(tenantID, poolID), "("+strconv.FormatInt(s.cfg.Now().UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return 0, storeError(err)
	}
	return n, nil
}

// UnfinishedWork says what sessions keep a pool from being archived, for
// example "3 live sessions"; nothing when none is active.
func (s *Service) UnfinishedWork(ctx context.Context, tenantID string, pool *crowdgatev1.Pool) ([]string, error) {
	n, err := s.LiveCount(ctx, tenantID, pool.GetPoolId())
	if err != nil {
		return nil, err
	}
	switch n {
	case 0:
		return nil, nil
	case 1:
		return []string{"1 live session"}, nil
	default:
		return []string{fmt.Sprintf("%d live sessions", n)}, nil
	}
}

// The RPCs. The tenant is the caller's (tenant.FromContext).

// StartSession resolves the assignment (within the caller's tenant) and
// returns its session and a fresh one-time code, for platforms that run
// their own landing.
func (s *Service) StartSession(ctx context.Context, req *crowdgatev1.StartSessionRequest) (*crowdgatev1.StartSessionResponse, error) {
	if req.GetAssignmentId() == "" {
		return nil, serviceerror.NewInvalidArgument("assignment_id", "required")
	}
	l, err := s.land(ctx, "assignment_id", req.GetAssignmentId(), tenant.FromContext(ctx))
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

// Helpers.

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

func unavailable(doing string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var un *serviceerror.Unavailable
	if errors.As(err, &un) {
		return &serviceerror.Unavailable{Message: "Toloka is unavailable while " + doing + ": " + un.Message}
	}
	return &serviceerror.Unavailable{Message: "unavailable while " + doing}
}

func storeError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", &serviceerror.Unavailable{Message: "the session store is unavailable"}, err)
}
