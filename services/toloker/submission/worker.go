package submission

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/outbox"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// entry is one outbox stream entry: a submission to deliver.
type entry struct {
	shard    int
	entryID  string
	tenantID string
	id       string
}

// job is a claimed submission: the caller holds its delivery lease.
type job struct {
	e                          entry
	sub                        *crowdgatev1.Submission
	attempts                   int
	requeuedAt                 int // attempts made before an operator's last retry
	token                      string
	tolokaPoolID, credentialID string
}

// Outcomes of an attempt.
const (
	outDelivered = "delivered"
	outRetry     = "retry"
	outDead      = "dead"
	// outDefer: not attempted, because an earlier submission of the same
	// session is still queued and this one closes the session.
	outDefer = "defer"
)

// deliver makes one attempt at posting j to Toloka and records the outcome
// atomically with the pool's totals. The caller holds j's lease.
func (s *Service) deliver(ctx context.Context, j job) {
	var o outcome
	if s.mustWait(ctx, j) {
		o = outcome{kind: outDefer, backoff: s.cfg.BaseBackoff}
	} else {
		o = s.attempt(ctx, j)
	}
	// The attempts counted against MaxAttempts are those since an
	// operator's last retry: a retry gets a whole budget again.
	if o.kind == outRetry && s.cfg.MaxAttempts > 0 && j.attempts-j.requeuedAt+1 >= s.cfg.MaxAttempts {
		o.kind = outDead
	}
	s.m.attempts.WithLabelValues(o.kind).Inc()
	log := s.log.With(slog.String("submission_id", j.e.id), slog.String("pool_id", j.sub.GetPoolId()),
		slog.Int("attempt", j.attempts+1))
	if o.kind == outDelivered {
		// Flags that arrive through any delivery end the session, and so
		// does a close_session (Submit acted on it already; this is its
		// second chance, should that end have failed). This happens before
		// the outcome is recorded, so a submission seen DELIVERED has
		// acted; a crash in between repeats it, and ending an ended
		// session changes nothing (the registry records its end once).
		delivered := proto.CloneOf(j.sub)
		delivered.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED
		delivered.Flags = o.flags
		if r := endReason(delivered); r != crowdgatev1.EndReason_END_REASON_UNSPECIFIED {
			if sid := j.sub.GetSessionId(); sid != "" {
				if _, err := s.sessions.End(ctx, j.e.tenantID, sid, r); err != nil {
					log.Warn("submission: could not end the session on delivery",
						slog.String("session_id", sid), slog.String("reason", r.String()), slog.String("error", err.Error()))
				}
			}
		}
	}
	var (
		applied string
		err     error
	)
	for try := 0; try < 3; try++ {
		if applied, err = s.st.finish(ctx, j.e, j.sub, j.attempts, j.token, s.now(), o); err == nil {
			break
		}
		time.Sleep(time.Duration(100<<try) * time.Millisecond)
	}
	if (applied == outDelivered || applied == outDead) && s.events != nil {
		s.events.Intended() // the outcome's event intent, for the relay
	}
	if err != nil {
		// Not recorded: the entry stays pending and is reclaimed once idle.
		// A submit Toloka took is then sent again with the same retry_id,
		// which Toloka answers without paying twice.
		log.Error("submission: could not record a delivery outcome; it will be retried",
			slog.String("outcome", o.kind), slog.String("error", err.Error()))
		return
	}
	switch applied {
	case outDelivered:
		s.m.delivered.Inc()
		if ct := j.sub.GetCreateTime(); ct != nil {
			s.m.latency.Observe(s.now().Sub(ct.AsTime()).Seconds())
		}
		log.Debug("submission: delivered")
	case outDead:
		s.m.dead.Inc()
		log.Warn("submission: dead: Toloka refused it", slog.String("error", errorText(o.err)))
	case outDefer:
		log.Debug("submission: close_session waits for the session's earlier submissions", slog.Duration("backoff", o.backoff))
	case outRetry:
		log.Info("submission: delivery failed; retrying", slog.Duration("backoff", o.backoff), slog.String("error", errorText(o.err)))
	}
}

