// Package webhook pushes each tenant's events to the tenant's webhook
// endpoints, signed as the Standard Webhooks specification says, and
// implements crowdgatev1.WebhookServiceServer to manage the endpoints.
//
// Endpoints are stored per tenant in Redis with their signing secrets
// sealed (services/platform/secretbox, bound to the tenant and endpoint);
// a secret is returned once, by Create and RotateSecret, and is never
// logged. After a rotation the previous secret signs alongside the new one
// for RotationOverlap.
//
// Delivery runs on the shared outbox (services/platform/outbox): the fan-out
// follows the event log in consumer group "webhooks" and queues, for each
// event and each enabled endpoint whose event types select it, one delivery
// whose id is made from the event and the endpoint, so an event offered
// again is queued once. Workers take a delivery's lease and POST the event
// (protojson, proto field names) with webhook-id (the event id, the same
// on every attempt), webhook-timestamp and webhook-signature. A 2xx answer
// delivers it; anything else (a 3xx too: redirects are not followed), a
// timeout or a refused address is retried after the next wait of
// Settings.RetrySchedule (with jitter), and after the last the delivery is
// dead. Each attempt is recorded (time, status, latency, an error text
// without secrets or addresses) and listed by ListWebhookDeliveries. An
// endpoint whose attempts have all failed for Settings.DisableAfter is
// disabled, and a webhook_endpoint.disabled event is appended to the log.
// An endpoint that answers slowly has only its share of a replica's
// workers (lane.go), so it cannot hold back other endpoints' deliveries.
//
// No SSRF: an endpoint URL must be https and must not resolve to loopback,
// link-local, private, CGNAT or metadata addresses, checked when it is
// given and again by the dialer on every connection (it sees the address
// actually dialled, so DNS rebinding does not help); Settings.AllowPrivate
// lifts this for tests and the local demo. Requests go through no proxy,
// answers are read up to 64 KiB, each attempt is bounded by
// Settings.AttemptTimeout, and an event body is at most MaxBodyBytes.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/outbox"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// RotationOverlap is how long a rotated-out secret keeps signing.
const RotationOverlap = 24 * time.Hour

// FollowGroup is the event log consumer group of the fan-out.
const FollowGroup = "webhooks"

// EventLog is what webhooks need of the event log (*events.Log implements
// it).
type EventLog interface {
	// Append records an event, once per event id.
	Append(ctx context.Context, ev *crowdgatev1.Event) error
	// Follow calls handle for every event of every tenant, at least once,
	// in batches of one tenant's events in log order, until ctx ends; a
	// batch whose handle fails is offered again.
	Follow(ctx context.Context, group string, handle func(ctx context.Context, evs []*crowdgatev1.Event) error)
	// Since calls each for the tenant's events at or after since, oldest
	// first.
	Since(ctx context.Context, tenantID string, since time.Time, each func(*crowdgatev1.Event) error) error
}

