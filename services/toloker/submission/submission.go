// Package submission takes a Toloker's finished work from the partner
// platform and pays it through Toloka's POST /tasks/external/submit exactly
// once, through a durable outbox in Redis.
//
// Submit validates the request, then in one Lua script (every key in one
// Redis Cluster hash slot: the submission's shard, chosen by its retry_id,
// see layout.go) stores the submission record, the idempotency key
// (tenant, pool, retry_id) → submission id, the shard's part of the pool's
// totals and indexes, and an entry in the shard's outbox stream. Only then
// is anything sent to Toloka. The number of shards is a setting that may
// change on a running system; a retry_id is one submission whatever the
// counts of the replicas it reaches (layout.go). The accepting replica
// makes the first delivery attempt at once, under a per-submission lease,
// and answers with Toloka's flags when Toloka answers within
// Config.SyncTimeout, QUEUED otherwise.
//
// Every replica runs Run: workers of one consumer group read the outbox
// streams, take the submission's lease, post it to Toloka with the same
// retry_id every time, and record the outcome atomically with the totals:
// DELIVERED (then the stream entry is acknowledged), a retry scheduled with
// exponential backoff and jitter, or DEAD for an error Toloka will repeat
// (4xx), visible with Toloka's error until RetrySubmission requeues it.
// Entries taken by a replica that died are reclaimed by the others with
// XAUTOCLAIM once idle past Config.VisibilityTimeout.
//
// Toloka's flags act: restriction_match or a failed filter_match ends the
// Toloker's session, as does close_session.
//
// Each Submission names its assignment (the session's; for a submit by
// pool and user, the Toloker's live session's in the pool, or none), and
// the accept script indexes a pool's submissions by assignment for the
// review queue (AssignmentWork). The finish script counts each Toloker's
// delivered and dead submits and the reward delivered with the state
// change itself, so each submission is counted once, exactly; the Toloker
// registry reads those counters (TolokerPay).
package submission

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/settings"
)

// Sessions is what submissions need of Tolokers' sessions
// (*session.Service implements it).
type Sessions interface {
	// Read returns a tenant's session (NotFound when it does not exist)
	// and the version it was read at, for RecordSubmit.
	Read(ctx context.Context, tenantID, sessionID string) (*crowdgatev1.Session, string, error)
	// End ends a session; ending an ended session returns it unchanged.
	End(ctx context.Context, tenantID, sessionID string, reason crowdgatev1.EndReason) (*crowdgatev1.Session, error)
	// RecordSubmit adds one submit and its reward to a session's totals,
	// starting from the version Read returned ("" to read it again).
	RecordSubmit(ctx context.Context, tenantID, sessionID, version string, reward money.Decimal) error
	// Barred says why a Toloker may not submit to a pool without a session
	// (END_REASON_UNSPECIFIED when they may): a session of theirs there
	// was revoked or ended by Toloka's flags, and they have not landed
	// again since; or a ban covers the pool.
	Barred(ctx context.Context, tenantID, poolID, userID string) (crowdgatev1.EndReason, error)
	// LiveSession returns the Toloker's live session in the pool (the
	// newest, if several) and its assignment, "" when they have none: the
	// session a submit by pool and user belongs to.
	LiveSession(ctx context.Context, tenantID, poolID, userID string) (sessionID, assignmentID string, err error)
	// SideDoor lets a submit by pool and user into the pool while it is
	// accepted (an archive counts it, and refuses to archive meanwhile):
	// UNAVAILABLE while an archive checks the pool, FAILED_PRECONDITION
	// once it is archived. leave lets it out.
	SideDoor(ctx context.Context, tenantID, poolID string) (leave func(), err error)
}