// mustWait reports whether j closes its session while earlier submissions
// of the Toloker in the pool (with a session or without) or of its session
// are still queued. Toloka closes the Toloker's assignment on
// close_session, and a submit that reaches it afterwards would be refused
// and never paid; so the closing submit goes last. When Redis cannot tell
// (an error reading the session's queued submissions), the closing submit
// waits too: going ahead could leave an earlier one unpaid for good, waiting
// only delays it by a backoff.
func (s *Service) mustWait(ctx context.Context, j job) bool {
	if !j.sub.GetCloseSession() {
		return false
	}
	shards, err := s.shardCount(ctx)
	if err != nil {
		return true
	}
	sub := j.sub
	wait, err := s.st.othersPending(ctx, shards, j.e.tenantID, j.e.id, func(shard int) []string {
		sets := []string{s.st.tolokerPendingKey(shard, j.e.tenantID, sub.GetPoolId(), sub.GetUserId())}
		if sid := sub.GetSessionId(); sid != "" {
			// Submits accepted before the Toloker's set existed are in
			// their session's alone.
			sets = append(sets, s.st.sessionPendingKey(shard, j.e.tenantID, sid))
		}
		return sets
	})
	return err != nil || wait
}

func errorText(e *crowdgatev1.TolokaError) string {
	if e == nil {
		return ""
	}
	return e.GetCode() + " " + e.GetMessage()
}