// Config is what the service is built from.
type Config struct {
	// Redis holds endpoints and deliveries; Prefix starts every key.
	Redis  redis.UniversalClient
	Prefix string
	// Box seals the signing secrets.
	Box *secretbox.Box
	// Events is the event log deliveries come from and
	// webhook_endpoint.disabled events go to.
	Events EventLog
	// Settings tune delivery (DefaultSettings for zero fields).
	Settings Settings
	// Resolver resolves endpoint hosts when they are given (default
	// net.DefaultResolver; the dialer resolves on its own at delivery).
	Resolver Resolver
	// Log receives the service's logs (slog.Default when nil).
	Log *slog.Logger
	// Metrics, when set, registers the service's metrics.
	Metrics prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service implements crowdgatev1.WebhookServiceServer and delivers
// webhooks (Run).
type Service struct {
	crowdgatev1.UnimplementedWebhookServiceServer
	cfg    Settings
	st     *store
	rec    *outbox.Records
	events EventLog
	guard  guard
	client *http.Client
	log    *slog.Logger
	m      *metrics
	now    func() time.Time
	wake   chan struct{}
	// settling counts the settlements in flight. settleSlots bounds the
	// attempts and settlements in flight together (2 x Concurrency): an
	// attempt takes a slot before its lease and its settlement gives it
	// back.
	settling    sync.WaitGroup
	settleSlots chan struct{}
	// lane caps the attempts in flight to slow endpoints.
	lane    *lane
	consume string
}

// New returns the service; it fails only on an invalid configuration.
func New(cfg Config) (*Service, error) {
	if cfg.Redis == nil || cfg.Box == nil || cfg.Events == nil {
		return nil, errors.New("webhook: Config.Redis, Box and Events are required")
	}
	set := cfg.Settings.withDefaults()
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	g := guard{allowPrivate: set.AllowPrivate, resolver: cfg.Resolver}
	// Every attempt claims, reads its endpoint and settles: many attempts
	// in flight share those round trips.
	workers := storage.AutoPipelined(cfg.Redis)
	host, _ := os.Hostname()
	if host == "" {
		host = "crowdgate"
	}
	s := &Service{
		cfg:         set,
		st:          &store{rdb: cfg.Redis, workers: workers, prefix: cfg.Prefix, box: cfg.Box, now: cfg.Now},
		events:      cfg.Events,
		guard:       g,
		client:      newClient(g, set.AttemptTimeout, set.Concurrency),
		log:         cfg.Log.With(slog.String("component", "webhook")),
		m:           m,
		now:         cfg.Now,
		wake:        make(chan struct{}, 1),
		settleSlots: make(chan struct{}, 2*set.Concurrency),
		lane:        newLane(set.Concurrency, set.AttemptTimeout),
		rec: &outbox.Records{Redis: cfg.Redis, Workers: workers, Prefix: cfg.Prefix, Name: "wh", Group: group,
			JournalMax: maxAttemptsKept, Retention: set.Retention},
		consume: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(4)),
	}
	return s, nil
}

// newClient is the delivery client: every connection through the guard,
// no proxy (a proxy would dial for us, past the guard), no redirects, and
// bounded handshakes and headers. It keeps up to conns idle connections
// per endpoint host (a replica's attempts in flight), so a busy endpoint
// is not dialled again for every delivery.
func newClient(g guard, timeout time.Duration, conns int) *http.Client {
	d := g.dialer()
	d.Timeout = timeout
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            d.DialContext,
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxResponseHeaderBytes: 16 << 10,
			MaxIdleConns:           max(conns, 100),
			MaxIdleConnsPerHost:    conns,
			IdleConnTimeout:        90 * time.Second,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
}

// Run fans events out to deliveries and delivers them until ctx ends: the
// loop every replica runs. It returns once the workers have finished the
// attempts in flight and recorded them.
func (s *Service) Run(ctx context.Context) {
	s.log.Info("webhook workers starting", slog.String("consumer", s.consume), slog.Int("concurrency", s.cfg.Concurrency))
	var wg sync.WaitGroup
	wg.Go(func() { s.events.Follow(ctx, FollowGroup, s.fanout) })
	wg.Go(func() { s.queue().Run(ctx) })
	wg.Wait()
	s.settling.Wait()
	s.log.Info("webhook workers stopped", slog.String("consumer", s.consume))
}

// queue is the outbox engine over the delivery records.
func (s *Service) queue() *outbox.Queue {
	q, err := outbox.New(outbox.Config{
		Name:              "webhook",
		Redis:             s.rec.Redis,
		Shards:            func() int { return Shards },
		Group:             group,
		Consumer:          s.consume,
		Stream:            s.rec.Stream,
		Schedule:          s.rec.Schedule,
		RecordPrefix:      s.rec.RecordPrefix,
		Handle:            s.process,
		Concurrency:       s.cfg.Concurrency,
		Prefetch:          s.cfg.Concurrency,
		PollInterval:      s.cfg.PollInterval,
		VisibilityTimeout: s.cfg.VisibilityTimeout,
		Wake:              s.wake,
		Hooks: outbox.Hooks{
			OnReclaimed: func(n int) { s.m.reclaimed.Add(float64(n)) },
			OnLag: func(lag time.Duration, ready, scheduled int64) {
				s.m.lag.Set(lag.Seconds())
				s.m.backlog.WithLabelValues("ready").Set(float64(ready))
				s.m.backlog.WithLabelValues("scheduled").Set(float64(scheduled))
			},
		},
		Log: s.log,
	})
	if err != nil {
		panic("webhook: " + err.Error())
	}
	return q
}

// nudge wakes this replica's reader.
func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