// Settings tune the outbox. Zero durations and counts take the defaults.
type Settings struct {
	// SyncTimeout is how long Submit waits for Toloka's answer to the
	// accepting replica's first attempt before answering QUEUED; negative:
	// no attempt at accept time, the workers deliver everything.
	SyncTimeout time.Duration
	// AttemptTimeout bounds one delivery attempt (the Toloka client's own
	// quick retries of that attempt included).
	AttemptTimeout time.Duration
	// LeaseTTL is how long a delivery lease lasts; it must exceed
	// AttemptTimeout so that no two attempts of one submission are in
	// flight at once. Zero: AttemptTimeout + 5s.
	LeaseTTL time.Duration
	// VisibilityTimeout is how long an outbox entry taken by a worker may
	// stay unacknowledged before another worker reclaims it.
	VisibilityTimeout time.Duration
	// PollInterval is how often an idle worker looks for work.
	PollInterval time.Duration
	// BaseBackoff and MaxBackoff bound the wait before retrying a failed
	// delivery: BaseBackoff·2^(attempts-1) capped at MaxBackoff, of which a
	// random half is jitter, or Toloka's Retry-After when longer.
	BaseBackoff, MaxBackoff time.Duration
	// Concurrency bounds a replica's deliveries in flight.
	Concurrency int
	// MaxAttempts makes a submission DEAD after that many failed attempts.
	// Zero retries transient failures for ever: a Toloker is never left
	// unpaid because Toloka was down for a while.
	MaxAttempts int
	// MinReplicas, when positive, makes Submit WAIT until that many Redis
	// replicas have the submit (or ReplicaTimeout passes).
	MinReplicas    int
	ReplicaTimeout time.Duration
	// Retention is how long a DELIVERED submission's record, index
	// entries and idempotency key are kept after its delivery and its work
	// (queued and DEAD ones are kept until delivered). Half the shortest
	// retention any replica uses is the replay window: submits with a
	// retry_id whose work is older than that are refused, so a replay that
	// comes after its key was deleted is refused too, never paid again
	// (retention.go).
	Retention time.Duration
	// Shards is how many shards (outbox streams, Redis Cluster hash slots)
	// this replica spreads new submissions over, 1 to MaxShards. It may be
	// raised (or lowered) on a running system, one replica at a time:
	// readers cover every shard ever used, and a retry_id stays paid once
	// across replicas with different counts (layout.go).
	Shards int
}

// MinRetention bounds Settings.Retention from below.
const MinRetention = time.Minute

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("submit-sync-timeout", "CROWDGATE_SUBMIT_SYNC_TIMEOUT", "2s", "how long Submit waits for Toloka's answer before it answers QUEUED; negative: no attempt at accept time (the workers deliver every submit)", settings.Func(&s.SyncTimeout, parseSyncTimeout, time.Duration.String)),
		settings.New("submit-attempt-timeout", "CROWDGATE_SUBMIT_ATTEMPT_TIMEOUT", "10s", "bound of one delivery attempt to Toloka", settings.Duration(&s.AttemptTimeout)),
		settings.New("submit-lease-ttl", "CROWDGATE_SUBMIT_LEASE_TTL", "0s", "per-submission delivery lease, longer than the attempt timeout (0: attempt timeout + 5s)", settings.DurationOrZero(&s.LeaseTTL)),
		settings.New("submit-visibility-timeout", "CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT", "30s", "idle time after which another replica reclaims an outbox entry a replica took (a crashed replica's work)", settings.Duration(&s.VisibilityTimeout)),
		settings.New("submit-poll-interval", "CROWDGATE_SUBMIT_POLL_INTERVAL", "200ms", "how often an idle delivery worker looks for due retries", settings.Duration(&s.PollInterval)),
		settings.New("submit-base-backoff", "CROWDGATE_SUBMIT_BASE_BACKOFF", "1s", "first wait before retrying a failed delivery (doubles, with jitter)", settings.Duration(&s.BaseBackoff)),
		settings.New("submit-max-backoff", "CROWDGATE_SUBMIT_MAX_BACKOFF", "5m", "longest wait between delivery retries", settings.Duration(&s.MaxBackoff)),
		settings.New("submit-concurrency", "CROWDGATE_SUBMIT_CONCURRENCY", "32", "deliveries in flight per replica", settings.Int(&s.Concurrency)),
		settings.New("submit-max-attempts", "CROWDGATE_SUBMIT_MAX_ATTEMPTS", "0", "failed delivery attempts after which a submission is DEAD (0: retry transient failures for ever)", settings.IntOrZero(&s.MaxAttempts)),
		settings.New("submit-min-replicas", "CROWDGATE_SUBMIT_MIN_REPLICAS", "0", "Redis replicas that must hold a submit before Submit answers (WAIT) (0: none, as on a standalone Redis)", settings.IntOrZero(&s.MinReplicas)),
		settings.New("submit-replica-timeout", "CROWDGATE_SUBMIT_REPLICA_TIMEOUT", "100ms", "how long Submit waits for those replicas", settings.Duration(&s.ReplicaTimeout)),
		settings.New("submission-shards", "CROWDGATE_SUBMISSION_SHARDS", strconv.Itoa(DefaultShards), "shards (outbox streams, Redis Cluster hash slots) new submissions are spread over, 1 to 1024; may be raised on a running system, one replica at a time (more shards than masters spread a pool's history over every master)", settings.Int(&s.Shards)),
		settings.New("submission-retention", "CROWDGATE_SUBMISSION_RETENTION", "720h", "how long a delivered submission, its index entries and its retry_id's idempotency key are kept after its delivery and its work (at least 1m; dead and queued ones are kept until delivered); submits with a retry_id whose work is older than half of it (the replay window) are refused, so an expired retry_id is never paid again", settings.Duration(&s.Retention)),
	}
}

