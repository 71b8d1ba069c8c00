package webhook

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/outbox"
)

// Request bounds.
const (
	maxDescription = 512
	maxEventTypes  = 20
)

// requireAdmin refuses a caller without the ADMIN scope: managing
// endpoints decides where a tenant's data is sent. A call without a
// principal (a test calling the service directly) is let through.
func requireAdmin(ctx context.Context, method string) error {
	p, ok := access.PrincipalFromContext(ctx)
	if ok && p.Scope != crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN {
		return &serviceerror.PermissionDenied{Message: method + " needs an ADMIN key"}
	}
	return nil
}

// validate checks an endpoint's settable fields; prefix names the request
// field that holds them ("" or "endpoint.").
func (s *Service) validate(ctx context.Context, prefix, url string, types []string, description string) error {
	if err := s.guard.checkURL(ctx, prefix+"url", url); err != nil {
		return err
	}
	return checkFields(prefix, types, description)
}

// checkFields checks an endpoint's event types and description.
func checkFields(prefix string, types []string, description string) error {
	if len(types) > maxEventTypes {
		return serviceerror.NewInvalidArgument(prefix+"event_types", "at most %d types", maxEventTypes)
	}
	if _, err := events.NewFilter(prefix+"event_types", types); err != nil {
		return err
	}
	if !utf8.ValidString(description) || utf8.RuneCountInString(description) > maxDescription {
		return serviceerror.NewInvalidArgument(prefix+"description", "must be UTF-8 text of at most %d characters", maxDescription)
	}
	return nil
}

// CreateWebhookEndpoint registers an endpoint; see the proto.
func (s *Service) CreateWebhookEndpoint(ctx context.Context, req *crowdgatev1.CreateWebhookEndpointRequest) (*crowdgatev1.CreateWebhookEndpointResponse, error) {
	if err := requireAdmin(ctx, "CreateWebhookEndpoint"); err != nil {
		return nil, err
	}
	if err := s.validate(ctx, "", req.GetUrl(), req.GetEventTypes(), req.GetDescription()); err != nil {
		return nil, err
	}
	now := s.now()
	ep := &crowdgatev1.WebhookEndpoint{
		EndpointId:  newEndpointID(now),
		TenantId:    tenant.FromContext(ctx),
		Url:         req.GetUrl(),
		EventTypes:  slices.Clone(req.GetEventTypes()),
		Description: req.GetDescription(),
		State:       crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED,
		CreateTime:  timestamppb.New(now),
		UpdateTime:  timestamppb.New(now),
	}
	secret := newSecret()
	if err := s.st.createEndpoint(ctx, ep, secret, s.cfg.MaxEndpoints); err != nil {
		return nil, err
	}
	return &crowdgatev1.CreateWebhookEndpointResponse{Endpoint: ep, Secret: secret}, nil
}

