// Package sessiontest gives tests a session service wired to a real Redis
// (redistest), a real Toloka emulator (tolokasim over HTTP), the real Toloka
// client and the real catalog, whose projects and pools it writes directly
// in place of the requester flow.
//
//	env := sessiontest.New(t, sessiontest.Options{})
//	pool := env.NewPool(t, "default", nil)            // open in the emulator, known to the catalog
//	aid := env.StartAssignment(t, pool, "toloker-1")  // as if the Toloker clicked Start
//	l, err := env.Sessions.Land(ctx, aid)
package sessiontest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/toloker/registry"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
	"github.com/redis/go-redis/v9"
)

// Issuer is the iss of the environment's tokens.
const Issuer = "https://crowdgate.test"

// Clock is a settable clock.
type Clock = fakeclock.Clock

// NewClock returns a clock at the current time.
func NewClock() *Clock { return fakeclock.New(time.Now().UTC().Truncate(time.Millisecond)) }

// Options adjust an Env.
type Options struct {
	// Now is the sessions' and signer's clock (time.Now when nil). The
	// emulator keeps the real clock.
	Now func() time.Time
	// Session adjusts the session service's configuration before it is built.
	Session func(*session.Config)
	// Sim adjusts the emulator's configuration.
	Sim func(*tolokasim.Config)
	// Toloka adjusts the Toloka client's configuration.
	Toloka func(*toloka.Config)
	// PlatformURL is every new project's platform_url
	// (https://platform.example/start when empty).
	PlatformURL string
	// Redis, when set, is used instead of a new redistest.Redis.
	Redis *redistest.Redis
}

// Env is a session service and everything around it.
type Env struct {
	// Sim is the Toloka emulator; SimServer serves it.
	Sim       *tolokasim.Server
	SimServer *httptest.Server
	// Toloka is the real client, pointed at the emulator.
	Toloka *toloka.Client
	// Catalog holds the projects and pools NewPool registers.
	Catalog *catalog.Catalog
	// Redis holds sessions (and signing keys) under its Prefix.
	Redis *redistest.Redis
	// Signer signs tokens; Sessions is the service under test.
	Signer   *token.Signer
	Sessions *session.Service
	// Tolokers is the Toloker registry Sessions keeps up to date.
	Tolokers *registry.Registry
	// Events is the event log the registry records session events in.
	Events *events.Log
	// Config is the configuration Sessions was built with.
	Config session.Config
	// LandingRedis is the client the landing's shared limits use: Redis
	// autopipelined, as in the gateway.
	LandingRedis redis.UniversalClient

	platformURL string
	mu          sync.Mutex
	n           int
}

