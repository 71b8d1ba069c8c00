package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/weburl"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/outbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/redis/go-redis/v9"
)

// Bounds of a delivery.
const (
	// MaxBodyBytes bounds an event's body; a larger event is sent without
	// its data (the resource's state), which the receiver reads over the
	// API.
	MaxBodyBytes = 256 << 10
	// maxAnswerBytes is how much of an endpoint's answer is read.
	maxAnswerBytes = 64 << 10
	// maxAttemptsKept bounds a delivery's recorded attempts.
	maxAttemptsKept = 100
)

// fanout queues one delivery of each event of evs per enabled endpoint of
// its tenant whose event types select it: the endpoints are read once per
// tenant of the batch (as they are when the batch is handled), and every
// delivery is queued in one enqueue. It is idempotent: a delivery's id is
// made from the event and the endpoint. An error makes the log offer the
// batch again.
func (s *Service) fanout(ctx context.Context, evs []*crowdgatev1.Event) error {
	endpoints := map[string][]*endpointRecord{}
	var ds []delivery
	for _, ev := range evs {
		eps, ok := endpoints[ev.GetTenantId()]
		if !ok {
			var err error
			if eps, err = s.st.allEndpoints(ctx, ev.GetTenantId()); err != nil {
				return err
			}
			endpoints[ev.GetTenantId()] = eps
			for _, r := range eps {
				if !r.disabledSince.IsZero() {
					s.recordDisabled(ctx, r.ep, r.disabledSince, 1) // its first recording failed
				}
			}
		}
		for _, r := range eps {
			if r.ep.GetState() == crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED && selects(r.ep, ev.GetType()) {
				ds = append(ds, delivery{r.ep, ev})
			}
		}
	}
	// A batch's deliveries (its events times the tenant's endpoints) are
	// queued in groups, as a redelivery's are, so no pipeline grows with
	// the endpoints.
	for len(ds) > 0 {
		n := min(len(ds), redeliverBatch)
		if _, err := s.enqueue(ctx, ds[:n], false); err != nil {
			return err
		}
		ds = ds[n:]
	}
	return nil
}

// sameTenant returns ds without the deliveries whose event and endpoint
// belong to different tenants (none, unless a caller is wrong), logging
// each one left out. ds itself is the caller's and stays as it is.
func (s *Service) sameTenant(ds []delivery) []delivery {
	crossTenant := func(d delivery) bool { return d.ep.GetTenantId() != d.ev.GetTenantId() }
	if !slices.ContainsFunc(ds, crossTenant) {
		return ds
	}
	return slices.DeleteFunc(slices.Clone(ds), func(d delivery) bool {
		if !crossTenant(d) {
			return false
		}
		s.log.Error("webhook: an event paired with another tenant's endpoint was not queued",
			"event_id", d.ev.GetEventId(), "event_tenant_id", d.ev.GetTenantId(),
			"endpoint_id", d.ep.GetEndpointId(), "endpoint_tenant_id", d.ep.GetTenantId())
		return true
	})
}

// selects reports whether an endpoint's event types select typ.
func selects(ep *crowdgatev1.WebhookEndpoint, typ string) bool {
	f, err := events.NewFilter("event_types", ep.GetEventTypes())
	return err == nil && f.Match(typ)
}

// delivery is an event to deliver to an endpoint.
type delivery struct {
	ep *crowdgatev1.WebhookEndpoint
	ev *crowdgatev1.Event
}