// GetWebhookEndpoint returns an endpoint of the caller's tenant.
func (s *Service) GetWebhookEndpoint(ctx context.Context, req *crowdgatev1.GetWebhookEndpointRequest) (*crowdgatev1.GetWebhookEndpointResponse, error) {
	r, err := s.st.getEndpoint(ctx, tenant.FromContext(ctx), req.GetEndpointId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetWebhookEndpointResponse{Endpoint: r.ep}, nil
}

// ListWebhookEndpoints pages the caller's tenant's endpoints, oldest first.
func (s *Service) ListWebhookEndpoints(ctx context.Context, req *crowdgatev1.ListWebhookEndpointsRequest) (*crowdgatev1.ListWebhookEndpointsResponse, error) {
	page, err := paging.Parse("webhook_endpoints", req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	rs, next, err := s.st.listEndpoints(ctx, tenant.FromContext(ctx), page.After, page.Size)
	if err != nil {
		return nil, err
	}
	resp := &crowdgatev1.ListWebhookEndpointsResponse{Endpoints: []*crowdgatev1.WebhookEndpoint{}, NextPageToken: page.Token(next)}
	for _, r := range rs {
		resp.Endpoints = append(resp.Endpoints, r.ep)
	}
	return resp, nil
}

// updatable are the fields UpdateWebhookEndpoint changes.
var updatable = []string{"url", "event_types", "description", "state"}

// UpdateWebhookEndpoint changes an endpoint; see the proto.
func (s *Service) UpdateWebhookEndpoint(ctx context.Context, req *crowdgatev1.UpdateWebhookEndpointRequest) (*crowdgatev1.UpdateWebhookEndpointResponse, error) {
	if err := requireAdmin(ctx, "UpdateWebhookEndpoint"); err != nil {
		return nil, err
	}
	in := req.GetEndpoint()
	if in == nil {
		return nil, serviceerror.NewInvalidArgument("endpoint", "is required")
	}
	// Another tenant's endpoint, or none, is NOT_FOUND whatever the body.
	if _, err := s.st.getEndpoint(ctx, tenant.FromContext(ctx), in.GetEndpointId()); err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		paths = updatable
		if in.GetState() == crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_UNSPECIFIED {
			paths = updatable[:3]
		}
	}
	want := map[string]bool{}
	for _, p := range paths {
		if !slices.Contains(updatable, p) {
			return nil, serviceerror.NewInvalidArgument("update_mask", "%q cannot be changed (url, event_types, description, state)", p)
		}
		want[p] = true
	}
	if want["url"] {
		if err := s.guard.checkURL(ctx, "endpoint.url", in.GetUrl()); err != nil {
			return nil, err
		}
	}
	if want["event_types"] || want["description"] {
		if err := checkFields("endpoint.", in.GetEventTypes(), in.GetDescription()); err != nil {
			return nil, err
		}
	}
	switch st := in.GetState(); {
	case !want["state"]:
	case st == crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED, st == crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_DISABLED:
	default:
		return nil, serviceerror.NewInvalidArgument("endpoint.state", "must be WEBHOOK_ENDPOINT_STATE_ENABLED or WEBHOOK_ENDPOINT_STATE_DISABLED")
	}
	now := s.now()
	if want["state"] && in.GetState() == crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED {
		// A disable's event, if a failure kept it from being recorded, is
		// recorded before the endpoint is enabled again.
		cur, err := s.st.getEndpoint(ctx, tenant.FromContext(ctx), in.GetEndpointId())
		if err != nil {
			return nil, err
		}
		if !cur.disabledSince.IsZero() && !s.recordDisabled(ctx, cur.ep, cur.disabledSince, 3) {
			return nil, errDisabledEventOwed()
		}
	}
	r, err := s.st.changeEndpoint(ctx, tenant.FromContext(ctx), in.GetEndpointId(), func(r *endpointRecord) ([]any, []string, error) {
		var del []string
		ep := r.ep
		if want["url"] {
			ep.Url = in.GetUrl()
		}
		if want["event_types"] {
			ep.EventTypes = slices.Clone(in.GetEventTypes())
		}
		if want["description"] {
			ep.Description = in.GetDescription()
		}
		if want["state"] && in.GetState() != ep.GetState() {
			if in.GetState() == crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED && !r.disabledSince.IsZero() {
				// Disabled since the check above, its event not recorded
				// yet: that comes first.
				return nil, nil, errDisabledEventOwed()
			}
			ep.State = in.GetState()
			if ep.State == crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED {
				ep.DisabledReason = ""
				del = append(del, "fs")
			} else {
				ep.DisabledReason = "disabled by an operator"
			}
		}
		ep.UpdateTime = timestamppb.New(now)
		return []any{}, del, nil
	})
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.UpdateWebhookEndpointResponse{Endpoint: r.ep}, nil
}

// DeleteWebhookEndpoint removes an endpoint; its pending deliveries are
// dropped when their turn comes.
func (s *Service) DeleteWebhookEndpoint(ctx context.Context, req *crowdgatev1.DeleteWebhookEndpointRequest) (*crowdgatev1.DeleteWebhookEndpointResponse, error) {
	if err := requireAdmin(ctx, "DeleteWebhookEndpoint"); err != nil {
		return nil, err
	}
	if !validEndpointID(req.GetEndpointId()) {
		return nil, &serviceerror.NotFound{Resource: "webhook endpoint", ID: req.GetEndpointId()}
	}
	owed := func(r *endpointRecord) bool { return s.recordDisabled(ctx, r.ep, r.disabledSince, 3) }
	if err := s.st.deleteEndpoint(ctx, tenant.FromContext(ctx), req.GetEndpointId(), owed); err != nil {
		return nil, err
	}
	return &crowdgatev1.DeleteWebhookEndpointResponse{}, nil
}

// RotateWebhookSecret makes a new secret; the previous one signs too for
// RotationOverlap. A secret rotated out earlier and still in its own
// overlap keeps signing until that ends (a rotation sent twice, its first
// answer lost, must not cut short the secret receivers still use); a third
// rotation while two secrets rotated out still sign is FAILED_PRECONDITION.
func (s *Service) RotateWebhookSecret(ctx context.Context, req *crowdgatev1.RotateWebhookSecretRequest) (*crowdgatev1.RotateWebhookSecretResponse, error) {
	if err := requireAdmin(ctx, "RotateWebhookSecret"); err != nil {
		return nil, err
	}
	tenantID, id := tenant.FromContext(ctx), req.GetEndpointId()
	if !validEndpointID(id) {
		return nil, &serviceerror.NotFound{Resource: "webhook endpoint", ID: id}
	}
	now := s.now()
	until := now.Add(RotationOverlap)
	secret := newSecret()
	r, err := s.st.changeEndpoint(ctx, tenantID, id, func(r *endpointRecord) ([]any, []string, error) {
		previousSigns := len(r.sealedPrevious) > 0 && now.Before(r.previousUntil)
		if previousSigns && len(r.sealedOlder) > 0 && now.Before(r.olderUntil) {
			return nil, nil, serviceerror.NewFailedPrecondition(
				"two secrets rotated out of webhook endpoint %s still sign, until %s: rotate it again after that",
				id, r.olderUntil.UTC().Format(time.RFC3339))
		}
		r.ep.UpdateTime = timestamppb.New(now)
		// The current secret, sealed as it is (same context), becomes the
		// previous one, and the previous one, while it still signs, the
		// older one.
		set := []any{
			"sec", s.st.box.Seal([]byte(secret), sealContext(tenantID, id)),
			"osec", r.sealed,
			"oexp", strconv.FormatInt(until.UnixMilli(), 10),
		}
		if previousSigns {
			return append(set, "osec2", r.sealedPrevious, "oexp2", strconv.FormatInt(r.previousUntil.UnixMilli(), 10)), nil, nil
		}
		return set, []string{"osec2", "oexp2"}, nil
	})
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.RotateWebhookSecretResponse{Endpoint: r.ep, Secret: secret, PreviousSecretExpireTime: timestamppb.New(until)}, nil
}

// ListWebhookDeliveries pages an endpoint's deliveries, newest first.
func (s *Service) ListWebhookDeliveries(ctx context.Context, req *crowdgatev1.ListWebhookDeliveriesRequest) (*crowdgatev1.ListWebhookDeliveriesResponse, error) {
	tenantID := tenant.FromContext(ctx)
	r, err := s.st.getEndpoint(ctx, tenantID, req.GetEndpointId())
	if err != nil {
		return nil, err
	}
	id := r.ep.GetEndpointId()
	page, err := paging.Parse("webhook_deliveries/"+id, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	hi := "+"
	if page.After != "" {
		hi = "(" + page.After
	}
	members, err := s.st.rdb.ZRevRangeByLex(ctx, s.st.deliveryIndex(tenantID, id), &redis.ZRangeBy{Max: hi, Min: "-", Count: int64(page.Size + 1)}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	next := ""
	if len(members) > page.Size {
		members = members[:page.Size]
		next = members[len(members)-1]
	}
	ds, err := s.deliveries(ctx, tenantID, id, members)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListWebhookDeliveriesResponse{Deliveries: ds, NextPageToken: page.Token(next)}, nil
}

// deliveries reads the deliveries of index members, in their order, in
// one round trip; expired ones and repeats are left out.
func (s *Service) deliveries(ctx context.Context, tenantID, endpointID string, members []string) ([]*crowdgatev1.WebhookDelivery, error) {
	type cmds struct {
		rec     *redis.SliceCmd
		journal *redis.StringSliceCmd
	}
	cs := make([]cmds, len(members))
	if _, err := s.st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			it := item(endpointID, memberEvent(m))
			sh := shardOf(it)
			cs[i].rec = p.HMGet(ctx, s.rec.Record(sh, tenantID, it), "st", "ty", "ct", "nat")
			cs[i].journal = p.LRange(ctx, s.rec.Journal(sh, tenantID, it), 0, -1)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	out := []*crowdgatev1.WebhookDelivery{}
	seen := map[string]bool{}
	for i, m := range members {
		vals := cs[i].rec.Val()
		str := func(j int) string {
			if j >= len(vals) {
				return ""
			}
			v, _ := vals[j].(string)
			return v
		}
		eventID := memberEvent(m)
		if str(0) == "" || seen[eventID] {
			continue
		}
		seen[eventID] = true
		d := &crowdgatev1.WebhookDelivery{
			DeliveryId: deliveryID(endpointID, eventID),
			EndpointId: endpointID,
			EventId:    eventID,
			EventType:  str(1),
			CreateTime: msTime(str(2)),
			Attempts:   []*crowdgatev1.WebhookAttempt{},
		}
		switch str(0) {
		case outbox.StateQueued:
			d.State = crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING
			d.NextAttemptTime = msTime(str(3))
		case outbox.StateDone:
			d.State = crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED
		default:
			d.State = crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DEAD
		}
		for _, j := range cs[i].journal.Val() {
			a := new(crowdgatev1.WebhookAttempt)
			if proto.Unmarshal([]byte(j), a) == nil {
				d.Attempts = append(d.Attempts, a)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func msTime(v string) *timestamppb.Timestamp {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil
	}
	return timestamppb.New(time.UnixMilli(ms))
}

// enabledEndpoint returns an endpoint that can take deliveries.
func (s *Service) enabledEndpoint(ctx context.Context, tenantID, id string) (*endpointRecord, error) {
	r, err := s.st.getEndpoint(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if r.ep.GetState() != crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED {
		return nil, serviceerror.NewFailedPrecondition("webhook endpoint %s is disabled: enable it with UpdateWebhookEndpoint first", id)
	}
	return r, nil
}

// RedeliverWebhookEvent queues a new run of attempts of one event.
func (s *Service) RedeliverWebhookEvent(ctx context.Context, req *crowdgatev1.RedeliverWebhookEventRequest) (*crowdgatev1.RedeliverWebhookEventResponse, error) {
	if err := requireAdmin(ctx, "RedeliverWebhookEvent"); err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	r, err := s.enabledEndpoint(ctx, tenantID, req.GetEndpointId())
	if err != nil {
		return nil, err
	}
	eventID := req.GetEventId()
	notFound := &serviceerror.NotFound{Resource: "webhook delivery of event", ID: eventID}
	if eventID == "" || len(eventID) > 128 {
		return nil, notFound
	}
	it := item(r.ep.GetEndpointId(), eventID)
	pb, err := s.st.rdb.HGet(ctx, s.rec.Record(shardOf(it), tenantID, it), "pb").Result()
	if errors.Is(err, redis.Nil) {
		return nil, notFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	ev := new(crowdgatev1.Event)
	if err := proto.Unmarshal([]byte(pb), ev); err != nil {
		return nil, err
	}
	if _, err := s.enqueue(ctx, []delivery{{r.ep, ev}}, true); err != nil {
		return nil, err
	}
	ds, err := s.deliveries(ctx, tenantID, r.ep.GetEndpointId(), []string{indexMember(ev.GetCreateTime().AsTime(), eventID)})
	if err != nil {
		return nil, err
	}
	resp := &crowdgatev1.RedeliverWebhookEventResponse{}
	if len(ds) > 0 {
		resp.Delivery = ds[0]
	}
	return resp, nil
}

// redeliverBatch is how many deliveries RedeliverWebhookEvents queues
// per round trip, and redeliverInFlight how many batches it has in flight
// at once (the log is read while earlier batches are written).
const (
	redeliverBatch    = 512
	redeliverInFlight = 4
)

// RedeliverWebhookEvents queues a new run of attempts of every event of the
// log since a time that the endpoint subscribes to.
func (s *Service) RedeliverWebhookEvents(ctx context.Context, req *crowdgatev1.RedeliverWebhookEventsRequest) (*crowdgatev1.RedeliverWebhookEventsResponse, error) {
	if err := requireAdmin(ctx, "RedeliverWebhookEvents"); err != nil {
		return nil, err
	}
	if req.GetStartTime() == nil {
		return nil, serviceerror.NewInvalidArgument("start_time", "is required")
	}
	if err := req.GetStartTime().CheckValid(); err != nil {
		return nil, serviceerror.NewInvalidArgument("start_time", "is not a valid time")
	}
	tenantID := tenant.FromContext(ctx)
	r, err := s.enabledEndpoint(ctx, tenantID, req.GetEndpointId())
	if err != nil {
		return nil, err
	}
	// Queued in batches (two round trips per batch, not per event), a few
	// batches in flight while the log is read on.
	var (
		queued atomic.Int64
		batch  []delivery
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(redeliverInFlight)
	flush := func() {
		b := batch
		batch = nil
		g.Go(func() error {
			n, err := s.enqueue(gctx, b, true)
			queued.Add(int64(n))
			return err
		})
	}
	err = s.events.Since(gctx, tenantID, req.GetStartTime().AsTime(), func(ev *crowdgatev1.Event) error {
		if ev.GetTenantId() != tenantID || !selects(r.ep, ev.GetType()) {
			return nil
		}
		if batch = append(batch, delivery{r.ep, ev}); len(batch) == redeliverBatch {
			flush()
		}
		return gctx.Err()
	})
	if err == nil && len(batch) > 0 {
		flush()
	}
	if werr := g.Wait(); werr != nil {
		err = werr // a failed batch stops the read: it is the cause
	}
	if err != nil {
		return nil, err
	}
	n := queued.Load()
	return &crowdgatev1.RedeliverWebhookEventsResponse{Queued: int32(n)}, nil
}
