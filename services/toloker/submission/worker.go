package submission

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
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
	if o.kind == outRetry && s.cfg.MaxAttempts > 0 && j.attempts+1 >= s.cfg.MaxAttempts {
		o.kind = outDead
	}
	s.m.attempts.WithLabelValues(o.kind).Inc()
	log := s.log.With(slog.String("submission_id", j.e.id), slog.String("pool_id", j.sub.GetPoolId()),
		slog.Int("attempt", j.attempts+1))
	if o.kind == outDelivered {
		// Flags that arrive through any delivery end the session (a
		// close_session is acted on by Submit). This happens before the
		// outcome is recorded, so a submission seen DELIVERED has acted; a
		// crash in between repeats it, and ending an ended session is a
		// no-op.
		delivered := proto.CloneOf(j.sub)
		delivered.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED
		delivered.Flags = o.flags
		if r := endReason(delivered); r == crowdgatev1.EndReason_END_REASON_RESTRICTED || r == crowdgatev1.EndReason_END_REASON_FILTERED_OUT {
			if sid := j.sub.GetSessionId(); sid != "" {
				if _, err := s.sessions.End(ctx, j.e.tenantID, sid, r); err != nil {
					log.Warn("submission: could not end the session on Toloka's flags",
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
		if applied, err = s.st.finish(ctx, j.e, j.sub.GetPoolId(), j.sub.GetSessionId(), j.sub.GetUserId(), j.token, s.now(), o); err == nil {
			break
		}
		time.Sleep(time.Duration(100<<try) * time.Millisecond)
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
// of that session are still queued. Toloka closes the Toloker's assignment
// on close_session, and a submit that reaches it afterwards would be refused
// and never paid; so the closing submit goes last. A Redis error lets the
// attempt go ahead: the outcome is recorded through Redis anyway.
func (s *Service) mustWait(ctx context.Context, j job) bool {
	if !j.sub.GetCloseSession() || j.sub.GetSessionId() == "" {
		return false
	}
	wait, err := s.st.othersPending(ctx, j.e.shard, j.e.tenantID, j.sub.GetSessionId(), j.e.id)
	return err == nil && wait
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
	o := outcome{kind: kind, err: te}
	if kind == outRetry {
		o.backoff = s.backoff(j.attempts+1, after)
	}
	return o
}

// classify decides whether a failed attempt is retried or dead, and keeps
// Toloka's error as Toloka sent it.
//
// Retried: no answer (network error, timeout), 408, 429, 5xx, an
// unreadable 2xx (the retry_id makes the repeat safe), Crowdgate's own rate
// limiter, and anything unknown. Dead: every other answer of Toloka (400
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
		case sc == 0, sc == http.StatusRequestTimeout, sc == http.StatusTooManyRequests, sc >= 500, sc >= 200 && sc < 300:
			return outRetry, te, terr.RetryAfter
		}
		return outDead, te, 0
	}
	te = &crowdgatev1.TolokaError{Message: err.Error()}
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
		return outRetry, te, re.RetryAfter
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

// Run delivers the outbox until ctx is done: the loop every replica runs.
// One reader takes new entries of every shard's stream in this replica's
// consumer, reclaims entries other consumers left unacknowledged past
// VisibilityTimeout and moves due retries back to the streams; Concurrency
// workers deliver what it reads. When ctx ends the reader stops, the workers
// finish the entries already read (each attempt bounded by AttemptTimeout),
// and Run waits for the attempts Submit started.
func (s *Service) Run(ctx context.Context) {
	s.log.Info("submission workers starting", slog.String("consumer", s.consumer), slog.Int("concurrency", s.cfg.Concurrency))
	for shard := range Shards {
		s.ensureGroup(ctx, shard)
	}
	work := make(chan entry, s.cfg.Concurrency)
	dctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for e := range work {
				s.process(dctx, e)
			}
		})
	}
	s.read(ctx, work)
	close(work)
	wg.Wait()
	s.inline.Wait()
	s.log.Info("submission workers stopped", slog.String("consumer", s.consumer))
}