// enqueue queues each delivery: once, or again (a new run of attempts)
// when again is set and an earlier delivery has settled. It reports how
// many runs were queued. However many deliveries, it costs two round
// trips: the deliveries' index entries (one ZADD per endpoint), then
// their records and stream entries (one pipeline of the outbox's enqueue
// script). On an error some may have been queued; repeating the call is
// safe (idempotent).
//
// It is the one way a delivery is queued (the fan-out and both
// redeliveries call it), and it leaves out, with an error logged, a
// delivery whose event and endpoint belong to different tenants: one
// tenant's event never goes to another's endpoint, whatever a caller
// paired.
func (s *Service) enqueue(ctx context.Context, ds []delivery, again bool) (int, error) {
	ds = s.sameTenant(ds)
	if len(ds) == 0 {
		return 0, nil
	}
	now := s.now()
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	index := map[string][]redis.Z{}
	items := make([]outbox.Item, len(ds))
	for i, d := range ds {
		pb, err := proto.Marshal(d.ev)
		if err != nil {
			return 0, err
		}
		tenantID, endpointID, eventID := d.ev.GetTenantId(), d.ep.GetEndpointId(), d.ev.GetEventId()
		at := now
		if ct := d.ev.GetCreateTime(); ct != nil {
			at = ct.AsTime()
		}
		key := s.st.deliveryIndex(tenantID, endpointID)
		index[key] = append(index[key], redisZ(indexMember(at, eventID)))
		it := item(endpointID, eventID)
		items[i] = outbox.Item{Shard: shardOf(it), Tenant: tenantID, ID: it,
			FirstFields: []any{"ct", nowMs}, Fields: []any{"pb", pb, "ty", d.ev.GetType(), "nat", nowMs}}
	}
	// The index entries first: a delivery is then always listed (an entry
	// whose delivery was never queued, or has expired, is skipped).
	_, err := s.st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, zs := range index {
			p.ZAdd(ctx, key, zs...)
		}
		return nil
	})
	if err != nil {
		return 0, unavailable(err)
	}
	// Entries older than the retention go (their records have expired):
	// about once every 32 deliveries queued, which keeps an index within a
	// few dozen stale entries.
	if rand.N(32) < len(ds) {
		for key := range index {
			s.st.rdb.ZRemRangeByLex(ctx, key, "-", "("+indexMember(now.Add(-s.cfg.Retention-s.retrySpan()), ""))
		}
	}
	created, err := s.rec.EnqueueMany(ctx, items, again)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range created {
		if c {
			n++
		}
	}
	if n > 0 {
		s.m.queued.Add(float64(n))
		s.nudge()
	}
	return n, nil
}

// retrySpan is the retry schedule's length.
func (s *Service) retrySpan() time.Duration {
	var d time.Duration
	for _, w := range s.cfg.RetrySchedule {
		d += w
	}
	return d
}

// process is the outbox Handler: it takes a delivery's lease, makes one
// attempt and records it. The lease and the endpoint are asked for at
// once (one round trip of the workers' pipeline, not two one after the
// other); the endpoint read is wasted only when no attempt follows.
func (s *Service) process(ctx context.Context, e outbox.Entry) {
	endpointID, _, _ := strings.Cut(e.Item, "/")
	// A slow endpoint that has its share of the workers waits: the
	// delivery is deferred (no attempt counted).
	t, admitted := s.lane.enter(e.Tenant, endpointID)
	if !admitted {
		token := randomHex(12)
		if c, err := s.claim(ctx, e, token); err == nil && c.Kind == "ok" {
			s.deferDelivery(ctx, e, token)
		}
		return
	}
	took := time.Duration(-1) // no attempt made
	defer func() { s.leaveLane(t, e.Tenant, endpointID, took) }()
	// The slot of this attempt's settlement is taken before the lease, so
	// a wait for one (Redis slow to record earlier attempts) never eats
	// into the lease.
	s.settleSlots <- struct{}{}
	settling := false
	defer func() {
		if !settling {
			<-s.settleSlots
		}
	}()
	token := randomHex(12)
	type endpointRead struct {
		r   *endpointRecord
		err error
	}
	read := make(chan endpointRead, 1)
	go func() {
		r, err := s.st.attemptEndpoint(ctx, e.Tenant, endpointID)
		read <- endpointRead{r, err}
	}()
	c, err := s.claim(ctx, e, token)
	got := <-read
	if err != nil {
		s.log.Warn("webhook: could not claim a delivery; it stays pending", slog.String("error", err.Error()))
		return
	}
	if c.Kind != "ok" {
		return
	}
	ev := new(crowdgatev1.Event)
	if err := proto.Unmarshal(c.Payload, ev); err != nil {
		s.settle(ctx, e, token, outbox.Settlement{Outcome: outbox.Drop}, outDropped)
		return
	}
	r, err := got.r, got.err
	if err == nil && !r.disabledSince.IsZero() {
		s.recordDisabled(ctx, r.ep, r.disabledSince, 1) // its first recording failed
	}
	if err != nil || r.ep.GetState() != crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED {
		if err != nil && !isNotFound(err) {
			// Not recorded: the entry stays pending and comes back.
			s.log.Warn("webhook: could not read the endpoint of a delivery", slog.String("endpoint_id", endpointID), slog.String("error", err.Error()))
			return
		}
		s.settle(ctx, e, token, outbox.Settlement{Outcome: outbox.Drop}, outDropped)
		return
	}
	keys, err := r.keys(s.st.box, s.now())
	if err != nil {
		// This replica's fault (its key ring cannot open the secret), not
		// the endpoint's: no attempt is made or counted against it. The
		// delivery is deferred, for a replica whose ring opens the secret
		// (or this one, once its ring is fixed).
		s.log.Error("webhook: a delivery's signing secret does not open with this replica's key ring; the delivery waits",
			slog.String("tenant_id", e.Tenant), slog.String("endpoint_id", endpointID), slog.String("error", err.Error()))
		s.deferDelivery(ctx, e, token)
		return
	}
	start := time.Now()
	a := s.attempt(ctx, r, ev, keys)
	took = time.Since(start)
	// The attempt is recorded beside the worker's next claim, not before
	// it: each is a write Redis answers after its fsync, and a worker that
	// waited for both would spend two of those per delivery. The
	// settlement keeps the slot taken above (at most Concurrency
	// settlements are in flight beside the attempts), and Run waits for
	// them all.
	settling = true
	s.settling.Add(1)
	go func() {
		defer func() {
			<-s.settleSlots
			s.settling.Done()
		}()
		s.record(ctx, e, token, c, r, ev, a)
	}()
}

