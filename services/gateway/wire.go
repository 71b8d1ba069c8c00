package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/notify/webhook"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/archive"
	"github.com/crowdgate/crowdgate/services/requester/ban"
	"github.com/crowdgate/crowdgate/services/requester/credential"
	"github.com/crowdgate/crowdgate/services/requester/export"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/requester/project"
	"github.com/crowdgate/crowdgate/services/requester/review"
	"github.com/crowdgate/crowdgate/services/requester/skill"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
	"github.com/crowdgate/crowdgate/services/toloker/registry"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/toloker/submission"
)

// wiring is what wire needs from the gateway: the configuration, the
// datastore, and the servers and registry the capabilities are put on.
type wiring struct {
	cfg      Config
	opts     options
	log      *slog.Logger
	redis    redis.UniversalClient
	embedded bool
	metrics  prometheus.Registerer
	grpc     *grpc.Server
	http     *http.ServeMux
}

// wired is what wire built that the gateway runs.
type wired struct {
	// auth authenticates every Crowdgate RPC (REST included) and puts the
	// caller's tenant in the context.
	auth grpc.UnaryServerInterceptor
	// authStream does the same for server streams (WatchEvents).
	authStream grpc.StreamServerInterceptor
	// workers are background loops (outbox delivery, signing keys). Serve
	// starts them, and stops them only after the servers have drained, so
	// work accepted before shutdown is still delivered.
	workers []func(ctx context.Context)
}