// parseSyncTimeout reads CROWDGATE_SUBMIT_SYNC_TIMEOUT: a duration; a
// negative one (e.g. -1s) makes no attempt at accept time, as
// Settings.SyncTimeout says (the workers deliver everything).
func parseSyncTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d == 0 {
		return 0, fmt.Errorf("want a non-zero duration like 2s (negative: no attempt at accept time), got %q", v)
	}
	return d, nil
}

// DefaultSettings returns the settings' built-in defaults.
func DefaultSettings() Settings {
	var s Settings
	settings.Defaults(s.List())
	return s
}

// withDefaults fills zero fields from DefaultSettings.
func (s Settings) withDefaults() Settings {
	def := DefaultSettings()
	for _, d := range []struct{ got, def *time.Duration }{
		{&s.SyncTimeout, &def.SyncTimeout}, {&s.AttemptTimeout, &def.AttemptTimeout},
		{&s.VisibilityTimeout, &def.VisibilityTimeout}, {&s.PollInterval, &def.PollInterval},
		{&s.BaseBackoff, &def.BaseBackoff}, {&s.MaxBackoff, &def.MaxBackoff}, {&s.ReplicaTimeout, &def.ReplicaTimeout},
		{&s.Retention, &def.Retention},
	} {
		if *d.got == 0 {
			*d.got = *d.def
		}
	}
	if s.LeaseTTL == 0 {
		s.LeaseTTL = s.AttemptTimeout + 5*time.Second
	}
	if s.Concurrency <= 0 {
		s.Concurrency = def.Concurrency
	}
	if s.Shards == 0 {
		s.Shards = def.Shards
	}
	return s
}

// Config is what the service is built from.
type Config struct {
	// Redis holds the outbox; Prefix starts every key.
	Redis  redis.UniversalClient
	Prefix string
	// Catalog routes a pool to its Toloka pool and credential, and opens
	// the credential's account to post with.
	Catalog *catalog.Catalog
	// Sessions are the Tolokers' sessions submits come in.
	Sessions Sessions
	// Settings tune the outbox (DefaultSettings for zero fields).
	Settings Settings
	// Log receives the service's logs (slog.Default when nil).
	Log *slog.Logger
	// Metrics, when set, registers the service's metrics.
	Metrics prometheus.Registerer
	// Now is the clock of record timestamps. Default time.Now.
	Now func() time.Time
	// Events is the event log the outbox's events reach (RelayEvents);
	// required.
	Events *events.Log
	// PayRetention is how long a Toloker's pay counters (TolokerPay) are
	// kept after their last change: the gateway gives the Toloker
	// registry's retention. Zero: DefaultPayRetention.
	PayRetention time.Duration
}

// DefaultPayRetention is the pay counters' retention when Config sets none
// (the Toloker registry's default, 180 days).
const DefaultPayRetention = 180 * 24 * time.Hour

// Service implements crowdgatev1.SubmissionServiceServer and runs the
// outbox's delivery workers (Run).
type Service struct {
	crowdgatev1.UnimplementedSubmissionServiceServer
	cfg      Settings
	catalog  *catalog.Catalog
	sessions Sessions
	events   *events.Log
	rdb      redis.UniversalClient
	now      func() time.Time
	st       *store
	log      *slog.Logger
	m        *metrics
	// consumer names this replica in the consumer group.
	consumer string

	// inline tracks attempts started by Submit, so Run waits for them.
	inline sync.WaitGroup
	// wake nudges this replica's workers (a requeue).
	wake chan struct{}
	// retentions are the retentions the replicas use (retention.go).
	retentions *retentions
}

