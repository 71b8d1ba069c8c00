package events

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

func newLog(t *testing.T, tenants ...string) (*Log, *redistest.Redis) {
	t.Helper()
	r := redistest.New(t)
	l, err := New(Config{Redis: r.Client, Prefix: r.Prefix, Settings: Settings{Poll: 10 * time.Millisecond},
		Tenants: func(context.Context) ([]string, error) { return tenants, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return l, r
}

func sessionEvent(l *Log, tenantID, typ, sessionID string) *crowdgatev1.Event {
	ev := l.New(tenantID, typ, "sessions/"+sessionID, sessionID)
	ev.Data = &crowdgatev1.Event_Session{Session: &crowdgatev1.Session{SessionId: sessionID, TenantId: tenantID}}
	return ev
}

func ids(evs []*crowdgatev1.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.GetType()+" "+e.GetResource())
	}
	return out
}

func TestAppendRecordsAnEventOnce(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t, "t1")
	ev := sessionEvent(l, "t1", TypeSessionEnded, "s1")
	for range 3 {
		if err := l.Append(ctx, proto.CloneOf(ev)); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := l.List(ctx, "t1", Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"session.ended sessions/s1"}, ids(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got[0].GetEventId() != ev.GetEventId() || got[0].GetCursor() == "" || got[0].GetSession().GetSessionId() != "s1" {
		t.Errorf("event read back = %v", got[0])
	}
	if other, _, _ := l.List(ctx, "t2", Query{Limit: 10}); len(other) != 0 {
		t.Errorf("another tenant reads %d events", len(other))
	}
}

func TestListResumesExactlyAfterTheCursorAndFilters(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t, "t1")
	var want []string
	for i := range 7 {
		typ := TypeSessionStarted
		if i%2 == 1 {
			typ = TypeSubmissionDelivered
		}
		if err := l.Append(ctx, sessionEvent(l, "t1", typ, fmt.Sprint("s", i))); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%s sessions/s%d", typ, i))
	}
	var got []string
	after := ""
	for pages := 0; pages < 10; pages++ {
		evs, next, err := l.List(ctx, "t1", Query{After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(evs)...)
		if next == after {
			break
		}
		after = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged events (-want +got):\n%s", diff)
	}
	for _, types := range [][]string{{"submission.delivered"}, {"submission.*"}, {"submission."}} {
		f, err := NewFilter("types", types)
		if err != nil {
			t.Fatal(err)
		}
		evs, _, err := l.List(ctx, "t1", Query{Filter: f, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 3 {
			t.Errorf("types %v: %d events, want 3", types, len(evs))
		}
	}
	for _, bad := range []string{"submission.paid", "nothing.*", ""} {
		_, err := NewFilter("types", []string{bad})
		var ia *serviceerror.InvalidArgument
		if !asInvalid(err, &ia) || ia.Field != "types" {
			t.Errorf("type %q: err = %v, want INVALID_ARGUMENT on types", bad, err)
		}
	}
}

func TestWatchSendsNewEventsAfterTheCursor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, _ := newLog(t, "t1")
	if err := l.Append(ctx, sessionEvent(l, "t1", TypeSessionStarted, "old")); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- l.Watch(ctx, "t1", Filter{}, "", func(ev *crowdgatev1.Event) error {
			got <- ev.GetResource()
			return nil
		})
	}()
	// The watch starts after the newest event: wait until it has read its
	// start (its first List) by appending until it answers.
	for i := 0; ; i++ {
		if err := l.Append(ctx, sessionEvent(l, "t1", TypeSessionStarted, fmt.Sprint("new", i))); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r == "sessions/old" {
				t.Fatalf("watch from now sent an older event")
			}
			cancel()
			if err := <-done; err != context.Canceled {
				t.Errorf("watch ended with %v", err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestFollowHandlesEveryEventOnceAcrossConsumers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, r := newLog(t, "t1", "t2")
	l2, err := New(Config{Redis: r.Client, Prefix: r.Prefix, Settings: Settings{Poll: 10 * time.Millisecond},
		Tenants: func(context.Context) ([]string, error) { return []string{"t1", "t2"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	var mu sync.Mutex
	seen := map[string]int{}
	all := make(chan struct{})
	handle := func(_ context.Context, evs []*crowdgatev1.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			seen[ev.GetEventId()]++
			if len(seen) == n {
				close(all)
			}
		}
		return nil
	}
	go l.Follow(ctx, "hooks", handle)
	go l2.Follow(ctx, "hooks", handle)
	for i := range n {
		tn := []string{"t1", "t2"}[i%2]
		if err := l.Append(ctx, sessionEvent(l, tn, TypeSessionStarted, fmt.Sprint("s", i))); err != nil {
			t.Fatal(err)
		}
	}
	<-all
	cancel()
	mu.Lock()
	defer mu.Unlock()
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s handled %d times", id, c)
		}
	}
}

func TestRelayRecordsEachIntentOnceAndDeletesIt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, r := newLog(t, "t1")
	stream := r.Prefix + "evq:{sub:0}"
	ev := sessionEvent(l, "t1", TypeSubmissionDead, "x")
	body, err := Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	// The same intent written twice (a producer repeated after a fault)
	// becomes one event.
	for range 2 {
		if err := r.Client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{IntentField, body}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	go l.Relay(ctx, func() []string { return []string{stream} })
	for {
		n, err := r.Client.XLen(ctx, stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		<-time.After(5 * time.Millisecond)
	}
	got, _, err := l.List(ctx, "t1", Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].GetEventId() != ev.GetEventId() {
		t.Errorf("log after the relay = %v, want the one event", ids(got))
	}
}

// The relay looks when the intents' writer says so (Intended), not only at
// its next poll: here the poll is an hour away.
func TestTheRelayLooksWhenTheWriterSaysSo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := redistest.New(t)
	l, err := New(Config{Redis: r.Client, Prefix: r.Prefix, Settings: Settings{Poll: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	stream := r.Prefix + "evq:{sub:0}"
	intend := func(sessionID string) {
		body, err := Encode(sessionEvent(l, "t1", TypeSubmissionDead, sessionID))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{IntentField, body}}).Err(); err != nil {
			t.Fatal(err)
		}
		l.Intended()
	}
	recorded := func(n int) {
		t.Helper()
		for {
			got, _, err := l.List(ctx, "t1", Query{Limit: 10})
			if err != nil {
				t.Fatalf("after %d intents the log holds %d events: %v", n, len(got), err)
			}
			if len(got) == n {
				return
			}
			<-time.After(5 * time.Millisecond)
		}
	}
	intend("s1")
	go l.Relay(ctx, func() []string { return []string{stream} })
	recorded(1)
	intend("s2")
	recorded(2)
}

func TestIDIsStableAndDistinct(t *testing.T) {
	a, b := ID("t", "session.ended", "s1"), ID("t", "session.ended", "s2")
	if a != ID("t", "session.ended", "s1") || a == b || len(a) != 30 {
		t.Errorf("ID: %q %q", a, b)
	}
}

// Three replicas relay one intent stream: the log holds its intents in the
// order they were written (a submission's dead, retried and delivered must
// not be recorded out of order), each once, and the stream ends empty.
func TestRelayKeepsAStreamsOrderAcrossReplicas(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, r := newLog(t, "t1")
	stream := r.Prefix + "evq:{sub:0}"
	var want []string
	for i := range 600 {
		ev := sessionEvent(l, "t1", TypeSubmissionDelivered, fmt.Sprintf("s%04d", i))
		body, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{IntentField, body}}).Err(); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.GetType()+" "+ev.GetResource())
	}
	for range 3 {
		replica, err := New(Config{Redis: r.Client, Prefix: r.Prefix, Settings: Settings{Poll: 10 * time.Millisecond},
			Tenants: func(context.Context) ([]string, error) { return []string{"t1"}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		go replica.Relay(ctx, func() []string { return []string{stream} })
	}
	for {
		n, err := r.Client.XLen(ctx, stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		<-time.After(5 * time.Millisecond)
	}
	got, _, err := l.List(ctx, "t1", Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, ids(got)); diff != "" {
		t.Errorf("log after three relays (-written +recorded):\n%s", diff)
	}
}

// Entries that keep failing at the head of a stream's pending list do not
// hide the ones behind them: each reclaim goes on from where the last one
// stopped, so every entry that can be handled is, and only the failing
// ones stay pending.
func TestReclaimReachesEntriesBehindOnesThatKeepFailing(t *testing.T) {
	ctx := context.Background()
	l, r := newLog(t)
	key := r.Prefix + "reclaim-test"
	const group, total = "g", 2*batch + 10
	if err := r.Client.XGroupCreateMkStream(ctx, key, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range total {
		id, err := r.Client.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []string{"n", fmt.Sprint(i)}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// A member that read every entry and died.
	if err := r.Client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "gone", Streams: []string{key, ">"}, Count: total}).Err(); err != nil {
		t.Fatal(err)
	}
	failing := map[string]bool{}
	for _, id := range ids[:batch] {
		failing[id] = true
	}
	handled := map[string]bool{}
	c := &consumer{l: l, group: group, name: "me", created: map[string]bool{key: true}, cursors: map[string]string{},
		handle: func(_ context.Context, _ string, msgs []redis.XMessage) error {
			for _, m := range msgs {
				if failing[m.ID] {
					return fmt.Errorf("entry %s cannot be handled", m.ID)
				}
			}
			for _, m := range msgs {
				handled[m.ID] = true
			}
			return nil
		}}
	for range 4 {
		c.reclaim(ctx, []string{key})
	}
	if len(handled) != total-batch {
		t.Errorf("handled %d of the %d entries that can be, after 4 reclaims", len(handled), total-batch)
	}
	pending, err := r.Client.XPending(ctx, key, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count != batch {
		t.Errorf("%d entries pending, want the %d that keep failing", pending.Count, batch)
	}
}

// TestAConsumerForgetsStreamsNoLongerFollowed: what a consumer keeps per
// stream (its group made, its reclaim cursor) goes with the stream's
// tenant, so a long-running replica does not keep every tenant it ever
// followed.
func TestAConsumerForgetsStreamsNoLongerFollowed(t *testing.T) {
	c := &consumer{created: map[string]bool{"a": true, "b": true}, cursors: map[string]string{"a": "1-0", "b": "2-0"}}
	c.keepOnly([]string{"a", "c"})
	if diff := cmp.Diff(map[string]bool{"a": true}, c.created); diff != "" {
		t.Errorf("groups known after b stopped being followed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"a": "1-0"}, c.cursors); diff != "" {
		t.Errorf("reclaim cursors after b stopped being followed (-want +got):\n%s", diff)
	}
}

// TestALongRetentionKeepsEveryEvent: a retention reaching before 1970 (an
// operator's "keep for ever") used to make the trim point negative, Redis
// refused the append, and the id was marked seen all the same, so every
// later try of the event was taken for a repeat: the event was lost for
// good. An append that fails must not mark its id seen.
func TestALongRetentionKeepsEveryEvent(t *testing.T) {
	ctx := context.Background()
	r := redistest.New(t)
	newLogKeeping := func(keep time.Duration) *Log {
		l, err := New(Config{Redis: r.Client, Prefix: r.Prefix, Settings: Settings{Poll: 10 * time.Millisecond, Retention: keep},
			Tenants: func(context.Context) ([]string, error) { return []string{"t1"}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	century := newLogKeeping(100 * 365 * 24 * time.Hour)
	ev := sessionEvent(century, "t1", TypeSessionStarted, "s1")
	if err := century.Append(ctx, proto.CloneOf(ev)); err != nil {
		t.Fatalf("append with a retention of a century: %v", err)
	}
	century.Append(ctx, proto.CloneOf(sessionEvent(century, "t1", TypeSessionEnded, "s1")))
	got, _, err := newLogKeeping(7*24*time.Hour).List(ctx, "t1", Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"session.started sessions/s1", "session.ended sessions/s1"}, ids(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestAnAppendRedisRefusedIsAppendedWhenTriedAgain: the id of an event
// whose append failed is not taken for a repeat.
func TestAnAppendRedisRefusedIsAppendedWhenTriedAgain(t *testing.T) {
	ctx := context.Background()
	l, r := newLog(t, "t2")
	log, _ := Keys(r.Prefix, "t2")
	// The log's key holding a string: Redis refuses the XADD.
	if err := r.Client.Set(ctx, log, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ev := sessionEvent(l, "t2", TypeSessionStarted, "s1")
	if err := l.Append(ctx, proto.CloneOf(ev)); err == nil {
		t.Fatal("append to a key that is not a stream succeeded")
	}
	r.Client.Del(ctx, log)
	if err := l.Append(ctx, proto.CloneOf(ev)); err != nil {
		t.Fatal(err)
	}
	got, _, err := l.List(ctx, "t2", Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"session.started sessions/s1"}, ids(got)); diff != "" {
		t.Errorf("events after the append was tried again (-want +got):\n%s", diff)
	}
}

// TestAFilteredPageSaysWhenTheLogIsRead: a filter that selects one event
// of thousands gives short, even empty, pages before the end of the log;
// caught_up tells them from the end (a client that stopped at a short page
// used to miss the event).
func TestAFilteredPageSaysWhenTheLogIsRead(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t, "t1")
	for i := range scanLimit + 10 {
		if err := l.Append(ctx, sessionEvent(l, "t1", TypeSessionStarted, fmt.Sprint("s", i))); err != nil {
			t.Fatal(err)
		}
	}
	rare := l.New("t1", TypePoolClosed, "pools/p1", "1")
	rare.Data = &crowdgatev1.Event_Pool{Pool: &crowdgatev1.Pool{PoolId: "p1"}}
	if err := l.Append(ctx, rare); err != nil {
		t.Fatal(err)
	}
	f, err := NewFilter("types", []string{TypePoolClosed})
	if err != nil {
		t.Fatal(err)
	}
	var pages []string
	var found []string
	after := ""
	for range 10 {
		p, err := l.ListPage(ctx, "t1", Query{Filter: f, After: after, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, fmt.Sprintf("%d events, caught up %v", len(p.Events), p.CaughtUp))
		found = append(found, ids(p.Events)...)
		after = p.Next
		if p.CaughtUp {
			break
		}
	}
	want := []string{"0 events, caught up false", "1 events, caught up true"}
	if diff := cmp.Diff(want, pages); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pool.closed pools/p1"}, found); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// Read to its end, the next page is empty and caught up; a new event
	// makes the next one not empty.
	p, err := l.ListPage(ctx, "t1", Query{After: after, Limit: 100})
	if err != nil || len(p.Events) != 0 || !p.CaughtUp || p.Next != after {
		t.Errorf("a page after the end: %d events, caught up %v, next %q (want %q), %v", len(p.Events), p.CaughtUp, p.Next, after, err)
	}
}

// TestSinceReadsEveryEventFromATime: Since hands over every event created
// at or after a time, oldest first, across pages, and stops at the end.
func TestSinceReadsEveryEventFromATime(t *testing.T) {
	ctx := context.Background()
	l, _ := newLog(t, "t1")
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1200 {
		ev := sessionEvent(l, "t1", TypeSessionStarted, fmt.Sprint("s", i))
		ev.CreateTime = timestamppb.New(base.Add(time.Duration(i) * time.Second))
		if err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := l.Since(ctx, "t1", base.Add(300*time.Second), func(ev *crowdgatev1.Event) error {
		got = append(got, ev.GetResource())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 900 {
		t.Fatalf("Since handed %d events, want 900", len(got))
	}
	if got[0] != "sessions/s300" || got[899] != "sessions/s1199" {
		t.Errorf("Since handed %q to %q, want sessions/s300 to sessions/s1199", got[0], got[899])
	}
}
