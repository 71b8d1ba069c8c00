// Package submission takes a Toloker's finished work from the partner
// platform and pays it through Toloka's POST /tasks/external/submit exactly
// once, through a durable outbox in Redis.
//
// Submit validates the request, then in one Lua script (every key in one
// Redis Cluster hash slot: the pool's shard) stores the submission record,
// the idempotency key (tenant, pool, retry_id) → submission id, the pool's
// totals and indexes, and an entry in the shard's outbox stream. Only then is
// anything sent to Toloka. The accepting replica makes the first delivery
// attempt at once, under a per-submission lease, and answers with Toloka's
// flags when Toloka answers within Config.SyncTimeout, QUEUED otherwise.
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
package submission

import (
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
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Sessions is what submissions need of Tolokers' sessions
// (*session.Service implements it).
type Sessions interface {
	// Get returns a tenant's session (NotFound when it does not exist).
	Get(ctx context.Context, tenantID, sessionID string) (*crowdgatev1.Session, error)
	// End ends a session; ending an ended session returns it unchanged.
	End(ctx context.Context, tenantID, sessionID string, reason crowdgatev1.EndReason) (*crowdgatev1.Session, error)
	// RecordSubmit adds one submit and its reward to a session's totals.
	RecordSubmit(ctx context.Context, tenantID, sessionID string, reward money.Decimal) error
}

// Pools reads a tenant's pools (*pool.Service implements it).
type Pools interface {
	Get(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error)
}

// Projects reads a tenant's projects (*project.Service implements it).
type Projects interface {
	Get(ctx context.Context, tenantID, projectID string) (*crowdgatev1.Project, error)
}

// Accounts gives the Toloka account of a tenant's credential
// (*credential.Service implements it).
type Accounts interface {
	Account(ctx context.Context, tenantID, credentialID string) (*toloka.Account, error)
}

// Toloka posts one external submit with a tenant's credential.
type Toloka interface {
	SubmitExternal(ctx context.Context, tenantID, credentialID string, s *toloka.ExternalSubmit) (*toloka.ExternalSubmitResult, error)
}

// ViaAccounts returns a Toloka that posts through the account Accounts
// gives for the credential.
func ViaAccounts(a Accounts) Toloka { return accountSubmitter{a} }

type accountSubmitter struct{ accounts Accounts }

func (a accountSubmitter) SubmitExternal(ctx context.Context, tenantID, credentialID string, s *toloka.ExternalSubmit) (*toloka.ExternalSubmitResult, error) {
	acct, err := a.accounts.Account(ctx, tenantID, credentialID)
	if err != nil {
		return nil, err
	}
	return acct.SubmitExternal(ctx, s)
}

// Config is what the service is built from. Zero durations and counts take
// the defaults named on each field.
type Config struct {
	// Redis holds the outbox; Prefix starts every key.
	Redis  redis.UniversalClient
	Prefix string

	// Sessions are the Tolokers' sessions submits come in.
	Sessions Sessions
	// Pools and Projects resolve a pool to its Toloka pool id, credential
	// and return URL.
	Pools    Pools
	Projects Projects
	// Toloka posts the submits (ViaAccounts in the gateway).
	Toloka Toloka

	// Log receives the service's logs (slog.Default when nil).
	Log *slog.Logger
	// Metrics, when set, registers the service's metrics.
	Metrics prometheus.Registerer

	// SyncTimeout is how long Submit waits for Toloka's answer to the
	// accepting replica's first attempt before answering QUEUED. Default 2s;
	// negative: no attempt at accept time, the workers deliver everything.
	SyncTimeout time.Duration
	// AttemptTimeout bounds one delivery attempt (the Toloka client's own
	// quick retries of that attempt included). Default 10s.
	AttemptTimeout time.Duration
	// LeaseTTL is how long a delivery lease lasts; it must exceed
	// AttemptTimeout so that no two attempts of one submission are in
	// flight at once. Default AttemptTimeout + 5s.
	LeaseTTL time.Duration
	// VisibilityTimeout is how long an outbox entry taken by a worker may
	// stay unacknowledged before another worker reclaims it. Default 30s.
	VisibilityTimeout time.Duration
	// PollInterval is how often an idle worker looks for work. Default 200ms.
	PollInterval time.Duration
	// Concurrency bounds a replica's deliveries in flight. Default 32.
	Concurrency int
	// BaseBackoff and MaxBackoff bound the wait before retrying a failed
	// delivery: BaseBackoff·2^(attempts-1) capped at MaxBackoff, of which a
	// random half is jitter, or Toloka's Retry-After when longer.
	// Defaults 1s and 5m.
	BaseBackoff, MaxBackoff time.Duration
	// MaxAttempts makes a submission DEAD after that many failed attempts.
	// Zero (the default) retries transient failures for ever: a Toloker is
	// never left unpaid because Toloka was down for a while.
	MaxAttempts int
	// MinReplicas, when positive, makes Submit WAIT until that many Redis
	// replicas have the submit (or ReplicaTimeout passes, default 100ms).
	MinReplicas    int
	ReplicaTimeout time.Duration
	// CatalogTTL is how long a pool's Toloka pool id, credential and return
	// URL are cached. Default 5s; negative disables the cache.
	CatalogTTL time.Duration
	// Consumer names this replica in the consumer group. Default
	// hostname-pid-random.
	Consumer string
	// Now is the clock of record timestamps. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.SyncTimeout, 2*time.Second)
	def(&c.AttemptTimeout, 10*time.Second)
	def(&c.LeaseTTL, c.AttemptTimeout+5*time.Second)
	def(&c.VisibilityTimeout, 30*time.Second)
	def(&c.PollInterval, 200*time.Millisecond)
	def(&c.BaseBackoff, time.Second)
	def(&c.MaxBackoff, 5*time.Minute)
	def(&c.ReplicaTimeout, 100*time.Millisecond)
	def(&c.CatalogTTL, 5*time.Second)
	if c.Concurrency <= 0 {
		c.Concurrency = 32
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Consumer == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "crowdgate"
		}
		c.Consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(4))
	}
}