// New returns the service. It fails only on an invalid configuration.
func New(cfg Config) (*Service, error) {
	st := cfg.Settings.withDefaults()
	switch {
	case cfg.Redis == nil || cfg.Catalog == nil || cfg.Sessions == nil || cfg.Events == nil:
		return nil, errors.New("submission: Config.Redis, Catalog, Sessions and Events are required")
	case st.LeaseTTL <= st.AttemptTimeout:
		return nil, fmt.Errorf("submission: the lease (%s) must outlast a delivery attempt (%s)", st.LeaseTTL, st.AttemptTimeout)
	case st.Retention < MinRetention:
		return nil, fmt.Errorf("submission: the retention (%s) must be at least %s", st.Retention, MinRetention)
	case st.Shards < 1 || st.Shards > MaxShards:
		return nil, fmt.Errorf("submission: CROWDGATE_SUBMISSION_SHARDS: want 1 to %d shards, got %d", MaxShards, st.Shards)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PayRetention <= 0 {
		cfg.PayRetention = DefaultPayRetention
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "crowdgate"
	}
	store := newStore(cfg.Redis, cfg.Prefix, cfg.PayRetention)
	return &Service{
		cfg:      st,
		catalog:  cfg.Catalog,
		sessions: cfg.Sessions,
		events:   cfg.Events,
		rdb:      cfg.Redis,
		now:      cfg.Now,
		st:       store,
		log:      cfg.Log.With(slog.String("component", "submission")),
		m:        m,
		consumer: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(4)),
		wake:     make(chan struct{}, 1),
		retentions: &retentions{rdb: cfg.Redis, key: cfg.Prefix + "subret", own: st.Retention,
			layoutKey: cfg.Prefix + "sublayout", ownLayout: layoutName(st.Shards), shards: st.Shards, streamKey: store.streamKey},
	}, nil
}

