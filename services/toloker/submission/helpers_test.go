package submission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

const (
	simKey     = "key-acme"
	simAccount = "acme"
	credID     = "cred_1"
	projectID  = "prj_1"
	poolID     = "pool_1"
	returnURL  = "https://toloka.example/tasks"
)

// fakeSessions keeps sessions in memory and records what submissions do to
// them.
type fakeSessions struct {
	mu       sync.Mutex
	sessions map[string]*crowdgatev1.Session // tenant/session
	ends     []crowdgatev1.EndReason
	recorded map[string]money.Decimal // session -> reward total
}

func (f *fakeSessions) Read(ctx context.Context, tenantID, sessionID string) (*crowdgatev1.Session, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[tenantID+"/"+sessionID]
	if !ok {
		return nil, "", &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	return proto.CloneOf(s), "", nil
}

func (f *fakeSessions) End(ctx context.Context, tenantID, sessionID string, reason crowdgatev1.EndReason) (*crowdgatev1.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[tenantID+"/"+sessionID]
	if !ok {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	f.ends = append(f.ends, reason)
	if s.State != crowdgatev1.SessionState_SESSION_STATE_ENDED {
		s.State = crowdgatev1.SessionState_SESSION_STATE_ENDED
		s.EndReason = reason
		s.EndTime = timestamppb.Now()
	}
	return proto.CloneOf(s), nil
}

func (f *fakeSessions) RecordSubmit(ctx context.Context, tenantID, sessionID, _ string, reward money.Decimal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[tenantID+"/"+sessionID]
	if !ok {
		return &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	s.SubmitsCount++
	total := money.Zero
	if s.RewardTotal != "" {
		total = money.MustParse(s.RewardTotal)
	}
	s.RewardTotal = total.Add(reward).String()
	return nil
}

// Barred bars a Toloker from a pool after a session of theirs there ended
// as the session service bars them: revoked, restricted or filtered out.
func (f *fakeSessions) Barred(_ context.Context, tenantID, poolID, userID string) (crowdgatev1.EndReason, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reason := crowdgatev1.EndReason_END_REASON_UNSPECIFIED
	for _, s := range f.sessions {
		if s.TenantId == tenantID && s.PoolId == poolID && s.UserId == userID {
			switch s.EndReason {
			case crowdgatev1.EndReason_END_REASON_REVOKED, crowdgatev1.EndReason_END_REASON_RESTRICTED, crowdgatev1.EndReason_END_REASON_FILTERED_OUT:
				reason = s.EndReason
			case crowdgatev1.EndReason_END_REASON_UNSPECIFIED:
				if s.State == crowdgatev1.SessionState_SESSION_STATE_ACTIVE {
					return crowdgatev1.EndReason_END_REASON_UNSPECIFIED, nil // landed again
				}
			}
		}
	}
	return reason, nil
}

// LiveSession is the Toloker's active session in the pool, as the session
// service answers it.
func (f *fakeSessions) LiveSession(_ context.Context, tenantID, poolID, userID string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if s.TenantId == tenantID && s.PoolId == poolID && s.UserId == userID && s.State == crowdgatev1.SessionState_SESSION_STATE_ACTIVE {
			return s.SessionId, s.AssignmentId, nil
		}
	}
	return "", "", nil
}

func (f *fakeSessions) put(s *crowdgatev1.Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions[s.TenantId+"/"+s.SessionId] = s
}

// fixture is one test's world: an emulated Toloka with an open pool, a
// Redis, a real catalog holding the pool, its project and credential, a
// sessions fake, and a submission service.
type fixture struct {
	t          testing.TB
	ctx        context.Context
	sim        *tolokasim.Server
	simURL     string
	redis      *redistest.Redis
	catalog    *catalog.Catalog
	sessions   *fakeSessions
	svc        *Service
	tolokaPool string
	nextID     int
}

// config is a configuration with test-sized timings; mutate adjusts it.
func (f *fixture) config(mutate func(*Config)) Config {
	evlog, err := events.New(events.Config{Redis: f.redis.Client, Prefix: f.redis.Prefix, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	cfg := Config{
		Events:   evlog,
		Redis:    f.redis.Client,
		Prefix:   f.redis.Prefix,
		Catalog:  f.catalog,
		Sessions: f.sessions,
		Log:      slog.New(slog.DiscardHandler),
		Metrics:  prometheus.NewRegistry(),
		Settings: Settings{
			SyncTimeout:       5 * time.Second,
			AttemptTimeout:    2 * time.Second,
			LeaseTTL:          3 * time.Second,
			VisibilityTimeout: 5 * time.Second,
			PollInterval:      10 * time.Millisecond,
			BaseBackoff:       10 * time.Millisecond,
			MaxBackoff:        50 * time.Millisecond,
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return cfg
}

// newFixture starts the emulator with an open pool and builds the service
// (its workers are not started).
func newFixture(t testing.TB, mutate func(*Config)) *fixture {
	return newFixtureWith(t, tolokasim.UnlimitedRateLimits(), nil, mutate)
}

// newFixtureWith is newFixture with the emulator's rate limits; client, when
// set, adjusts the configuration of the Toloka client the catalog opens
// accounts with (f.redis is ready by then).
func newFixtureWith(t testing.TB, limits tolokasim.RateLimits, client func(f *fixture, c *toloka.Config), mutate func(*Config)) *fixture {
	t.Helper()
	sim, ts := tolokasim.NewTestServer(tolokasim.Config{
		APIKeys:        map[string]string{simKey: simAccount},
		Logger:         slog.New(slog.DiscardHandler),
		RateLimits:     limits,
		RequestLogSize: 200000,
	})
	t.Cleanup(func() {
		sim.Close()
		ts.Close()
	})
	f := &fixture{
		t:        t,
		ctx:      tenant.WithID(context.Background(), tenant.Default),
		sim:      sim,
		simURL:   ts.URL,
		redis:    redistest.New(t),
		sessions: &fakeSessions{sessions: map[string]*crowdgatev1.Session{}, recorded: map[string]money.Decimal{}},
	}
	f.tolokaPool = f.openTolokaPool()

	tc := toloka.Config{
		ProductionURL: f.simURL + "/api/v1", SandboxURL: f.simURL + "/api/v1",
		Retry:  toloka.RetryPolicy{MaxAttempts: 4, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Budget: 2 * time.Second},
		Logger: slog.New(slog.DiscardHandler),
	}
	if client != nil {
		client(f, &tc)
	}
	tolokaClient, err := toloka.New(tc)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	f.catalog = catalog.New(f.redis.Client, f.redis.Prefix, box, tolokaClient, nil, slog.New(slog.DiscardHandler))
	sandbox := crowdgatev1.Environment_ENVIRONMENT_SANDBOX
	// "ApiKey " sets the scheme: the emulator's key is not a three-part key.
	if err := f.catalog.CreateCredential(f.ctx, &crowdgatev1.Credential{
		CredentialId: credID, TenantId: tenant.Default, DisplayName: "acme sandbox", Environment: sandbox,
	}, "ApiKey "+simKey); err != nil {
		t.Fatal(err)
	}
	if err := f.catalog.CreateProject(f.ctx, &crowdgatev1.Project{
		ProjectId: projectID, TenantId: tenant.Default, CredentialId: credID, ReturnUrl: returnURL,
		Environment: sandbox, Status: crowdgatev1.ProjectStatus_PROJECT_STATUS_ACTIVE,
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.catalog.CreatePool(f.ctx, &crowdgatev1.Pool{
		PoolId: poolID, TenantId: tenant.Default, ProjectId: projectID, TolokaPoolId: f.tolokaPool,
	}, sandbox); err != nil {
		t.Fatal(err)
	}
	f.svc = f.newService(mutate)
	return f
}

// newService builds another replica on the same Redis.
func (f *fixture) newService(mutate func(*Config)) *Service {
	f.t.Helper()
	svc, err := New(f.config(mutate))
	if err != nil {
		f.t.Fatal(err)
	}
	return svc
}

// run starts svc's workers until the test ends.
func (f *fixture) run(svc *Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		svc.Run(ctx)
		close(done)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	f.t.Cleanup(stop)
	return stop
}

// simDo calls the emulator's API with the test account's key.
func (f *fixture) simDo(method, path string, body any) map[string]any {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.simURL+path, rd)
	req.Header.Set("Authorization", "ApiKey "+simKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		f.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// openTolokaPool creates a project and an open pool in the emulator.
func (f *fixture) openTolokaPool() string {
	prj := f.simDo("POST", "/api/v1/projects", map[string]any{
		"public_name":        "Label images",
		"public_description": "Draw boxes on the partner platform",
		"task_spec": map[string]any{
			"input_spec":  map[string]any{"url": map[string]any{"type": "url", "required": true}},
			"output_spec": map[string]any{"result": map[string]any{"type": "STRING"}},
		},
		"assignments_issuing_type":        "EXTERNAL",
		"assignments_issuing_view_config": map[string]any{"redirect_url": "https://crowdgate.example/start"},
		"metadata":                        map[string]any{"ptmik_partner_name": []any{"Acme"}},
	})
	pool := f.simDo("POST", "/api/v1/pools", map[string]any{
		"project_id":                      prj["id"],
		"private_name":                    "Pool 1",
		"may_contain_adult_content":       false,
		"will_expire":                     time.Now().UTC().Add(30 * 24 * time.Hour).Format("2006-01-02T15:04:05"),
		"reward_per_assignment":           json.Number("0.05"),
		"defaults":                        map[string]any{"default_overlap_for_new_task_suites": 1},
		"assignment_max_duration_seconds": 3600,
	})
	id := pool["id"].(string)
	f.simDo("POST", "/api/v1/pools/"+id+"/open", nil)
	return id
}

// toloker starts an assignment for a new Toloker in the emulator, with
// state st, and opens their session; it returns the session.
func (f *fixture) toloker(st tolokasim.UserState) *crowdgatev1.Session {
	f.t.Helper()
	f.nextID++
	user := fmt.Sprintf("user%04d", f.nextID)
	f.sim.SetUser(user, st)
	a, err := f.sim.CreateAssignment(f.tolokaPool, user)
	if err != nil {
		f.t.Fatal(err)
	}
	s := &crowdgatev1.Session{
		SessionId:    fmt.Sprintf("ses_%04d", f.nextID),
		TenantId:     tenant.Default,
		ProjectId:    projectID,
		PoolId:       poolID,
		AssignmentId: a.ID,
		UserId:       user,
		State:        crowdgatev1.SessionState_SESSION_STATE_ACTIVE,
		CreateTime:   timestamppb.Now(),
		ExpireTime:   timestamppb.New(time.Now().Add(time.Hour)),
		ReturnUrl:    returnURL,
	}
	f.sessions.put(s)
	return s
}

func (f *fixture) session(id string) *crowdgatev1.Session {
	f.t.Helper()
	s, _, err := f.sessions.Read(f.ctx, tenant.Default, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) submit(req *crowdgatev1.SubmitRequest) *crowdgatev1.SubmitResponse {
	f.t.Helper()
	resp, err := f.svc.Submit(f.ctx, req)
	if err != nil {
		f.t.Fatalf("Submit(%v): %v", req, err)
	}
	return resp
}

func (f *fixture) get(id string) *crowdgatev1.Submission {
	f.t.Helper()
	resp, err := f.svc.GetSubmission(f.ctx, &crowdgatev1.GetSubmissionRequest{SubmissionId: id})
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Submission
}

func (f *fixture) totals() *crowdgatev1.PoolTotals {
	f.t.Helper()
	resp, err := f.svc.GetPoolTotals(f.ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: poolID})
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Totals
}

// waitTotals polls the pool's totals until cond holds or the deadline
// passes.
func (f *fixture) waitTotals(what string, d time.Duration, cond func(*crowdgatev1.PoolTotals) bool) *crowdgatev1.PoolTotals {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for {
		tot := f.totals()
		if cond(tot) {
			return tot
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %s; totals %v; ledger %d", what, d, tot, f.ledger().Count)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) ledger() tolokasim.LedgerReport {
	return f.sim.Ledger(tolokasim.LedgerFilter{})
}

// submitRequests are the emulator's recorded submit requests.
func (f *fixture) submitRequests() []tolokasim.RequestRecord {
	return f.sim.Requests("/api/v1/tasks/external/submit")
}

// paidOnce fails unless the ledger holds exactly one entry per retry_id in
// want.
func (f *fixture) paidOnce(want []string) {
	f.t.Helper()
	led := f.ledger()
	count := map[string]int{}
	for _, e := range led.Entries {
		count[e.RetryID]++
	}
	for _, r := range want {
		if count[r] != 1 {
			f.t.Errorf("retry_id %s paid %d times, want once", r, count[r])
		}
	}
	if led.Count != len(want) {
		f.t.Errorf("ledger has %d entries, want %d", led.Count, len(want))
	}
}

// invalidField returns the field of an InvalidArgument, failing otherwise.
func invalidField(t *testing.T, err error) string {
	t.Helper()
	var ia *serviceerror.InvalidArgument
	if !errors.As(err, &ia) {
		t.Fatalf("got error %v (%T), want InvalidArgument", err, err)
	}
	return ia.Field
}

// SideDoor lets every side-door submit in: no archive runs here (the
// archive package's tests hold one against the real session service).
func (f *fakeSessions) SideDoor(context.Context, string, string) (func(), error) {
	return func() {}, nil
}
