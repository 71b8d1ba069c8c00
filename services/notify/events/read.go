package events

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// cursorPattern is an event's cursor: a stream entry id.
var cursorPattern = regexp.MustCompile(`^[0-9]{1,19}-[0-9]{1,19}$`)

// ValidCursor reports whether c can be an event's cursor.
func ValidCursor(c string) bool { return cursorPattern.MatchString(c) }

// Filter selects events by type: every type when empty; "x.*" (or "x.")
// selects the family x.
type Filter struct {
	exact    map[string]bool
	families []string
}

// NewFilter checks types and returns their filter; field names the request
// field in the error.
func NewFilter(field string, types []string) (Filter, error) {
	f := Filter{exact: map[string]bool{}}
	for _, t := range types {
		fam, isFamily := strings.CutSuffix(strings.TrimSuffix(t, "*"), ".")
		if isFamily || strings.HasSuffix(t, ".*") {
			known := false
			for _, k := range Types {
				known = known || strings.HasPrefix(k, fam+".")
			}
			if !known {
				return Filter{}, serviceerror.NewInvalidArgument(field, "%q is no family of event types (%s)", t, strings.Join(Types, ", "))
			}
			f.families = append(f.families, fam+".")
			continue
		}
		known := false
		for _, k := range Types {
			known = known || k == t
		}
		if !known {
			return Filter{}, serviceerror.NewInvalidArgument(field, "%q is no event type (%s)", t, strings.Join(Types, ", "))
		}
		f.exact[t] = true
	}
	return f, nil
}

// Match reports whether the filter selects an event of type typ.
func (f Filter) Match(typ string) bool {
	if len(f.exact) == 0 && len(f.families) == 0 {
		return true
	}
	if f.exact[typ] {
		return true
	}
	for _, p := range f.families {
		if strings.HasPrefix(typ, p) {
			return true
		}
	}
	return false
}

// Query selects events of one tenant for List.
type Query struct {
	Filter Filter
	// Start and End bound create_time: Start <= t < End (zero: unbounded).
	Start, End time.Time
	// After is a cursor: only events recorded after it.
	After string
	// Limit is the most events returned.
	Limit int
}

// scanLimit is the most entries one List call reads, whatever it returns:
// a page of a rare type ends early with a cursor to go on from.
const scanLimit = 5000

// Page is one answer of ListPage.
type Page struct {
	// Events are the selected events, oldest first.
	Events []*crowdgatev1.Event
	// Next is the cursor to go on from: the last entry read (selected or
	// not), or Query.After when none was.
	Next string
	// CaughtUp is set when the read reached the end of the log: nothing
	// after Next is recorded yet. A page may be short (even empty) without
	// it, when the read stopped at scanLimit entries.
	CaughtUp bool
}

// ListPage reads the tenant's events that q selects, from q.After on.
func (l *Log) ListPage(ctx context.Context, tenantID string, q Query) (Page, error) {
	key, _ := Keys(l.prefix, tenantID)
	p := Page{Next: q.After}
	const batch = 500
	for scanned := 0; scanned < scanLimit && len(p.Events) < q.Limit; {
		start := "-"
		if p.Next != "" {
			start = "(" + p.Next
		}
		msgs, err := l.rdb.XRangeN(ctx, key, start, "+", batch).Result()
		if err != nil {
			return Page{}, storage.Unavailable(err)
		}
		read := 0
		for _, m := range msgs {
			if len(p.Events) == q.Limit {
				break
			}
			read++
			p.Next = m.ID
			ev, err := decode(m.ID, m.Values)
			if err != nil {
				l.log.Error("events: unreadable entry skipped", "tenant_id", tenantID, "error", err.Error())
				continue
			}
			if q.selects(ev) {
				p.Events = append(p.Events, ev)
			}
		}
		scanned += read
		if len(msgs) < batch {
			p.CaughtUp = read == len(msgs)
			break
		}
	}
	return p, nil
}

// List is ListPage's events and cursor.
func (l *Log) List(ctx context.Context, tenantID string, q Query) ([]*crowdgatev1.Event, string, error) {
	p, err := l.ListPage(ctx, tenantID, q)
	return p.Events, p.Next, err
}

func (q Query) selects(ev *crowdgatev1.Event) bool {
	if !q.Filter.Match(ev.GetType()) {
		return false
	}
	t := ev.GetCreateTime().AsTime()
	if !q.Start.IsZero() && t.Before(q.Start) {
		return false
	}
	if !q.End.IsZero() && !t.Before(q.End) {
		return false
	}
	return true
}

// Since calls each for every event of the tenant's log created at or after
// since, oldest first (an operator's redelivery).
func (l *Log) Since(ctx context.Context, tenantID string, since time.Time, each func(*crowdgatev1.Event) error) error {
	after := ""
	for {
		p, err := l.ListPage(ctx, tenantID, Query{Start: since, After: after, Limit: 500})
		if err != nil {
			return err
		}
		for _, ev := range p.Events {
			if err := each(ev); err != nil {
				return err
			}
		}
		if p.CaughtUp {
			return nil
		}
		after = p.Next
	}
}

// Last returns the cursor of the tenant's newest event, "0-0" when it has
// none: where a watch "from now" starts.
func (l *Log) Last(ctx context.Context, tenantID string) (string, error) {
	key, _ := Keys(l.prefix, tenantID)
	msgs, err := l.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", storage.Unavailable(err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// Watch sends the tenant's events that f selects, recorded after cursor
// (after the newest when cursor is empty), and then each new one, until
// ctx ends or send fails. A store failure ends it with an error.
func (l *Log) Watch(ctx context.Context, tenantID string, f Filter, cursor string, send func(*crowdgatev1.Event) error) error {
	if cursor == "" {
		c, err := l.Last(ctx, tenantID)
		if err != nil {
			return err
		}
		cursor = c
	}
	for {
		woken := l.wake.wait()
		evs, next, err := l.List(ctx, tenantID, Query{Filter: f, After: cursor, Limit: 100})
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := send(ev); err != nil {
				return err
			}
		}
		if next != cursor {
			cursor = next
			continue
		}
		if err := l.idle(ctx, woken); err != nil {
			return err
		}
	}
}

// idle waits for woken (an event was recorded on this replica), the poll
// interval or the end of ctx, whose error it returns.
func (l *Log) idle(ctx context.Context, woken <-chan struct{}) error {
	t := time.NewTimer(l.set.Poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-woken:
	case <-t.C:
	}
	return nil
}

// broadcast wakes every waiter at once: wait returns a channel closed by
// the next notify.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}