// Service implements crowdgatev1.SubmissionServiceServer and runs the
// outbox's delivery workers (Run).
type Service struct {
	crowdgatev1.UnimplementedSubmissionServiceServer
	cfg     Config
	st      *store
	log     *slog.Logger
	m       *metrics
	catalog *catalogCache

	// inline tracks attempts started by Submit, so Run waits for them.
	inline sync.WaitGroup
	// wake nudges this replica's workers (a requeue).
	wake chan struct{}
}

// New returns the service. It fails only on an invalid configuration.
func New(cfg Config) (*Service, error) {
	cfg.setDefaults()
	switch {
	case cfg.Redis == nil:
		return nil, errors.New("submission: Config.Redis is required")
	case cfg.Sessions == nil || cfg.Pools == nil || cfg.Projects == nil || cfg.Toloka == nil:
		return nil, errors.New("submission: Config.Sessions, Pools, Projects and Toloka are required")
	case cfg.LeaseTTL <= cfg.AttemptTimeout:
		return nil, fmt.Errorf("submission: LeaseTTL (%s) must exceed AttemptTimeout (%s)", cfg.LeaseTTL, cfg.AttemptTimeout)
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg:     cfg,
		st:      &store{rdb: cfg.Redis, prefix: cfg.Prefix},
		log:     cfg.Log.With(slog.String("component", "submission")),
		m:       m,
		catalog: newCatalogCache(cfg.CatalogTTL),
		wake:    make(chan struct{}, 1),
	}, nil
}

// poolInfo is what a submit needs to know about its pool.
type poolInfo struct {
	projectID, tolokaPoolID, credentialID, returnURL string
}

// resolvePool reads (or takes from the cache) a tenant's pool and project.
func (s *Service) resolvePool(ctx context.Context, tenantID, poolID string) (poolInfo, error) {
	if pi, ok := s.catalog.get(tenantID, poolID); ok {
		return pi, nil
	}
	pool, err := s.cfg.Pools.Get(ctx, tenantID, poolID)
	if err != nil {
		return poolInfo{}, err
	}
	if pool.GetTolokaPoolId() == "" {
		return poolInfo{}, serviceerror.NewFailedPrecondition("pool %s has no Toloka pool yet", poolID)
	}
	prj, err := s.cfg.Projects.Get(ctx, tenantID, pool.GetProjectId())
	if err != nil {
		return poolInfo{}, err
	}
	if prj.GetCredentialId() == "" {
		return poolInfo{}, serviceerror.NewFailedPrecondition("project %s has no credential", prj.GetProjectId())
	}
	pi := poolInfo{projectID: pool.GetProjectId(), tolokaPoolID: pool.GetTolokaPoolId(), credentialID: prj.GetCredentialId(), returnURL: prj.GetReturnUrl()}
	s.catalog.put(tenantID, poolID, pi)
	return pi, nil
}