// read feeds work until ctx is done.
func (s *Service) read(ctx context.Context, work chan<- entry) {
	var (
		cursors                                        [Shards]string
		lastPromote, lastReclaim, lastLag, lastCleanup time.Time
	)
	for i := range cursors {
		cursors[i] = "0-0"
	}
	reclaimEvery := max(s.cfg.VisibilityTimeout/4, s.cfg.PollInterval)
	for ctx.Err() == nil {
		now := time.Now()
		if now.Sub(lastPromote) >= s.cfg.PollInterval {
			s.promoteAll(ctx)
			lastPromote = now
		}
		room := cap(work) - len(work)
		var got []entry
		if room > 0 {
			got = s.readNew(ctx, room)
		}
		if rest := room - len(got); rest > 0 && now.Sub(lastReclaim) >= reclaimEvery {
			got = append(got, s.reclaim(ctx, rest, &cursors)...)
			lastReclaim = now
		}
		for _, e := range got {
			// Blocks while every worker is busy: entries are read only as
			// fast as they are delivered.
			work <- e
		}
		if s.m.enabled && now.Sub(lastLag) >= 5*time.Second {
			s.updateLag(ctx)
			lastLag = now
		}
		if now.Sub(lastCleanup) >= 10*time.Minute {
			s.cleanupConsumers(ctx)
			lastCleanup = now
		}
		if len(got) > 0 {
			continue // more may be waiting
		}
		t := time.NewTimer(s.cfg.PollInterval)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
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
	s.deliver(ctx, job{e: e, sub: c.sub, attempts: c.attempts, token: token, tolokaPoolID: c.tolokaPoolID, credentialID: c.credentialID})
}

// ensureGroup creates shard's stream and consumer group if missing. It
// reads the stream from its start, so entries written before the group
// existed are delivered too.
func (s *Service) ensureGroup(ctx context.Context, shard int) {
	err := s.rdb.XGroupCreateMkStream(ctx, s.st.streamKey(shard), group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") && ctx.Err() == nil {
		s.log.Warn("submission: could not create the outbox consumer group", slog.Int("shard", shard), slog.String("error", err.Error()))
	}
}

// readNew reads new entries of every shard in one round trip (a pipeline;
// Redis Cluster splits it by node), up to free from each shard.
func (s *Service) readNew(ctx context.Context, free int) []entry {
	cmds := make([]*redis.XStreamSliceCmd, Shards)
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for shard := range Shards {
			cmds[shard] = p.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: group, Consumer: s.consumer, Streams: []string{s.st.streamKey(shard), ">"},
				Count: int64(free), Block: -1,
			})
		}
		return nil
	})
	var out []entry
	for shard, c := range cmds {
		res, err := c.Result()
		if err != nil {
			switch {
			case errors.Is(err, redis.Nil) || ctx.Err() != nil:
			case redis.HasErrorPrefix(err, "NOGROUP"):
				s.ensureGroup(ctx, shard)
			default:
				s.log.Warn("submission: could not read the outbox", slog.Int("shard", shard), slog.String("error", err.Error()))
			}
			continue
		}
		for _, st := range res {
			out = append(out, s.entries(shard, st.Messages)...)
		}
	}
	return out
}

// reclaim takes up to free entries that other consumers (or this one) took
// and left unacknowledged for VisibilityTimeout: their replica died, or
// their submission's lease was busy.
func (s *Service) reclaim(ctx context.Context, free int, cursors *[Shards]string) []entry {
	var out []entry
	for shard := 0; shard < Shards && len(out) < free; shard++ {
		msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.st.streamKey(shard), Group: group, Consumer: s.consumer,
			MinIdle: s.cfg.VisibilityTimeout, Start: cursors[shard], Count: int64(free - len(out)),
		}).Result()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, redis.Nil) {
				if redis.HasErrorPrefix(err, "NOGROUP") {
					s.ensureGroup(ctx, shard)
				} else {
					s.log.Warn("submission: could not reclaim outbox entries", slog.Int("shard", shard), slog.String("error", err.Error()))
				}
			}
			continue
		}
		cursors[shard] = next
		if len(msgs) > 0 {
			s.m.reclaimed.Add(float64(len(msgs)))
		}
		out = append(out, s.entries(shard, msgs)...)
	}
	return out
}