// Submit records the work durably, then delivers it; see the package doc.
func (s *Service) Submit(ctx context.Context, req *crowdgatev1.SubmitRequest) (*crowdgatev1.SubmitResponse, error) {
	in, err := validateSubmit(req)
	if err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	now := s.now()
	poolID, userID := req.GetPoolId(), req.GetUserId()
	var (
		sess         *crowdgatev1.Session
		version      string // of sess, as read
		assignmentID string
		// liveSessionID is the session of a submit without session_id:
		// the Toloker's live session in the pool, if any.
		liveSessionID string
		// refused is the side door's refusal of a submit with a retry_id,
		// answered unless the submit is a replay.
		refused error
	)
	if req.GetSessionId() != "" {
		if sess, version, err = s.sessions.Read(ctx, tenantID, req.GetSessionId()); err != nil {
			return nil, err
		}
		if poolID != "" && poolID != sess.GetPoolId() {
			return nil, serviceerror.NewInvalidArgument("session_id", "the session belongs to pool %s, not %s", sess.GetPoolId(), poolID)
		}
		if userID != "" && userID != sess.GetUserId() {
			return nil, serviceerror.NewInvalidArgument("session_id", "the session belongs to another Toloker than user_id %s", userID)
		}
		poolID, userID, assignmentID = sess.GetPoolId(), sess.GetUserId(), sess.GetAssignmentId()
	}
	route, err := s.catalog.Route(ctx, tenantID, poolID)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		// The side door: a submit by pool and user pays the Toloker too, so
		// it follows the rule a revoked session follows.
		//
		// A refusal of the side door (a bar, an archive) answers at once a
		// submit without a retry_id. With one, it is accept's rejection,
		// which answers replays first: a resend of a submit accepted
		// before the refusal (the flags that barred the Toloker may be its
		// own answer's) is still answered as a replay.
		refuse := func(err error) error {
			if req.GetRetryId() == "" {
				return err
			}
			refused = err
			return nil
		}
		reason, err := s.sessions.Barred(ctx, tenantID, poolID, userID)
		if err != nil {
			return nil, err
		}
		if reason != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
			if err := refuse(serviceerror.NewFailedPrecondition("Toloker %s may not submit to pool %s: their session there ended (%s); a new landing opens a new session",
				userID, poolID, reason)); err != nil {
				return nil, err
			}
		}
		// The work is the live session's, if the Toloker has one there: its
		// assignment's, counted in its totals, and a close_session submit
		// ends it. The session's own rules (its expiry, the replay window's
		// use of it) stay those of submits that name it.
		if refused == nil {
			if liveSessionID, assignmentID, err = s.sessions.LiveSession(ctx, tenantID, poolID, userID); err != nil {
				return nil, err
			}
		}
		if refused == nil && liveSessionID == "" {
			// Let in as a session is: never into a pool being archived (a
			// live session keeps the archive off by itself).
			leave, err := s.sessions.SideDoor(ctx, tenantID, poolID)
			if err != nil {
				if err := refuse(err); err != nil {
					return nil, err
				}
			} else {
				defer leave()
			}
		}
	}

	fingerprint := in.fingerprint(poolID, userID)
	// A submit the session or the replay window refuses writes nothing,
	// but a replay of one accepted earlier is still answered (accept.lua).
	rejectField, reject := "session_id", sessionProblem(sess, now)
	if reject == "" {
		if rejectField, reject, err = s.staleWork(ctx, in, sess, req.GetRetryId() != "", now); err != nil {
			return nil, err
		}
	}
	if reject == "" && refused != nil {
		reject = refused.Error()
	} else {
		refused = nil // another rejection answers
	}
	place, err := s.place(ctx, tenantID, poolID, req.GetRetryId(), reject != "", now)
	if err != nil {
		return nil, err
	}
	if place.replayOf != "" {
		return s.replay(ctx, tenantID, place.replayOf, fingerprint, sess)
	}
	shard := place.shard
	sub := &crowdgatev1.Submission{
		TenantId:           tenantID,
		ProjectId:          route.ProjectID,
		PoolId:             poolID,
		UserId:             userID,
		SessionId:          cmp.Or(sess.GetSessionId(), liveSessionID),
		RetryId:            req.GetRetryId(),
		Reward:             in.reward.String(),
		CloseSession:       req.CloseSession,
		CustomLog:          req.GetCustomLog(),
		StartTime:          req.GetStartTime(),
		EndTime:            req.GetEndTime(),
		Skipped:            req.Skipped,
		GoldenTasksCount:   req.GoldenTasksCount,
		TrainingTasksCount: req.TrainingTasksCount,
		RealTasksCount:     req.RealTasksCount,
		CreateTime:         timestamppb.New(now),
		AssignmentId:       assignmentID,
	}
	if in.quality != nil {
		sub.Quality = in.quality.String()
	}
	var token string
	if s.cfg.SyncTimeout > 0 {
		token = randomHex(12)
	}
	var (
		id  string
		res acceptResult
	)
	for hops := 0; ; hops++ {
		// The id ends with its shard: made again when the retry_id
		// turns out to belong to another shard (layout.go).
		id = newID(now, shard)
		sub.SubmissionId = id
		if req.GetRetryId() == "" {
			// Deterministic per submission: the same on every attempt.
			sub.RetryId = id
		}
		body, err := proto.Marshal(sub)
		if err != nil {
			return nil, fmt.Errorf("encode submission: %w", err)
		}
		res, err = s.st.accept(ctx, acceptArgs{
			shard: shard, tenantID: tenantID, poolID: poolID, id: id, sessionID: sub.GetSessionId(), userID: userID, assignmentID: assignmentID,
			retryID: sub.GetRetryId(), useIdem: req.GetRetryId() != "", reject: reject,
			body: body, units: in.units, tolokaPoolID: route.TolokaPoolID, credentialID: route.CredentialID,
			fingerprint: fingerprint, leaseToken: token, leaseTTL: s.cfg.LeaseTTL, claims: place.claims, check: place.check,
			minReplicas: s.cfg.MinReplicas, replicaTimeout: s.cfg.ReplicaTimeout,
		})
		if err != nil && req.GetRetryId() == "" {
			return nil, unconfirmedWithoutRetryID(err)
		}
		if err != nil {
			return nil, err
		}
		if res.kind != "forward" {
			break
		}
		if hops == 1 {
			return nil, errTooManyForwards
		}
		// The arbiter's claim gives the retry_id to res.shard (not the
		// arbiter's shard, so nothing more to read there).
		place.claims = append(place.claims, place.checkClaim)
		shard, place.check = res.shard, ""
	}
	switch res.kind {
	case "reject":
		if refused != nil {
			return nil, refused
		}
		return nil, serviceerror.NewInvalidArgument(rejectField, "%s", res.reason)
	case "replay":
		return s.replay(ctx, tenantID, res.id, fingerprint, sess)
	}
	if res.replicas >= 0 && res.replicas < int64(s.cfg.MinReplicas) {
		s.m.replicaShortfall.Inc()
		s.log.Warn("submission: fewer Redis replicas than asked acknowledged the submit",
			slog.String("submission_id", id), slog.Int64("replicas", res.replicas), slog.Int("want", s.cfg.MinReplicas))
	}
	s.m.received.Inc()
	if sid := sub.GetSessionId(); sid != "" {
		// The submit is stored: its totals are added even when the caller
		// has gone meanwhile. A side-door submit counts in the live session
		// it belongs to (read again: version "").
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordSubmitTimeout)
		err := s.sessions.RecordSubmit(rctx, tenantID, sid, version, in.reward)
		cancel()
		if err != nil {
			s.log.Warn("submission: could not add the submit to the session's totals",
				slog.String("submission_id", id), slog.String("session_id", sid), slog.String("error", err.Error()))
		}
	}
	sub.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED
	sub.NextAttemptTime = timestamppb.New(now)
	if token != "" {
		sub = s.deliverNow(ctx, job{
			e:     entry{shard: shard, entryID: res.entryID, tenantID: tenantID, id: id},
			sub:   sub,
			token: token, tolokaPoolID: route.TolokaPoolID, credentialID: route.CredentialID,
		})
	}
	resp := s.response(ctx, sub, sess, false)
	if endReason(sub) == crowdgatev1.EndReason_END_REASON_CLOSE_SESSION {
		// Flags end the session in the delivery itself; close_session here.
		s.endSession(ctx, sub, resp)
	}
	return resp, nil
}