// claim takes the lease of e's delivery with token, for an attempt and
// its settlement (the attempt timeout and 5 s).
func (s *Service) claim(ctx context.Context, e outbox.Entry, token string) (outbox.Claim, error) {
	return s.rec.Claim(ctx, e, token, s.cfg.AttemptTimeout+5*time.Second)
}

// deferDelivery puts a delivery whose lease the caller holds (with token)
// back in the schedule for three attempt timeouts (30 s by default, with
// up to 10% jitter), without an attempt counted or journaled: its entry is
// acknowledged, so a deferred delivery waits in the schedule rather than
// among the entries a replica holds (which only reclaims, a few at a
// time, bring back). Should Redis fail, the entry stays pending and comes
// back all the same.
func (s *Service) deferDelivery(ctx context.Context, e outbox.Entry, token string) {
	wait := jitter(3 * s.cfg.AttemptTimeout)
	st := outbox.Settlement{Outcome: outbox.Defer, Backoff: wait,
		Fields: []any{"nat", strconv.FormatInt(s.now().Add(wait).UnixMilli(), 10)}}
	if _, err := s.rec.Settle(ctx, e, token, st); err != nil {
		s.log.Warn("webhook: could not defer a delivery; it stays pending", slog.String("error", err.Error()))
		return
	}
	s.m.deferred.Inc()
}

// leaveLane gives an attempt's place in the lane back, and logs an
// endpoint becoming slow or answering in time again.
func (s *Service) leaveLane(t ticket, tenantID, endpointID string, took time.Duration) {
	changed, slow := s.lane.exit(t, took)
	switch {
	case !changed:
	case slow:
		s.log.Warn("webhook: endpoint is slow; its attempts in flight are capped until one answers in time",
			slog.String("tenant_id", tenantID), slog.String("endpoint_id", endpointID),
			slog.Duration("took", took), slog.Int("cap", s.lane.perEndpoint))
	default:
		s.log.Info("webhook: endpoint answers in time again", slog.String("tenant_id", tenantID), slog.String("endpoint_id", endpointID))
	}
}

// record settles a delivery's attempt a (an attempt of the run's
// c.RunAttempts+1th try) and acts on it: a success clears the endpoint's
// failures, a failure counts towards disabling it.
func (s *Service) record(ctx context.Context, e outbox.Entry, token string, c outbox.Claim, r *endpointRecord, ev *crowdgatev1.Event, a *crowdgatev1.WebhookAttempt) {
	s.m.duration.Observe(float64(a.GetLatencyMs()) / 1000)
	journal, _ := proto.Marshal(a)
	ok := a.GetError() == "" && a.GetHttpStatus() >= 200 && a.GetHttpStatus() < 300
	st := outbox.Settlement{Journal: journal}
	kind := outDelivered
	switch {
	case ok:
		st.Outcome = outbox.Done
	case c.RunAttempts < len(s.cfg.RetrySchedule):
		st.Outcome, kind = outbox.Retry, outRetry
		st.Backoff = jitter(s.cfg.RetrySchedule[c.RunAttempts])
		st.Fields = []any{"nat", strconv.FormatInt(s.now().Add(st.Backoff).UnixMilli(), 10)}
	default:
		st.Outcome, kind = outbox.Dead, outDead
	}
	if !s.settle(ctx, e, token, st, kind) {
		return
	}
	endpointID := r.ep.GetEndpointId()
	log := s.log.With(slog.String("endpoint_id", endpointID), slog.String("event_id", ev.GetEventId()), slog.Int("attempt", c.Attempts+1))
	if ok {
		if ct := ev.GetCreateTime(); ct != nil {
			s.m.latency.Observe(s.now().Sub(ct.AsTime()).Seconds())
		}
		if !r.failingSince.IsZero() {
			if err := s.st.rdb.HDel(ctx, s.st.endpointKey(e.Tenant, endpointID), "fs").Err(); err != nil {
				log.Warn("webhook: could not clear an endpoint's failures", slog.String("error", err.Error()))
			}
		}
		log.Debug("webhook: delivered")
		return
	}
	log.Info("webhook: attempt failed", slog.String("outcome", kind), slog.Int("http_status", int(a.GetHttpStatus())), slog.String("error", a.GetError()))
	s.failed(ctx, r, a.GetAttemptTime().AsTime())
}