// New builds an Env whose servers stop when t ends.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	simCfg := tolokasim.Config{
		Logger:     slog.New(slog.DiscardHandler),
		RateLimits: tolokasim.UnlimitedRateLimits(),
	}
	if opts.Sim != nil {
		opts.Sim(&simCfg)
	}
	sim, ts := tolokasim.NewTestServer(simCfg)
	t.Cleanup(func() {
		sim.Close()
		ts.Close()
	})
	tcfg := toloka.Config{
		ProductionURL: ts.URL + "/api/v1",
		SandboxURL:    ts.URL + "/api/v1",
		Logger:        slog.New(slog.DiscardHandler),
		Retry:         toloka.RetryPolicy{MaxAttempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Budget: 2 * time.Second},
	}
	if opts.Toloka != nil {
		opts.Toloka(&tcfg)
	}
	client, err := toloka.New(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	r := opts.Redis
	if r == nil {
		r = redistest.New(t)
	}
	box, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(token.Config{
		Redis: r.Client, Prefix: r.Prefix + "token:", Box: box, Issuer: Issuer,
		Now: opts.Now, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(r.Client, r.Prefix, box, client, opts.Now, slog.New(slog.DiscardHandler))
	cfg := session.Config{
		Redis: r.Client, Prefix: r.Prefix, Catalog: cat, Signer: signer, CodeKey: secretbox.NewRandomKey(),
		Now: opts.Now, Log: slog.New(slog.DiscardHandler),
	}
	if opts.Session != nil {
		opts.Session(&cfg)
	}
	evlog, err := events.New(events.Config{Redis: r.Client, Prefix: r.Prefix, Now: opts.Now, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tolokers := registry.New(r.Client, r.Prefix, registry.Settings{}, evlog, opts.Now, slog.New(slog.DiscardHandler))
	sessions, err := session.NewService(cfg, tolokers)
	if err != nil {
		t.Fatal(err)
	}
	tolokers.ReadSessionsFrom(sessions)
	platformURL := opts.PlatformURL
	if platformURL == "" {
		platformURL = "https://platform.example/start"
	}
	return &Env{
		Sim: sim, SimServer: ts, Toloka: client, Catalog: cat, Redis: r,
		Signer: signer, Sessions: sessions, Tolokers: tolokers, Events: evlog, Config: cfg, LandingRedis: storage.AutoPipelined(r.Client),
		platformURL: platformURL,
	}
}

// SetPlatformURL changes the platform_url of projects made from now on.
func (e *Env) SetPlatformURL(u string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.platformURL = u
}

func (e *Env) next() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	return e.n
}

// APIKey is the emulator API key of a tenant's Toloka account.
func APIKey(tenantID string) string { return "key-" + tenantID }

// NewPool creates an EXTERNAL project and an open pool (600 s per
// assignment) in the emulator under the tenant's own Toloka account, and
// registers both in the catalog. edit may change the Crowdgate project and
// pool before they are registered.
func (e *Env) NewPool(t testing.TB, tenantID string, edit func(*crowdgatev1.Project, *crowdgatev1.Pool)) *crowdgatev1.Pool {
	t.Helper()
	return e.newPool(t, tenantID, edit, true)
}

// NewUnmanagedPool creates an open pool in the emulator that the catalog
// does not know: Crowdgate does not manage it.
func (e *Env) NewUnmanagedPool(t testing.TB, tenantID string) *crowdgatev1.Pool {
	t.Helper()
	return e.newPool(t, tenantID, nil, false)
}

func (e *Env) newPool(t testing.TB, tenantID string, edit func(*crowdgatev1.Project, *crowdgatev1.Pool), register bool) *crowdgatev1.Pool {
	t.Helper()
	key := APIKey(tenantID)
	if err := e.Sim.AddAPIKey(key, "acct-"+tenantID); err != nil {
		t.Fatal(err)
	}
	n := e.next()
	e.mu.Lock()
	platformURL := e.platformURL
	e.mu.Unlock()
	tolokaProject := e.simCall(t, key, "POST", "/api/v1/projects", map[string]any{
		"public_name":        fmt.Sprintf("Project %d", n),
		"public_description": "Label on the partner platform",
		"task_spec": map[string]any{
			"input_spec":  map[string]any{"id": map[string]any{"type": "string"}},
			"output_spec": map[string]any{"result": map[string]any{"type": "string"}},
		},
		"assignments_issuing_type":        "EXTERNAL",
		"assignments_issuing_view_config": map[string]any{"redirect_url": "https://crowdgate.test/start"},
		"metadata":                        map[string]any{"ptmik_partner_name": []any{"Platform"}, "ptmik_partner_url": []any{platformURL}},
	}, http.StatusCreated)
	const maxDuration = 600
	tolokaPool := e.simCall(t, key, "POST", "/api/v1/pools", map[string]any{
		"project_id":                      tolokaProject,
		"private_name":                    fmt.Sprintf("Pool %d", n),
		"may_contain_adult_content":       false,
		"will_expire":                     time.Now().UTC().Add(30 * 24 * time.Hour).Format("2006-01-02T15:04:05"),
		"reward_per_assignment":           json.Number("0.05"),
		"defaults":                        map[string]any{"default_overlap_for_new_task_suites": 1},
		"assignment_max_duration_seconds": maxDuration,
	}, http.StatusCreated)
	e.simCall(t, key, "POST", "/api/v1/pools/"+tolokaPool+"/open", nil, http.StatusAccepted)

	if !register {
		return &crowdgatev1.Pool{TenantId: tenantID, TolokaPoolId: tolokaPool}
	}
	ctx := context.Background()
	credID := "cred_" + tenantID
	err := e.Catalog.CreateCredential(ctx, &crowdgatev1.Credential{
		CredentialId: credID, TenantId: tenantID, DisplayName: "emulator", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX,
	}, "ApiKey "+key)
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		t.Fatal(err)
	}
	prj := &crowdgatev1.Project{
		ProjectId: fmt.Sprintf("prj_%d", n), TenantId: tenantID, CredentialId: credID,
		Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, TolokaProjectId: tolokaProject,
		Status: crowdgatev1.ProjectStatus_PROJECT_STATUS_ACTIVE, PlatformUrl: platformURL,
	}
	pool := &crowdgatev1.Pool{
		PoolId: fmt.Sprintf("pool_%d", n), TenantId: tenantID, ProjectId: prj.ProjectId, TolokaPoolId: tolokaPool,
		Status: crowdgatev1.PoolStatus_POOL_STATUS_OPEN, AssignmentMaxDurationSeconds: maxDuration,
	}
	if edit != nil {
		edit(prj, pool)
	}
	if err := e.Catalog.CreateProject(ctx, prj); err != nil {
		t.Fatal(err)
	}
	if err := e.Catalog.CreatePool(ctx, pool, prj.GetEnvironment()); err != nil {
		t.Fatal(err)
	}
	return pool
}

// StartAssignment starts an ACTIVE assignment for userID in pool, as if the
// Toloker clicked Start in Toloka, and returns its id.
func (e *Env) StartAssignment(t testing.TB, pool *crowdgatev1.Pool, userID string) string {
	t.Helper()
	a, err := e.Sim.CreateAssignment(pool.TolokaPoolId, userID)
	if err != nil {
		t.Fatalf("CreateAssignment(%s, %s): %v", pool.TolokaPoolId, userID, err)
	}
	return a.ID
}

// Submit sends a tasks/external/submit for userID in pool, as the platform
// would through Crowdgate; with closeSession the assignment becomes
// SUBMITTED in the emulator.
func (e *Env) Submit(t testing.TB, pool *crowdgatev1.Pool, userID string, closeSession bool) {
	t.Helper()
	e.simCall(t, APIKey(pool.TenantId), "POST", "/api/v1/tasks/external/submit", map[string]any{
		"pool_id": json.Number(pool.TolokaPoolId), "user_id": userID, "reward": json.Number("0.05"),
		"close_session": closeSession,
	}, http.StatusOK)
}

// AssignmentGets counts the GET /api/v1/assignments/{id} requests the
// emulator received for id.
func (e *Env) AssignmentGets(id string) int {
	n := 0
	for _, r := range e.Sim.Requests("/api/v1/assignments/" + id) {
		if r.Method == http.MethodGet {
			n++
		}
	}
	return n
}

// simCall calls the emulator's API and returns the "id" of the answer.
func (e *Env) simCall(t testing.TB, key, method, path string, body any, want int) string {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.SimServer.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "ApiKey "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.SimServer.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	var out struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &out)
	return out.ID
}
