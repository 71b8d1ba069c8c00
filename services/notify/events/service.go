package events

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
)

// LiveHeader is the response header a WatchEvents stream sends once it is
// live: its value is the cursor the stream sends events after. A call that
// fails ends without it.
const LiveHeader = "x-crowdgate-watch-cursor"

// Page sizes of ListEvents.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Service serves EventService over the log: a caller reads its own
// tenant's events only.
type Service struct {
	crowdgatev1.UnimplementedEventServiceServer
	log *Log

	mu      sync.Mutex
	streams map[string]int // open WatchEvents streams by tenant
}

// NewService returns the EventService of l.
func NewService(l *Log) *Service { return &Service{log: l, streams: map[string]int{}} }

// openStream counts a tenant's new stream, if the tenant has room for it
// (Settings.MaxStreams on this replica); the returned func closes it.
func (s *Service) openStream(tenantID string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[tenantID] >= s.log.set.MaxStreams {
		return nil, &serviceerror.ResourceExhausted{
			Message:    fmt.Sprintf("the tenant holds %d WatchEvents streams open on this replica, the most it may (CROWDGATE_EVENT_MAX_STREAMS); close one, or resume from the last cursor", s.log.set.MaxStreams),
			RetryAfter: time.Second,
		}
	}
	s.streams[tenantID]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.streams[tenantID]--; s.streams[tenantID] == 0 {
			delete(s.streams, tenantID)
		}
	}, nil
}

// ListEvents returns a page of the caller's tenant's events.
func (s *Service) ListEvents(ctx context.Context, req *crowdgatev1.ListEventsRequest) (*crowdgatev1.ListEventsResponse, error) {
	f, err := NewFilter("types", req.GetTypes())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, serviceerror.NewInvalidArgument("page_size", "must not be negative")
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	after := req.GetCursor()
	if after != "" && !ValidCursor(after) {
		return nil, serviceerror.NewInvalidArgument("cursor", "is not an event cursor (an event's cursor field)")
	}
	if tok := req.GetPageToken(); tok != "" {
		if !ValidCursor(tok) {
			return nil, serviceerror.NewInvalidArgument("page_token", "is not a page token of ListEvents")
		}
		after = tok
	}
	q := Query{Filter: f, After: after, Limit: size}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, serviceerror.NewInvalidArgument("start_time", "%v", err)
		}
		q.Start = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, serviceerror.NewInvalidArgument("end_time", "%v", err)
		}
		q.End = t.AsTime()
		if !q.Start.IsZero() && q.End.Before(q.Start) {
			return nil, serviceerror.NewInvalidArgument("end_time", "must not be before start_time")
		}
	}
	page, err := s.log.ListPage(ctx, tenant.FromContext(ctx), q)
	if err != nil {
		return nil, err
	}
	next := page.Next
	if next == "" {
		// An empty log: resume from its start.
		next = "0-0"
	}
	return &crowdgatev1.ListEventsResponse{Events: page.Events, NextPageToken: next, CaughtUp: page.CaughtUp}, nil
}

// WatchEvents streams the caller's tenant's events from a cursor.
func (s *Service) WatchEvents(req *crowdgatev1.WatchEventsRequest, stream crowdgatev1.EventService_WatchEventsServer) error {
	ctx := stream.Context()
	f, err := NewFilter("types", req.GetTypes())
	if err != nil {
		return err
	}
	if c := req.GetCursor(); c != "" && !ValidCursor(c) {
		return serviceerror.NewInvalidArgument("cursor", "is not an event cursor (an event's cursor field)")
	}
	tenantID := tenant.FromContext(ctx)
	closeStream, err := s.openStream(tenantID)
	if err != nil {
		return err
	}
	defer closeStream()
	cursor := req.GetCursor()
	if cursor == "" {
		if cursor, err = s.log.Last(ctx, tenantID); err != nil {
			return err
		}
	}
	// The stream is live from here: the header tells the client that every
	// event recorded from now on will be sent.
	if err := stream.SendHeader(metadata.Pairs(LiveHeader, cursor)); err != nil {
		return err
	}
	err = s.log.Watch(ctx, tenantID, f, cursor, func(ev *crowdgatev1.Event) error {
		return stream.Send(&crowdgatev1.WatchEventsResponse{Event: ev})
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}