// settle records an attempt's outcome, retrying a Redis failure a few
// times; false when it could not (the entry stays pending and is offered
// again, with the same webhook-id).
func (s *Service) settle(ctx context.Context, e outbox.Entry, token string, st outbox.Settlement, kind string) bool {
	err := tryBackingOff(ctx, 3, func(int) error {
		_, err := s.rec.Settle(ctx, e, token, st)
		return err
	})
	if err != nil {
		s.log.Error("webhook: could not record a delivery attempt; it will be retried", slog.String("error", err.Error()))
		return false
	}
	s.m.attempts.WithLabelValues(kind).Inc()
	return true
}

// tryBackingOff calls f (with the try's number, from 0) until it succeeds,
// at most tries times, waiting 100 ms before the second try and twice as
// long before each next one (or until ctx ends); it returns f's last error.
func tryBackingOff(ctx context.Context, tries int, f func(try int) error) error {
	var err error
	for try := range tries {
		if try > 0 {
			t := time.NewTimer(time.Duration(100<<(try-1)) * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if err = f(try); err == nil {
			return nil
		}
	}
	return err
}

// jitter adds up to 10% to d.
func jitter(d time.Duration) time.Duration { return d + rand.N(d/10+1) }

// attempt POSTs ev to the endpoint once, signed with keys.
func (s *Service) attempt(ctx context.Context, r *endpointRecord, ev *crowdgatev1.Event, keys [][]byte) *crowdgatev1.WebhookAttempt {
	start := s.now()
	a := &crowdgatev1.WebhookAttempt{AttemptTime: timestamppb.New(start)}
	body, err := Body(ev)
	if err != nil {
		a.Error = "the event could not be encoded"
		return a
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, r.ep.GetUrl(), bytes.NewReader(body))
	if err != nil {
		a.Error = "invalid URL"
		return a
	}
	unix := start.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Crowdgate-Webhooks/1")
	req.Header.Set("webhook-id", ev.GetEventId())
	req.Header.Set("webhook-timestamp", strconv.FormatInt(unix, 10))
	req.Header.Set("webhook-signature", signature(ev.GetEventId(), unix, body, keys...))
	t0 := time.Now()
	resp, err := s.client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
		_ = resp.Body.Close()
		a.HttpStatus = int32(resp.StatusCode)
		if resp.StatusCode < 200 || resp.StatusCode >= 300 {
			a.Error = "HTTP " + strconv.Itoa(resp.StatusCode)
			if resp.StatusCode >= 300 && resp.StatusCode < 400 {
				a.Error += " (redirects are not followed)"
			}
		}
	} else {
		a.Error = errorText(err)
	}
	a.LatencyMs = time.Since(t0).Milliseconds()
	return a
}

// Body is the body of ev's delivery: the Event as protojson with proto
// field names; without its data when that would exceed MaxBodyBytes.
func Body(ev *crowdgatev1.Event) ([]byte, error) {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	b, err := opts.Marshal(ev)
	if err != nil || len(b) <= MaxBodyBytes {
		return b, err
	}
	small := proto.CloneOf(ev)
	small.Data = nil
	return opts.Marshal(small)
}

// errorText describes a failed request without its URL, an address or
// anything the endpoint sent: "timeout", "connection refused", ...
func errorText(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, errBlockedAddress):
		return errBlockedAddress.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &dnsErr):
		return "the host does not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if isTLSError(err) {
		return "TLS handshake failed"
	}
	return "request failed"
}