func (s *Service) entries(shard int, msgs []redis.XMessage) []entry {
	out := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		t, _ := m.Values["t"].(string)
		id, _ := m.Values["s"].(string)
		if id == "" {
			// Not ours: acknowledge it so it does not come back.
			s.rdb.XAck(context.Background(), s.st.streamKey(shard), group, m.ID)
			continue
		}
		out = append(out, entry{shard: shard, entryID: m.ID, tenantID: t, id: id})
	}
	return out
}

// promoteAll moves due retries of every shard back to the streams, in one
// round trip.
func (s *Service) promoteAll(ctx context.Context) {
	calls := make([]storage.Call, Shards)
	for shard := range Shards {
		calls[shard] = storage.Call{Keys: []string{s.st.schedKey(shard), s.st.streamKey(shard)}, Args: []any{500, s.st.recordPrefix(shard)}}
	}
	cmds, err := storage.EvalAll(ctx, s.rdb, promoteScript, calls, nil)
	for _, c := range cmds {
		if err == nil {
			err = c.Err()
		}
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("submission: could not move due retries to the outbox", slog.String("error", err.Error()))
	}
}

// updateLag sets the outbox gauges: the age of the oldest entry waiting in
// the streams or overdue in the schedules, and how many wait.
func (s *Service) updateLag(ctx context.Context) {
	now := time.Now()
	var oldest time.Time
	var ready, scheduled int64
	for shard := range Shards {
		if first, err := s.rdb.XRangeN(ctx, s.st.streamKey(shard), "-", "+", 1).Result(); err == nil && len(first) > 0 {
			if t := entryTime(first[0].ID); !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
		}
		if n, err := s.rdb.XLen(ctx, s.st.streamKey(shard)).Result(); err == nil {
			ready += n
		}
		if z, err := s.rdb.ZRangeWithScores(ctx, s.st.schedKey(shard), 0, 0).Result(); err == nil && len(z) > 0 {
			if t := time.UnixMilli(int64(z[0].Score)); t.Before(now) && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
		}
		if n, err := s.rdb.ZCard(ctx, s.st.schedKey(shard)).Result(); err == nil {
			scheduled += n
		}
	}
	lag := 0.0
	if !oldest.IsZero() {
		lag = max(now.Sub(oldest).Seconds(), 0)
	}
	s.m.lag.Set(lag)
	s.m.backlog.WithLabelValues("ready").Set(float64(ready))
	s.m.backlog.WithLabelValues("scheduled").Set(float64(scheduled))
}

// entryTime is the time in a stream entry id ("<ms>-<seq>").
func entryTime(id string) time.Time {
	var ms int64
	for i := 0; i < len(id) && id[i] != '-'; i++ {
		if id[i] < '0' || id[i] > '9' {
			return time.Time{}
		}
		ms = ms*10 + int64(id[i]-'0')
	}
	return time.UnixMilli(ms)
}

// cleanupConsumers removes consumers of other replicas that hold nothing and
// have been idle for an hour (replicas that went away), so the group does
// not grow for ever.
func (s *Service) cleanupConsumers(ctx context.Context) {
	for shard := range Shards {
		cs, err := s.rdb.XInfoConsumers(ctx, s.st.streamKey(shard), group).Result()
		if err != nil {
			continue
		}
		for _, c := range cs {
			if c.Name != s.consumer && c.Pending == 0 && c.Idle > time.Hour {
				s.rdb.XGroupDelConsumer(ctx, s.st.streamKey(shard), group, c.Name)
			}
		}
	}
}

// submitExternal posts one external submit with a tenant's credential.
func (s *Service) submitExternal(ctx context.Context, tenantID, credentialID string, es *toloka.ExternalSubmit) (*toloka.ExternalSubmitResult, error) {
	account, err := s.catalog.Account(ctx, tenantID, credentialID)
	if err != nil {
		return nil, err
	}
	return account.SubmitExternal(ctx, es)
}