// recordSubmitTimeout bounds adding a stored submit to its session's
// totals once the caller has gone.
const recordSubmitTimeout = 5 * time.Second

// sessionProblem says why a session takes no more submits ("" when it does).
func sessionProblem(sess *crowdgatev1.Session, now time.Time) string {
	if sess == nil {
		return ""
	}
	if sess.GetState() == crowdgatev1.SessionState_SESSION_STATE_ENDED {
		if sess.GetEndReason() == crowdgatev1.EndReason_END_REASON_EXPIRED {
			return "the session has expired"
		}
		return "the session has ended (" + sess.GetEndReason().String() + ")"
	}
	if exp := sess.GetExpireTime(); exp != nil && !now.Before(exp.AsTime()) {
		return "the session has expired"
	}
	return ""
}

// deliverNow makes the accepting replica's first attempt in the background
// and waits up to SyncTimeout for it. It returns the submission as known
// when Submit must answer.
func (s *Service) deliverNow(ctx context.Context, j job) *crowdgatev1.Submission {
	done := make(chan *crowdgatev1.Submission, 1)
	s.inline.Add(1)
	go func() {
		defer s.inline.Done()
		s.deliver(context.WithoutCancel(ctx), j)
		r, err := s.st.get(context.WithoutCancel(ctx), j.e.shard, j.e.tenantID, j.e.id)
		if err != nil {
			done <- nil
			return
		}
		done <- r.sub
	}()
	t := time.NewTimer(s.cfg.SyncTimeout)
	defer t.Stop()
	select {
	case got := <-done:
		if got != nil {
			return got
		}
	case <-t.C:
	case <-ctx.Done():
	}
	return j.sub
}