// failed records an attempt made at now that failed on its endpoint, and
// disables the endpoint once it has failed for DisableAfter: from its
// first failed attempt since the last success to this one (the attempts'
// times, not when they are recorded).
func (s *Service) failed(ctx context.Context, r *endpointRecord, now time.Time) {
	tenantID, id := r.ep.GetTenantId(), r.ep.GetEndpointId()
	key := s.st.endpointKey(tenantID, id)
	since := r.failingSince
	if since.IsZero() {
		set, err := markFailingScript.Run(ctx, s.st.rdb, []string{key}, strconv.FormatInt(now.UnixMilli(), 10)).Int()
		if err != nil || set != 0 {
			return // marked now, or the endpoint is gone
		}
		ms, err := s.st.rdb.HGet(ctx, key, "fs").Int64()
		if err != nil {
			return
		}
		since = time.UnixMilli(ms)
	}
	if now.Sub(since) < s.cfg.DisableAfter {
		return
	}
	reason := "every delivery attempt failed for " + s.cfg.DisableAfter.String()
	var flipped bool
	got, err := s.st.changeEndpoint(ctx, tenantID, id, func(cur *endpointRecord) ([]any, []string, error) {
		// Judged again on the record as it is now: the failures read
		// before the attempt may have ended (a success) and started again.
		if cur.ep.GetState() != crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED || cur.failingSince.IsZero() ||
			now.Sub(cur.failingSince) < s.cfg.DisableAfter {
			return nil, nil, nil
		}
		since = cur.failingSince
		cur.ep.State = crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_DISABLED
		cur.ep.DisabledReason = reason
		cur.ep.UpdateTime = timestamppb.New(s.now())
		flipped = true
		// The event is owed until it is recorded (recordDisabled): a
		// failed recording is tried again by the next reader.
		return []any{"dev", strconv.FormatInt(since.UnixMilli(), 10)}, nil, nil
	})
	if err != nil {
		s.log.Warn("webhook: could not disable a failing endpoint", slog.String("endpoint_id", id), slog.String("error", err.Error()))
		return
	}
	if !flipped {
		return
	}
	s.m.disabled.Inc()
	s.log.Warn("webhook: endpoint disabled: it kept failing", slog.String("endpoint_id", id), slog.Duration("failing_for", now.Sub(since)))
	s.recordDisabled(ctx, got.ep, since, 3)
}

// markFailingScript marks the endpoint KEYS[1] failing since ARGV[1]
// unless it is already: 1 when marked, 0 when it was failing already, -1
// when the endpoint is gone (deleted while its attempt ran: no field is
// written, which would make a key no one deletes).
var markFailingScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
return redis.call('HSETNX', KEYS[1], 'fs', ARGV[1])
`)

// recordDisabled records the webhook_endpoint.disabled event of a disable
// whose failures started at since, in up to tries tries, and then clears
// the record's mark that the event is owed. Its id is made from the
// endpoint and since, so recording it again records nothing new. When
// every try fails the mark stays, and whatever reads the endpoint next
// tries again: the fan-out of the tenant's next event, a delivery of the
// endpoint (it is dropped), or UpdateWebhookEndpoint, which records the
// event before it enables the endpoint again.
func (s *Service) recordDisabled(ctx context.Context, ep *crowdgatev1.WebhookEndpoint, since time.Time, tries int) bool {
	ev := events.NewEvent(ep.GetTenantId(), events.TypeWebhookEndpointDisabled, "webhook_endpoints/"+ep.GetEndpointId(),
		s.now(), strconv.FormatInt(since.UnixMilli(), 10))
	ep = proto.CloneOf(ep)
	// The event is read by any key of the tenant (ListEvents needs READ)
	// and sent to its other endpoints; an endpoint's URL may carry a
	// capability secret only an ADMIN key reads. Its origin says which.
	ep.Url = weburl.Origin(ep.GetUrl())
	ep.State = crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_DISABLED
	ev.Data = &crowdgatev1.Event_WebhookEndpoint{WebhookEndpoint: ep}
	err := tryBackingOff(ctx, tries, func(try int) error {
		err := s.events.Append(ctx, ev)
		if err != nil {
			s.log.Warn("webhook: could not record webhook_endpoint.disabled", slog.String("endpoint_id", ep.GetEndpointId()),
				slog.Int("try", try+1), slog.String("error", err.Error()))
		}
		return err
	})
	if err != nil {
		return false
	}
	key := s.st.endpointKey(ep.GetTenantId(), ep.GetEndpointId())
	// Cleared only if still this disable's mark: a newer disable's stays
	// owed.
	if err := storage.DelFieldIf(ctx, s.st.rdb, key, "dev", strconv.FormatInt(since.UnixMilli(), 10)); err != nil {
		s.log.Warn("webhook: could not clear the mark of a recorded webhook_endpoint.disabled; it is recorded again (once)", slog.String("error", err.Error()))
	}
	return true
}