// Submit records the work durably, then delivers it; see the package doc.
func (s *Service) Submit(ctx context.Context, req *crowdgatev1.SubmitRequest) (*crowdgatev1.SubmitResponse, error) {
	in, err := validateSubmit(req)
	if err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	now := s.cfg.Now()
	poolID, userID := req.GetPoolId(), req.GetUserId()
	var sess *crowdgatev1.Session
	if req.GetSessionId() != "" {
		if sess, err = s.cfg.Sessions.Get(ctx, tenantID, req.GetSessionId()); err != nil {
			return nil, err
		}
		if poolID != "" && poolID != sess.GetPoolId() {
			return nil, serviceerror.NewInvalidArgument("session_id", "the session belongs to pool %s, not %s", sess.GetPoolId(), poolID)
		}
		if userID != "" && userID != sess.GetUserId() {
			return nil, serviceerror.NewInvalidArgument("session_id", "the session belongs to another Toloker than user_id %s", userID)
		}
		poolID, userID = sess.GetPoolId(), sess.GetUserId()
	}
	pi, err := s.resolvePool(ctx, tenantID, poolID)
	if err != nil {
		return nil, err
	}
	returnURL := pi.returnURL
	if returnURL == "" && sess != nil {
		returnURL = sess.GetReturnUrl()
	}

	shard := shardOf(tenantID, poolID)
	id := newID(now, shard)
	retryID := req.GetRetryId()
	if retryID == "" {
		// Deterministic per submission: the same on every attempt.
		retryID = id
	}
	sub := &crowdgatev1.Submission{
		SubmissionId:       id,
		TenantId:           tenantID,
		ProjectId:          pi.projectID,
		PoolId:             poolID,
		UserId:             userID,
		SessionId:          req.GetSessionId(),
		RetryId:            retryID,
		Reward:             in.reward.String(),
		CloseSession:       req.GetCloseSession(),
		CustomLog:          req.GetCustomLog(),
		StartTime:          req.GetStartTime(),
		EndTime:            req.GetEndTime(),
		Skipped:            req.GetSkipped(),
		GoldenTasksCount:   req.GetGoldenTasksCount(),
		TrainingTasksCount: req.GetTrainingTasksCount(),
		RealTasksCount:     req.GetRealTasksCount(),
		CreateTime:         timestamppb.New(now),
	}
	if in.quality != nil {
		sub.Quality = in.quality.String()
	}
	body, err := proto.Marshal(sub)
	if err != nil {
		return nil, fmt.Errorf("encode submission: %w", err)
	}
	fingerprint := in.fingerprint(poolID, userID)
	var token string
	if s.cfg.SyncTimeout > 0 {
		token = randomHex(12)
	}
	res, err := s.st.accept(ctx, acceptArgs{
		shard: shard, tenantID: tenantID, poolID: poolID, id: id, sessionID: req.GetSessionId(),
		retryID: retryID, useIdem: req.GetRetryId() != "", reject: sessionProblem(sess, now),
		body: body, units: in.units, tolokaPoolID: pi.tolokaPoolID, credentialID: pi.credentialID,
		fingerprint: fingerprint, leaseToken: token, leaseTTL: s.cfg.LeaseTTL,
		minReplicas: s.cfg.MinReplicas, replicaTimeout: s.cfg.ReplicaTimeout,
	})
	if err != nil {
		return nil, err
	}
	switch res.kind {
	case "reject":
		return nil, serviceerror.NewInvalidArgument("session_id", "%s", res.reason)
	case "replay":
		return s.replay(ctx, tenantID, shard, res.id, fingerprint, returnURL)
	}
	if res.replicas >= 0 && res.replicas < int64(s.cfg.MinReplicas) {
		s.m.replicaShortfall.Inc()
		s.log.Warn("submission: fewer Redis replicas than asked acknowledged the submit",
			slog.String("submission_id", id), slog.Int64("replicas", res.replicas), slog.Int("want", s.cfg.MinReplicas))
	}
	s.m.received.Inc()
	if sess != nil {
		if err := s.cfg.Sessions.RecordSubmit(ctx, tenantID, sess.GetSessionId(), in.reward); err != nil {
			s.log.Warn("submission: could not add the submit to the session's totals",
				slog.String("submission_id", id), slog.String("session_id", sess.GetSessionId()), slog.String("error", err.Error()))
		}
	}
	sub.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED
	sub.NextAttemptTime = timestamppb.New(now)
	if token != "" {
		sub = s.deliverNow(ctx, job{
			e:     entry{shard: shard, entryID: res.entryID, tenantID: tenantID, id: id},
			sub:   sub,
			token: token, tolokaPoolID: pi.tolokaPoolID, credentialID: pi.credentialID,
		})
	}
	resp := s.response(sub, returnURL, false)
	if endReason(sub) == crowdgatev1.EndReason_END_REASON_CLOSE_SESSION {
		// Flags end the session in the delivery itself; close_session here.
		s.endSession(ctx, sub, resp)
	}
	return resp, nil
}

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
func (s *Service) replay(ctx context.Context, tenantID string, shard int, id, fingerprint, returnURL string) (*crowdgatev1.SubmitResponse, error) {
	r, err := s.st.get(ctx, shard, tenantID, id)
	if err != nil {
		return nil, err
	}
	if r.fingerprint != fingerprint {
		return nil, serviceerror.NewInvalidArgument("retry_id",
			"was already used for a different submit (submission %s); a retry_id names one piece of work", id)
	}
	s.m.replayed.Inc()
	resp := s.response(r.sub, returnURL, true)
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

func (s *Service) response(sub *crowdgatev1.Submission, returnURL string, replayed bool) *crowdgatev1.SubmitResponse {
	resp := &crowdgatev1.SubmitResponse{Submission: sub, Replayed: replayed}
	if r := endReason(sub); r != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
		resp.SessionEnded = true
		resp.SessionEndReason = r.String()
		resp.ReturnUrl = returnURL
	}
	return resp
}

