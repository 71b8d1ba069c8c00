package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// fakeLog is an in-memory event log: Follow hands the appended events to
// its handler in order, in batches of those not yet handled, offering a
// batch again while the handler fails.
type fakeLog struct {
	mu      sync.Mutex
	evs     []*crowdgatev1.Event
	ids     map[string]bool
	handled map[string]bool
	notify  chan struct{}
	// refuse makes Append fail for events of that type while set.
	refuse string
}

// refuseType makes appends of typ fail ("" accepts every type again).
func (l *fakeLog) refuseType(typ string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refuse = typ
}

func newFakeLog() *fakeLog {
	return &fakeLog{ids: map[string]bool{}, handled: map[string]bool{}, notify: make(chan struct{}, 1)}
}

// wasHandled reports whether a follower has handled the event (fanned it
// out) without an error.
func (l *fakeLog) wasHandled(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handled[id]
}

func (l *fakeLog) Append(_ context.Context, ev *crowdgatev1.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refuse != "" && ev.GetType() == l.refuse {
		return errors.New("fake log: the datastore is unavailable")
	}
	if l.ids[ev.GetEventId()] {
		return nil
	}
	l.ids[ev.GetEventId()] = true
	l.evs = append(l.evs, proto.CloneOf(ev))
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return nil
}

// offer hands ev to the followers again, as a log offering an event a
// second time would (at least once).
func (l *fakeLog) offer(ev *crowdgatev1.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, proto.CloneOf(ev))
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

func (l *fakeLog) Follow(ctx context.Context, _ string, handle func(ctx context.Context, evs []*crowdgatev1.Event) error) {
	next := 0
	for ctx.Err() == nil {
		// Every event not yet handled, as one batch (the real log hands
		// out up to 200 of a tenant's at once).
		l.mu.Lock()
		batch := append([]*crowdgatev1.Event(nil), l.evs[next:]...)
		l.mu.Unlock()
		if len(batch) > 0 {
			if handle(ctx, batch) == nil {
				next += len(batch)
				l.mu.Lock()
				for _, ev := range batch {
					l.handled[ev.GetEventId()] = true
				}
				l.mu.Unlock()
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-l.notify:
		}
	}
}

func (l *fakeLog) Since(_ context.Context, tenantID string, since time.Time, each func(*crowdgatev1.Event) error) error {
	l.mu.Lock()
	evs := append([]*crowdgatev1.Event(nil), l.evs...)
	l.mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.GetTenantId() != tenantID || ev.GetCreateTime().AsTime().Before(since) || seen[ev.GetEventId()] {
			continue
		}
		seen[ev.GetEventId()] = true
		if err := each(ev); err != nil {
			return err
		}
	}
	return nil
}

func (l *fakeLog) ofType(typ string) []*crowdgatev1.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*crowdgatev1.Event
	for _, ev := range l.evs {
		if ev.GetType() == typ {
			out = append(out, ev)
		}
	}
	return out
}

// fakeResolver resolves names from a map.
type fakeResolver map[string][]string

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := r[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// fixture is a webhook service on a test Redis, with a fake event log, a
// fake clock and its logs captured.
type fixture struct {
	t     testing.TB
	ctx   context.Context
	redis *redistest.Redis
	box   *secretbox.Box
	log   *fakeLog
	clock *fakeclock.Clock
	logs  *syncBuffer
	svc   *Service
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testSettings deliver at once and retry after milliseconds.
func testSettings() Settings {
	return Settings{
		AllowPrivate:      true,
		RetrySchedule:     []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond},
		DisableAfter:      time.Hour,
		AttemptTimeout:    5 * time.Second,
		Concurrency:       4,
		PollInterval:      5 * time.Millisecond,
		VisibilityTimeout: 10 * time.Second,
	}
}

func newFixture(t testing.TB, change func(*Config)) *fixture {
	t.Helper()
	f := &fixture{
		t:     t,
		ctx:   tenant.WithID(context.Background(), "t1"),
		redis: redistest.New(t),
		log:   newFakeLog(),
		clock: fakeclock.New(time.Now()),
		logs:  &syncBuffer{},
	}
	box, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	f.box = box
	f.svc = f.newService(change)
	return f
}

func (f *fixture) newService(change func(*Config)) *Service {
	f.t.Helper()
	cfg := Config{
		Redis: f.redis.Client, Prefix: f.redis.Prefix, Box: f.box, Events: f.log,
		Settings: testSettings(),
		Log:      slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      f.clock.Now,
		Resolver: fakeResolver{},
	}
	if change != nil {
		change(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// run runs s until the test ends.
func (f *fixture) run(s *Service) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
}

// event appends an event of tenant t1.
func (f *fixture) event(typ, resource string) *crowdgatev1.Event {
	f.t.Helper()
	return f.eventFor("t1", typ, resource)
}

func (f *fixture) eventFor(tenantID, typ, resource string) *crowdgatev1.Event {
	f.t.Helper()
	ev := &crowdgatev1.Event{
		EventId:    events.ID(tenantID, typ, resource),
		Type:       typ,
		CreateTime: timestamppb.New(f.clock.Now()),
		TenantId:   tenantID,
		Resource:   resource,
		Data:       &crowdgatev1.Event_Pool{Pool: &crowdgatev1.Pool{PoolId: "pool-1", PrivateName: "batch 1"}},
	}
	if err := f.log.Append(f.ctx, ev); err != nil {
		f.t.Fatal(err)
	}
	return ev
}

// create makes an endpoint of the context's tenant.
func (f *fixture) create(ctx context.Context, url string, types ...string) (*crowdgatev1.WebhookEndpoint, string) {
	f.t.Helper()
	resp, err := f.svc.CreateWebhookEndpoint(ctx, &crowdgatev1.CreateWebhookEndpointRequest{Url: url, EventTypes: types, Description: "test"})
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Endpoint, resp.Secret
}

// deliveries lists an endpoint's deliveries.
func (f *fixture) deliveries(endpointID string) []*crowdgatev1.WebhookDelivery {
	f.t.Helper()
	resp, err := f.svc.ListWebhookDeliveries(f.ctx, &crowdgatev1.ListWebhookDeliveriesRequest{EndpointId: endpointID})
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Deliveries
}

// waitFor polls cond until it holds or 15 s pass.
func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// receipt is one request the receiver got.
type receipt struct {
	id, signature string
	body          []byte
	header        http.Header
	verified      error
}

// receiver is an endpoint server that verifies every request with the
// Standard Webhooks project's own library and answers with status(n) for
// its n-th request (200 when nil).
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	got    []receipt
	status func(n int) int
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		var verr error
		if r.secret != "" {
			wh, err := standardwebhooks.NewWebhook(r.secret)
			if err == nil {
				verr = wh.VerifyIgnoringTimestamp(body, req.Header)
			} else {
				verr = err
			}
		}
		r.got = append(r.got, receipt{id: req.Header.Get("webhook-id"), signature: req.Header.Get("webhook-signature"),
			body: body, header: req.Header.Clone(), verified: verr})
		n := len(r.got)
		status := r.status
		r.mu.Unlock()
		code := http.StatusOK
		if status != nil {
			code = status(n)
		}
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "http://169.254.169.254/latest/meta-data/")
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s
}

func (r *receiver) setStatus(f func(n int) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = f
}

func (r *receiver) receipts() []receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receipt(nil), r.got...)
}

func (r *receiver) count() int { return len(r.receipts()) }

type protoMessage = proto.Message