// attempt posts j to Toloka once (the client may repeat the request within
// AttemptTimeout, always with the same retry_id).
func (s *Service) attempt(ctx context.Context, j job) outcome {
	es, err := externalSubmit(j.sub, j.tolokaPoolID)
	if err != nil {
		return outcome{kind: outDead, err: &crowdgatev1.TolokaError{Code: "INVALID_SUBMISSION", Message: err.Error()}}
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	res, err := s.submitExternal(actx, j.e.tenantID, j.credentialID, es)
	if err == nil {
		return outcome{kind: outDelivered, flags: &crowdgatev1.TolokaFlags{
			SpeedQualityBalanceMatch: res.SpeedQualityBalanceMatch,
			RestrictionMatch:         res.RestrictionMatch,
			FilterMatch:              res.FilterMatch,
		}}
	}
	kind, te, after := classify(err)
	var terr *toloka.Error
	if kind == outRetry && errors.As(err, &terr) && poolNotOpen(terr) && s.poolArchived(actx, j) {
		// Stopped for good: an archived pool never opens again.
		kind = outDead
	}
	o := outcome{kind: kind, err: te}
	if kind == outRetry {
		o.backoff = s.backoff(j.attempts+1, after)
	}
	return o
}

// poolArchived reports whether Toloka says j's pool is ARCHIVED (false
// when it cannot be asked: the submit is then retried, and asks again).
func (s *Service) poolArchived(ctx context.Context, j job) bool {
	account, err := s.catalog.Account(ctx, j.e.tenantID, j.credentialID)
	if err != nil {
		return false
	}
	p, err := account.GetPool(ctx, j.tolokaPoolID)
	return err == nil && p.Status == toloka.PoolArchived
}

// classify decides whether a failed attempt is retried or dead, and keeps
// Toloka's error as Toloka sent it.
//
// Retried: no answer (network error, timeout), 408, 429, 5xx, a redirect,
// a pool not OPEN (it may open again), an unreadable 2xx (the retry_id
// makes the repeat safe), Crowdgate's own rate
// limiter, a credential this replica cannot open (its key ring's fault),
// and anything unknown. Dead: every other answer of Toloka (400
// validation, 401/403 credential, 404 pool, 409 conflict, 413), which a
// repeat would get again, and a missing credential or invalid body.
func classify(err error) (kind string, te *crowdgatev1.TolokaError, retryAfter time.Duration) {
	var terr *toloka.Error
	if errors.As(err, &terr) {
		te = &crowdgatev1.TolokaError{
			HttpStatus:  int32(terr.StatusCode),
			Code:        terr.Code,
			Message:     terr.Message,
			RequestId:   terr.RequestID,
			PayloadJson: string(terr.Payload),
		}
		if te.Message == "" {
			te.Message = terr.Error()
		}
		switch sc := terr.StatusCode; {
		case sc == 0, sc == http.StatusRequestTimeout, sc == http.StatusTooManyRequests, sc >= 500, sc >= 200 && sc < 300,
			sc >= 300 && sc < 400: // a redirect, not followed: Toloka never saw the submit
			return outRetry, te, min(terr.RetryAfter, maxTolokaWait)
		case poolNotOpen(terr):
			// The pool is stopped (for an edit, or by Toloka) and may
			// open again: the work is paid then. It waits QUEUED, in the
			// pool's totals, rather than DEAD for an operator (unless
			// the pool is archived: attempt asks).
			return outRetry, te, poolClosedWait
		}
		return outDead, te, 0
	}
	te = &crowdgatev1.TolokaError{Message: err.Error()}
	if errors.Is(err, catalog.ErrSecretDoesNotOpen) {
		// This replica's fault: another replica, or this one once its
		// key ring is fixed, delivers it.
		te.Code = "CREDENTIAL_DOES_NOT_OPEN"
		return outRetry, te, unopenedCredentialWait
	}
	var (
		ia *serviceerror.InvalidArgument
		nf *serviceerror.NotFound
		fp *serviceerror.FailedPrecondition
		pd *serviceerror.PermissionDenied
		ua *serviceerror.Unauthenticated
		re *serviceerror.ResourceExhausted
	)
	switch {
	case errors.As(err, &re):
		te.Code = "RATE_LIMITED"
		return outRetry, te, min(re.RetryAfter, maxTolokaWait)
	case errors.As(err, &ia):
		te.Code = "INVALID_ARGUMENT"
		return outDead, te, 0
	case errors.As(err, &nf):
		te.Code = "NOT_FOUND"
		return outDead, te, 0
	case errors.As(err, &fp), errors.As(err, &pd), errors.As(err, &ua):
		te.Code = "FAILED_PRECONDITION"
		return outDead, te, 0
	}
	return outRetry, te, 0
}

// poolClosedWait is the least wait before a submit that found its pool
// not open is tried again.
const poolClosedWait = time.Minute

// poolNotOpen reports whether Toloka refused a submit because its pool is
// not OPEN: a 409 INAPPROPRIATE_STATUS whose payload names OPEN among the
// appropriate statuses.
func poolNotOpen(e *toloka.Error) bool {
	if e.StatusCode != http.StatusConflict || e.Code != toloka.CodeInappropriateStatus {
		return false
	}
	var p struct {
		AppropriateStatuses []string `json:"appropriate_statuses"`
	}
	return json.Unmarshal(e.Payload, &p) == nil && slices.Contains(p.AppropriateStatuses, "OPEN")
}

// unopenedCredentialWait is how long a submit waits after a replica could
// not open its credential's API key (its key ring is wrong): long enough
// not to spin on a misconfigured replica, short enough that a fixed one
// (or another replica) pays the Toloker soon.
const unopenedCredentialWait = 5 * time.Minute

// maxTolokaWait bounds the wait a Toloka answer asks a submit for
// (Retry-After, a rate limit's window): a day, the longest window of
// Toloka's limits. An answer asking for more (a proxy's bad date) would
// leave the Toloker unpaid that long.
const maxTolokaWait = 24 * time.Hour

// backoff is the wait before attempt number n+1 after n failed attempts:
// BaseBackoff·2^(n-1) capped at MaxBackoff, its upper half random (jitter),
// or at least what Toloka asked for.
func (s *Service) backoff(n int, atLeast time.Duration) time.Duration {
	d := s.cfg.BaseBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	return max(d, atLeast)
}

// Run delivers the outbox until ctx is done: the loop every replica runs,
// on the shared outbox engine (services/platform/outbox). One reader takes
// new entries of every shard's stream in this replica's consumer, reclaims
// entries other consumers left unacknowledged past VisibilityTimeout and
// moves due retries back to the streams; Concurrency workers deliver what
// it reads. When ctx ends the reader stops, the workers finish the entries
// already read (each attempt bounded by AttemptTimeout), and Run waits for
// the attempts Submit started. Alongside, it deletes delivered submissions
// whose retention has passed (retention.go).
func (s *Service) Run(ctx context.Context) {
	s.log.Info("submission workers starting", slog.String("consumer", s.consumer), slog.Int("concurrency", s.cfg.Concurrency),
		slog.Int("shards", s.cfg.Shards))
	// Say this replica's layout before its workers create any stream
	// (layout.go: streams without a layout hash are data of the rule
	// before), so wait for Redis rather than start without it.
	for {
		err := s.retentions.refresh(ctx, s.now())
		if err == nil || ctx.Err() != nil {
			break
		}
		s.log.Warn("submission: could not say this replica's layout; the workers wait for it", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	var expiry sync.WaitGroup
	expiry.Go(func() {
		// Beside the workers: a scan, once per Redis.
		if err := s.backfillPools(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("submission: could not list the pools the retention sweep walks; the next start tries again", slog.String("error", err.Error()))
		}
		s.runExpiry(ctx)
	})
	if s.m.enabled {
		expiry.Go(func() { s.runUnpaidGauge(ctx) })
	}
	s.queue().Run(ctx)
	expiry.Wait()
	s.inline.Wait()
	s.log.Info("submission workers stopped", slog.String("consumer", s.consumer))
}

// queue is the outbox engine over the submission layout: its streams,
// schedules and records (store.go; the engine's promote script reads their
// st and eid), with process as the Handler.
func (s *Service) queue() *outbox.Queue {
	var hooks outbox.Hooks
	hooks.OnReclaimed = func(n int) { s.m.reclaimed.Add(float64(n)) }
	if s.m.enabled {
		hooks.OnLag = func(lag time.Duration, ready, scheduled int64) {
			s.m.lag.Set(lag.Seconds())
			s.m.backlog.WithLabelValues("ready").Set(float64(ready))
			s.m.backlog.WithLabelValues("scheduled").Set(float64(scheduled))
		}
	}
	q, err := outbox.New(outbox.Config{
		Name:              "submission",
		Redis:             s.rdb,
		Shards:            s.knownShards,
		Group:             group,
		Consumer:          s.consumer,
		Stream:            s.st.streamKey,
		Schedule:          s.st.schedKey,
		RecordPrefix:      s.st.recordPrefix,
		Handle:            func(ctx context.Context, e outbox.Entry) { s.process(ctx, fromOutbox(e)) },
		Concurrency:       s.cfg.Concurrency,
		PollInterval:      s.cfg.PollInterval,
		VisibilityTimeout: s.cfg.VisibilityTimeout,
		Wake:              s.wake,
		Hooks:             hooks,
		Log:               s.log,
	})
	if err != nil {
		// Every field is set above from validated settings.
		panic("submission: " + err.Error())
	}
	return q
}

// fromOutbox is the submission entry of an outbox entry.
func fromOutbox(e outbox.Entry) entry {
	return entry{shard: e.Shard, entryID: e.StreamID, tenantID: e.Tenant, id: e.Item}
}

// process claims and delivers one entry.
func (s *Service) process(ctx context.Context, e entry) {
	token := randomHex(12)
	c, err := s.st.claim(ctx, e, token, s.cfg.LeaseTTL)
	if err != nil {
		s.log.Warn("submission: could not claim an outbox entry; it stays pending",
			slog.String("submission_id", e.id), slog.String("error", err.Error()))
		return
	}
	s.m.claims.WithLabelValues(c.kind).Inc()
	if c.kind != "ok" {
		return
	}
	s.deliver(ctx, job{e: e, sub: c.sub, attempts: c.attempts, requeuedAt: c.requeuedAt, token: token, tolokaPoolID: c.tolokaPoolID, credentialID: c.credentialID})
}

// ensureGroup creates shard's stream and consumer group if missing.
func (s *Service) ensureGroup(ctx context.Context, shard int) { s.queue().EnsureGroup(ctx, shard) }

// readNew reads up to about free new entries across the shards in this
// replica's consumer (outbox.Queue.ReadNew).
func (s *Service) readNew(ctx context.Context, free int) []entry {
	got := s.queue().ReadNew(ctx, free)
	out := make([]entry, len(got))
	for i, e := range got {
		out[i] = fromOutbox(e)
	}
	return out
}

// submitExternal posts one external submit with a tenant's credential.
func (s *Service) submitExternal(ctx context.Context, tenantID, credentialID string, es *toloka.ExternalSubmit) (*toloka.ExternalSubmitResult, error) {
	account, err := s.catalog.Account(ctx, tenantID, credentialID)
	if err != nil {
		return nil, err
	}
	return account.SubmitExternal(ctx, es)
}