// replay answers a Submit whose retry_id was seen: the first submission as
// it is now, nothing more paid.
func (s *Service) replay(ctx context.Context, tenantID, id, fingerprint string, sess *crowdgatev1.Session) (*crowdgatev1.SubmitResponse, error) {
	shard, ok := parseID(id)
	if !ok {
		return nil, fmt.Errorf("submission: idempotency key holds %q, not a submission id", id)
	}
	r, err := s.st.get(ctx, shard, tenantID, id)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		// Deleted by the retention sweep since the accept script found its
		// key: sent again, the submit meets the replay window.
		return nil, &serviceerror.Unavailable{Message: "the submission this retry_id names expired while it was being read; send the submit again", RetryAfter: time.Second}
	}
	if err != nil {
		return nil, err
	}
	if r.fingerprint != fingerprint {
		return nil, serviceerror.NewInvalidArgument("retry_id",
			"was already used for a different submit (submission %s); a retry_id names one piece of work", id)
	}
	s.m.replayed.Inc()
	resp := s.response(ctx, r.sub, sess, true)
	s.endSession(ctx, r.sub, resp)
	return resp, nil
}

// endReason is why a submission ends its Toloker's session, if it does.
func endReason(sub *crowdgatev1.Submission) crowdgatev1.EndReason {
	if f := sub.GetFlags(); f != nil && sub.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
		if f.GetRestrictionMatch() {
			return crowdgatev1.EndReason_END_REASON_RESTRICTED
		}
		if !f.GetFilterMatch() {
			return crowdgatev1.EndReason_END_REASON_FILTERED_OUT
		}
	}
	if sub.GetCloseSession() {
		return crowdgatev1.EndReason_END_REASON_CLOSE_SESSION
	}
	return crowdgatev1.EndReason_END_REASON_UNSPECIFIED
}

func (s *Service) response(ctx context.Context, sub *crowdgatev1.Submission, sess *crowdgatev1.Session, replayed bool) *crowdgatev1.SubmitResponse {
	resp := &crowdgatev1.SubmitResponse{Submission: sub, Replayed: replayed}
	if r := endReason(sub); r != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
		resp.SessionEnded = true
		resp.SessionEndReason = r.String()
		resp.ReturnUrl = s.returnURL(ctx, sub, sess)
	}
	return resp
}

// returnURL is where the Toloker goes back to when the submit ends their
// session: the session's (the project's, or the default), or the project's
// for a submit without a session.
func (s *Service) returnURL(ctx context.Context, sub *crowdgatev1.Submission, sess *crowdgatev1.Session) string {
	if sess != nil {
		return sess.GetReturnUrl()
	}
	prj, err := s.catalog.Project(ctx, sub.GetTenantId(), sub.GetProjectId())
	if err != nil {
		s.log.Warn("submission: could not read the project's return_url", slog.String("project_id", sub.GetProjectId()), slog.String("error", err.Error()))
		return ""
	}
	return prj.GetReturnUrl()
}

// endSession ends the submission's session when the answer says it ended.
// Ending an ended session changes nothing, so replays may repeat it.
func (s *Service) endSession(ctx context.Context, sub *crowdgatev1.Submission, resp *crowdgatev1.SubmitResponse) {
	if !resp.GetSessionEnded() || sub.GetSessionId() == "" {
		return
	}
	reason := endReason(sub)
	// A store that fails for a moment (a failover) is tried again briefly;
	// the delivery of a close_session submit ends the session again, so an
	// end lost here is made there.
	var err error
	for try := range 4 {
		if _, err = s.sessions.End(context.WithoutCancel(ctx), sub.GetTenantId(), sub.GetSessionId(), reason); err == nil {
			return
		}
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) || try == 3 {
			break
		}
		time.Sleep(time.Duration(100<<try) * time.Millisecond)
	}
	s.log.Warn("submission: could not end the session",
		slog.String("session_id", sub.GetSessionId()), slog.String("reason", reason.String()), slog.String("error", err.Error()))
}

// lookup reads a tenant's submission by id.
func (s *Service) lookup(ctx context.Context, id string) (*record, int, error) {
	if id == "" {
		return nil, 0, serviceerror.NewInvalidArgument("submission_id", "is required")
	}
	shard, ok := parseID(id)
	if !ok {
		return nil, 0, &serviceerror.NotFound{Resource: "submission", ID: id}
	}
	r, err := s.st.get(ctx, shard, tenant.FromContext(ctx), id)
	return r, shard, err
}