// wire builds every capability, in dependency order, and registers it on
// the servers. This is the one place the pieces meet: the catalog under
// everything, the Toloker's side (sessions, the landing, the outbox), then
// the requester's side, whose archive step is built from every source of
// unfinished work.
func wire(w wiring) (*wired, error) {
	cfg, log, rdb, prefix := w.cfg, w.log, w.redis, w.cfg.Redis.Prefix
	now := w.opts.now

	box, ephemeral, err := cfg.Secrets.Box()
	if err != nil {
		return nil, err
	}
	if ephemeral && !w.embedded {
		log.Warn("CROWDGATE_ENCRYPTION_KEY is not set: secrets are encrypted with a random key made at start, " +
			"so stored Toloka credentials CANNOT BE READ AFTER A RESTART. Set it (openssl rand -base64 32) in production.")
	}

	// Toloka, and the catalog of what each tenant registered with it.
	limiter, err := ratelimit.New(ratelimit.Config{Client: rdb, Prefix: prefix + "ratelimit:"})
	if err != nil {
		return nil, err
	}
	client, err := toloka.New(toloka.Config{
		ProductionURL: cfg.Toloka.ProductionURL,
		SandboxURL:    cfg.Toloka.SandboxURL,
		Limiter:       limiter,
		Limits:        cfg.Toloka.Limits,
		Logger:        log,
		Registerer:    w.metrics,
		Now:           now,
		Sleep:         w.opts.sleep,
	})
	if err != nil {
		return nil, fmt.Errorf("toloka client: %w", err)
	}
	cat := catalog.New(rdb, prefix, box, client, now, log)

	// Who may call what, and the tenants.
	auth, err := wireAccess(w)
	if err != nil {
		return nil, err
	}
	// Each tenant's event log: the registry, the outbox and the requester's
	// side record what happened in it; webhooks and WatchEvents read it.
	evlog, err := events.New(events.Config{Redis: rdb, Prefix: prefix, Settings: cfg.Events,
		Tenants: auth.TenantIDs, Now: now, Log: log.With("component", "events")})
	if err != nil {
		return nil, err
	}
	// Webhooks: each tenant's events pushed to its endpoints, signed, on
	// the shared outbox; endpoint secrets sealed with the box.
	webhooks, err := webhook.New(webhook.Config{Redis: rdb, Prefix: prefix, Box: box, Events: evlog,
		Settings: cfg.Webhooks, Now: now, Log: log, Metrics: w.metrics})
	if err != nil {
		return nil, err
	}

	// The Toloker's side: sessions and their tokens, the landing, the outbox.
	signer, err := token.NewSigner(token.Config{
		Redis: rdb, Prefix: prefix + "token:", Box: box,
		Issuer: strings.TrimRight(cfg.PublicURL, "/"), Now: now, Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("token signer: %w", err)
	}
	// The registry of Tolokers: written when a session starts or ends,
	// read for bans once a landing knows its Toloker.
	tolokers := registry.New(rdb, prefix, cfg.Tolokers, evlog, now, log)
	// The landing's shared limits never wait: a Toloker over a limit gets a
	// 429 page at once. The address's is the landing's; the assignment's is
	// reserved by the session service in the step that takes the
	// assignment's resolve lock.
	landingLimiter, err := ratelimit.New(ratelimit.Config{Client: storage.AutoPipelined(rdb), Prefix: prefix + "ratelimit:", MaxWait: -1})
	if err != nil {
		return nil, err
	}
	landingSettings := cfg.Landing.WithDefaults()
	sessions, err := session.NewService(session.Config{
		Redis: rdb, Prefix: prefix, Catalog: cat, Signer: signer,
		// Every replica with the same encryption key checks the others' codes.
		CodeKey:  box.DeriveKey("landing-code/v1"),
		Settings: cfg.Session, Now: now, Log: log, Metrics: w.metrics,
		Limiter: landingLimiter, PerAssignment: landingSettings.PerAssignment,
	}, tolokers)
	if err != nil {
		return nil, err
	}
	// The expiry sweep reads each session it ends, for its event's totals.
	tolokers.ReadSessionsFrom(sessions)
	land, err := landing.New(landing.Config{
		Sessions: sessions, Limiter: landingLimiter, Settings: landingSettings, Log: log, Metrics: w.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("landing: %w", err)
	}
	submissions, err := submission.New(submission.Config{
		Redis: rdb, Prefix: prefix, Catalog: cat, Sessions: sessions,
		Settings: cfg.Submission, Events: evlog, Now: now, Log: log, Metrics: w.metrics,
		// The outbox counts each Toloker's pay for the registry.
		PayRetention: tolokers.Retention(),
	})
	if err != nil {
		return nil, err
	}
	tolokerService, err := registry.NewService(tolokers, cat, submissions)
	if err != nil {
		return nil, err
	}

	// The requester's side. Archiving is refused while any source of
	// unfinished work reports some: each is an argument of archive.New.
	// The review queue shows what the sessions and the outbox know of
	// each assignment; bans act through the registry and the sessions.
	reviews, err := review.NewService(cat, sessions, submissions, evlog, log)
	if err != nil {
		return nil, err
	}
	bans, err := ban.New(cat, tolokers, sessions, rdb, prefix, now, log)
	if err != nil {
		return nil, err
	}
	transitions := pool.NewTransitions(cat, evlog, log)
	archiver, err := archive.New(cat, transitions, sessions, submissions, reviews, evlog, now, log)
	if err != nil {
		return nil, err
	}
	credentials := credential.NewService(cat, client, now, log)
	projects := project.NewService(cat, archiver, cfg.LandingURL(), now, log)
	pools := pool.NewService(cat, transitions, archiver, now, log)
	skills := skill.NewService(cat)

	// Gauges of what is live and dead now, over every tenant's pools.
	if err := registerStateGauges(w, stateSources{tenants: auth.TenantIDs, pools: cat.PoolIDs,
		liveSession: sessions.LiveSessions, deadLetters: submissions.DeadLetters}); err != nil {
		return nil, err
	}

	crowdgatev1.RegisterCredentialServiceServer(w.grpc, credentials)
	crowdgatev1.RegisterProjectServiceServer(w.grpc, projects)
	crowdgatev1.RegisterPoolServiceServer(w.grpc, pools)
	crowdgatev1.RegisterReviewServiceServer(w.grpc, reviews)
	crowdgatev1.RegisterSessionServiceServer(w.grpc, sessions)
	crowdgatev1.RegisterSubmissionServiceServer(w.grpc, submissions)
	crowdgatev1.RegisterTolokerServiceServer(w.grpc, tolokerService)
	crowdgatev1.RegisterBanServiceServer(w.grpc, bans)
	crowdgatev1.RegisterSkillServiceServer(w.grpc, skills)
	crowdgatev1.RegisterAccessServiceServer(w.grpc, auth)
	crowdgatev1.RegisterEventServiceServer(w.grpc, events.NewService(evlog))
	crowdgatev1.RegisterWebhookServiceServer(w.grpc, webhooks)
	// Exports stream a pool's submissions, live sessions and Tolokers.
	crowdgatev1.RegisterExportServiceServer(w.grpc, export.NewService(cat, submissions.Export, sessions.ExportLive, tolokerService.Export))
	w.http.Handle("GET "+LandingPath, land)
	w.http.Handle("GET "+token.JWKSPath, signer.JWKSHandler())
	return &wired{auth: auth.Unary, authStream: auth.Stream, workers: []func(context.Context){
		signer.Run, submissions.Run, submissions.RelayEvents, webhooks.Run,
		// Sessions whose Toloker walked away end, with their event.
		func(ctx context.Context) { tolokers.Sweep(ctx, auth.TenantIDs) },
		// Pools Toloka closes on its own raise pool.closed.
		func(ctx context.Context) { transitions.Watch(ctx, auth.TenantIDs, cfg.PoolWatch.Interval) },
	}}, nil
}

// wireAccess builds tenants, API keys, the audit log and the interceptor
// that authenticates every Crowdgate RPC.
//
// Authentication is off by default: `make run` is a local demo. Off means
// every caller is an anonymous administrator, so the gateway says so loudly
// when it runs against a real Redis (REDIS_URL set), which is what a
// deployment does. Production sets CROWDGATE_AUTH=keys.
func wireAccess(w wiring) (*access.Service, error) {
	cfg, err := w.cfg.Access.Config()
	if err != nil {
		return nil, err
	}
	cfg.Redis, cfg.Prefix = w.redis, w.cfg.Redis.Prefix
	cfg.Now, cfg.Log, cfg.Metrics = w.opts.now, w.log.With("component", "access"), w.metrics
	svc, err := access.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.EnsureDefaultTenant(ctx); err != nil {
		return nil, fmt.Errorf("access: create the default tenant: %w", err)
	}
	switch {
	case cfg.Mode == access.ModeOff && !w.embedded:
		w.log.Warn("CROWDGATE_AUTH is off: ANYONE WHO CAN REACH THE PORTS CAN READ AND CHANGE EVERYTHING, as an administrator. " +
			"Set CROWDGATE_AUTH=keys (and CROWDGATE_ADMIN_KEY) anywhere but a local demo.")
	case cfg.Mode == access.ModeOff:
		w.log.Info("authentication is off (local demo): every call acts as an administrator of the default tenant")
	case !svc.HasAdmin():
		w.log.Info("no CROWDGATE_ADMIN_KEY: tenants and keys are managed with existing ADMIN keys only")
	}
	return svc, nil
}