// endSession ends the submission's session when the answer says it ended.
// Ending an ended session changes nothing, so replays may repeat it.
func (s *Service) endSession(ctx context.Context, sub *crowdgatev1.Submission, resp *crowdgatev1.SubmitResponse) {
	if !resp.GetSessionEnded() || sub.GetSessionId() == "" {
		return
	}
	reason := endReason(sub)
	if _, err := s.cfg.Sessions.End(ctx, sub.GetTenantId(), sub.GetSessionId(), reason); err != nil {
		s.log.Warn("submission: could not end the session",
			slog.String("session_id", sub.GetSessionId()), slog.String("reason", reason.String()), slog.String("error", err.Error()))
	}
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
	applied, err := s.st.requeue(ctx, shard, tenantID, r.sub.GetPoolId(), r.sub.GetSubmissionId(), s.cfg.Now())
	if err != nil {
		return nil, err
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
	s.nudge()
	r, err = s.st.get(ctx, shard, tenantID, r.sub.GetSubmissionId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.RetrySubmissionResponse{Submission: r.sub}, nil
}

// GetPoolTotals returns a pool's counts and rewards, exact to the cent.
func (s *Service) GetPoolTotals(ctx context.Context, req *crowdgatev1.GetPoolTotalsRequest) (*crowdgatev1.GetPoolTotalsResponse, error) {
	if req.GetPoolId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	tenantID := tenant.FromContext(ctx)
	if _, err := s.cfg.Pools.Get(ctx, tenantID, req.GetPoolId()); err != nil {
		return nil, err
	}
	t, err := s.st.totals(ctx, tenantID, req.GetPoolId())
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

// UnfinishedWork lists what keeps a pool's submissions from being done, for
// the requester flow's archive check: "2 submits not yet delivered",
// "1 dead submit". Empty means every submit was delivered.
func (s *Service) UnfinishedWork(ctx context.Context, tenantID string, pool *crowdgatev1.Pool) ([]string, error) {
	t, err := s.st.totals(ctx, tenantID, pool.GetPoolId())
	if err != nil {
		return nil, err
	}
	var out []string
	if t.queued > 0 {
		out = append(out, plural(t.queued, "submit", "submits")+" not yet delivered")
	}
	if t.dead > 0 {
		out = append(out, plural(t.dead, "dead submit", "dead submits"))
	}
	return out, nil
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
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

// catalogCache keeps resolved pools for a short time: a submit then costs
// no catalog reads.
type catalogCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]catalogEntry
}

type catalogEntry struct {
	pi      poolInfo
	expires time.Time
}

const maxCatalogEntries = 10000

func newCatalogCache(ttl time.Duration) *catalogCache {
	return &catalogCache{ttl: ttl, m: map[string]catalogEntry{}}
}

func (c *catalogCache) get(tenantID, poolID string) (poolInfo, bool) {
	if c.ttl <= 0 {
		return poolInfo{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[tenantID+"\x00"+poolID]
	if !ok || time.Now().After(e.expires) {
		return poolInfo{}, false
	}
	return e.pi, true
}

func (c *catalogCache) put(tenantID, poolID string, pi poolInfo) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCatalogEntries {
		clear(c.m)
	}
	c.m[tenantID+"\x00"+poolID] = catalogEntry{pi: pi, expires: time.Now().Add(c.ttl)}
}