// GetSubmission returns a submission's state, attempts and Toloka's answer.
func (s *Service) GetSubmission(ctx context.Context, req *crowdgatev1.GetSubmissionRequest) (*crowdgatev1.GetSubmissionResponse, error) {
	r, _, err := s.lookup(ctx, req.GetSubmissionId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetSubmissionResponse{Submission: r.sub}, nil
}

// RetrySubmission puts a DEAD submission back in the outbox with its
// retry_id unchanged.
func (s *Service) RetrySubmission(ctx context.Context, req *crowdgatev1.RetrySubmissionRequest) (*crowdgatev1.RetrySubmissionResponse, error) {
	r, shard, err := s.lookup(ctx, req.GetSubmissionId())
	if err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	now := s.now()
	applied, err := s.st.requeue(ctx, shard, r.sub, now)
	if err != nil {
		return nil, err
	}
	if applied == "ok" && s.events != nil {
		s.events.Intended() // the submission.retried intent, for the relay
	}
	switch applied {
	case "gone":
		return nil, &serviceerror.NotFound{Resource: "submission", ID: req.GetSubmissionId()}
	case "state":
		cur, gerr := s.st.get(ctx, shard, tenantID, r.sub.GetSubmissionId())
		state := r.sub.GetState()
		if gerr == nil {
			state = cur.sub.GetState()
		}
		return nil, serviceerror.NewFailedPrecondition("submission %s is %s; only a DEAD submission can be retried",
			req.GetSubmissionId(), state)
	}
	s.m.requeued.Inc()
	// The answer is the submission as requeued, not as read again: a worker
	// may already be delivering it.
	sub := proto.CloneOf(r.sub)
	sub.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED
	sub.NextAttemptTime = timestamppb.New(now)
	s.nudge()
	return &crowdgatev1.RetrySubmissionResponse{Submission: sub}, nil
}

// GetPoolTotals returns a pool's counts and rewards, exact to the cent.
func (s *Service) GetPoolTotals(ctx context.Context, req *crowdgatev1.GetPoolTotalsRequest) (*crowdgatev1.GetPoolTotalsResponse, error) {
	if req.GetPoolId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	tenantID := tenant.FromContext(ctx)
	if _, err := s.catalog.Pool(ctx, tenantID, req.GetPoolId()); err != nil {
		return nil, err
	}
	t, err := s.poolTotals(ctx, tenantID, req.GetPoolId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetPoolTotalsResponse{Totals: &crowdgatev1.PoolTotals{
		PoolId:          req.GetPoolId(),
		Received:        t.received,
		Delivered:       t.delivered,
		Queued:          t.queued,
		Dead:            t.dead,
		RewardDelivered: formatUnits(t.rewardDelivered),
		RewardQueued:    formatUnits(t.rewardQueued),
	}}, nil
}

// poolTotals adds a pool's totals over every shard ever used.
func (s *Service) poolTotals(ctx context.Context, tenantID, poolID string) (totals, error) {
	shards, err := s.shardCount(ctx)
	if err != nil {
		return totals{}, err
	}
	return s.st.totals(ctx, shards, tenantID, poolID)
}

// PendingCount returns how many of a pool's submits are not yet delivered
// (queued) and how many are dead: the outbox's part of the archive check.
func (s *Service) PendingCount(ctx context.Context, tenantID, poolID string) (queued, dead int64, err error) {
	t, err := s.poolTotals(ctx, tenantID, poolID)
	if err != nil {
		return 0, 0, err
	}
	return t.queued, t.dead, nil
}

// nudge wakes this replica's workers.
func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("submission: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// unconfirmedWithoutRetryID is the UNAVAILABLE of a submit without a
// retry_id that could not be confirmed stored. Its write may have reached
// Redis with only the reply lost, and nothing can tell a resend of it from
// new work: the generic "try again" would invite a second payment, so the
// caller is told to look before resending.
func unconfirmedWithoutRetryID(err error) error {
	var un *serviceerror.Unavailable
	if !errors.As(err, &un) {
		return err
	}
	return &serviceerror.Unavailable{
		Message: "the submit may or may not have been stored, and without a retry_id a resend is new work that Toloka pays again: " +
			"look for it (ListSubmissions) before sending it again, and give each piece of work a retry_id to make resends safe",
		RetryAfter: un.RetryAfter, Cause: un.Cause,
	}
}
