// Package gatewaytest is the one test composition root: it builds the
// gateway the way cmd/crowdgate does (gateway.New with a loaded
// configuration), on a test Redis, in front of the Toloka emulator over
// HTTP, optionally on a fake clock, and serves it on loopback sockets.
// End-to-end tests of every capability start one instead of wiring
// services by hand.
//
//	env := gatewaytest.Start(t, gatewaytest.Options{})
//	key := env.NewAPIKey("acme")                      // an account in the emulator
//	p := env.OpenPool(env.Ctx(), key)                 // credential, project, open pool
//	aid := env.StartAssignment(p, "toloker-1")        // as if the Toloker clicked Start
//	l := env.Land(aid)                                // GET /start: l.Status, l.Location, l.Body
//	sess := env.LandSession(env.Ctx(), aid)           // land and exchange the code, as the platform does
//
// Authentication is off unless Options.Config turns it on, so a call acts
// for the tenant named by the context (Ctx, As).
package gatewaytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// Options adjust an Env.
type Options struct {
	// Clock, when set, is the clock of the gateway and the emulator, and
	// the Toloka client's waits (retries, operation polls) advance it, so a
	// test that waits for Toloka's operations takes no real time.
	Clock *fakeclock.Clock
	// Redis, when set, is used instead of a new redistest.Redis.
	Redis *redistest.Redis
	// Sim adjusts the emulator's configuration.
	Sim func(*tolokasim.Config)
	// SimHandler, when set, wraps the emulator's handler: a test can hold
	// one of Toloka's answers to order it against other calls.
	SimHandler func(http.Handler) http.Handler
	// Config adjusts the gateway's configuration after it is loaded from
	// its defaults (listen addresses, Redis and Toloka URLs set).
	Config func(*gateway.Config)
	// Log receives the gateway's and the emulator's logs in addition to
	// Env.Logs.
	Log *slog.Logger
}

// Env is a running gateway and everything around it. Its servers stop
// when the test ends.
type Env struct {
	T       testing.TB
	Gateway *gateway.Gateway
	Config  gateway.Config
	// Sim is the Toloka emulator, served at SimURL.
	Sim    *tolokasim.Server
	SimURL string
	Redis  *redistest.Redis
	// Clock is Options.Clock (nil when the real clock runs).
	Clock *fakeclock.Clock
	// HTTP is the gateway's HTTP base URL ("http://127.0.0.1:port").
	HTTP string
	// Conn is a gRPC connection to the gateway.
	Conn *grpc.ClientConn
	// Logs are the gateway's log lines (JSON); Seen every response body a
	// test received through Env.
	Logs, Seen *SyncBuffer

	Credentials crowdgatev1.CredentialServiceClient
	Projects    crowdgatev1.ProjectServiceClient
	Pools       crowdgatev1.PoolServiceClient
	Reviews     crowdgatev1.ReviewServiceClient
	Sessions    crowdgatev1.SessionServiceClient
	Submissions crowdgatev1.SubmissionServiceClient
	Access      crowdgatev1.AccessServiceClient
	Tolokers    crowdgatev1.TolokerServiceClient
	Bans        crowdgatev1.BanServiceClient
	Events      crowdgatev1.EventServiceClient
}

// OperationDelay is how long (by the emulator's clock) its pool and project
// operations take unless Options.Sim changes it.
const OperationDelay = 3 * time.Second

// Start builds and serves a gateway for t.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	env := &Env{T: t, Clock: opts.Clock, Logs: &SyncBuffer{}, Seen: &SyncBuffer{}, Redis: opts.Redis}
	var handler slog.Handler = slog.NewJSONHandler(env.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	if opts.Log != nil {
		handler = fanout{handler, opts.Log.Handler()}
	}
	log := slog.New(handler)

	simCfg := tolokasim.Config{OperationDelay: OperationDelay, Logger: log.With("component", "tolokasim"), RateLimits: tolokasim.UnlimitedRateLimits()}
	if opts.Clock != nil {
		simCfg.Now = opts.Clock.Now
	}
	if opts.Sim != nil {
		opts.Sim(&simCfg)
	}
	env.Sim = tolokasim.New(simCfg)
	var simHandler http.Handler = env.Sim
	if opts.SimHandler != nil {
		simHandler = opts.SimHandler(simHandler)
	}
	simSrv := httptest.NewServer(simHandler)
	t.Cleanup(func() {
		env.Sim.Close()
		simSrv.Close()
	})
	env.SimURL = simSrv.URL

	if env.Redis == nil {
		env.Redis = redistest.New(t)
	}
	cfg, err := gateway.Load([]string{"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Redis.URL, cfg.Redis.Prefix = env.Redis.URL, env.Redis.Prefix
	cfg.Toloka.ProductionURL, cfg.Toloka.SandboxURL = simSrv.URL+"/api/v1", simSrv.URL+"/api/v1"
	cfg.PublicURL = "https://crowdgate.test"
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	env.Config = cfg
	var gopts []gateway.Option
	if opts.Clock != nil {
		gopts = append(gopts, gateway.WithClock(opts.Clock.Now, opts.Clock.Sleep))
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, log, gopts...)
	if err != nil {
		cancel()
		t.Fatalf("gateway.New: %v", err)
	}
	env.Gateway = g
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway.Serve: %v", err)
		}
	})
	env.HTTP = "http://" + g.HTTPAddr()
	waitReady(t, env.HTTP)

	env.Conn, err = grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(env.record))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Conn.Close() })
	env.Credentials = crowdgatev1.NewCredentialServiceClient(env.Conn)
	env.Projects = crowdgatev1.NewProjectServiceClient(env.Conn)
	env.Pools = crowdgatev1.NewPoolServiceClient(env.Conn)
	env.Reviews = crowdgatev1.NewReviewServiceClient(env.Conn)
	env.Sessions = crowdgatev1.NewSessionServiceClient(env.Conn)
	env.Submissions = crowdgatev1.NewSubmissionServiceClient(env.Conn)
	env.Access = crowdgatev1.NewAccessServiceClient(env.Conn)
	env.Tolokers = crowdgatev1.NewTolokerServiceClient(env.Conn)
	env.Bans = crowdgatev1.NewBanServiceClient(env.Conn)
	env.Events = crowdgatev1.NewEventServiceClient(env.Conn)
	return env
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never became ready", base)
}

// record keeps every gRPC response and error a test saw, for leak checks.
func (e *Env) record(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if m, ok := reply.(proto.Message); ok && err == nil {
		b, _ := protojson.Marshal(m)
		e.Seen.Write(append(b, '\n'))
	}
	if err != nil {
		b, _ := protojson.Marshal(status.Convert(err).Proto())
		e.Seen.Write(append(b, '\n'))
	}
	return err
}

// Ctx is a context acting for the default tenant.
func (e *Env) Ctx() context.Context { return As(tenant.Default) }

// As returns a context whose calls act for tenantID (authentication is off
// in an Env unless Options.Config turns it on).
func As(tenantID string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), access.TenantHeader, tenantID)
}

// Now is the test's time: the fake clock's, or the real one.
func (e *Env) Now() time.Time {
	if e.Clock != nil {
		return e.Clock.Now()
	}
	return time.Now()
}

// NewAPIKey makes a Toloka API key (three dot-separated parts, as current
// keys are) for account in the emulator.
func (e *Env) NewAPIKey(account string) string {
	e.T.Helper()
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	key := account + "." + hex.EncodeToString(b) + ".k3y"
	if err := e.Sim.AddAPIKey(key, account); err != nil {
		e.T.Fatal(err)
	}
	return key
}

// MustCredential registers key (sandbox) for the tenant of ctx.
func (e *Env) MustCredential(ctx context.Context, key string) string {
	e.T.Helper()
	resp, err := e.Credentials.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{
		DisplayName: "Acme sandbox", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: key,
	})
	if err != nil {
		e.T.Fatalf("CreateCredential: %v", err)
	}
	return resp.GetCredential().GetCredentialId()
}

// MustProject creates p.
func (e *Env) MustProject(ctx context.Context, p *crowdgatev1.Project) *crowdgatev1.Project {
	e.T.Helper()
	resp, err := e.Projects.CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: p})
	if err != nil {
		e.T.Fatalf("CreateProject: %v", err)
	}
	return resp.GetProject()
}

// MustPool creates p.
func (e *Env) MustPool(ctx context.Context, p *crowdgatev1.Pool) *crowdgatev1.Pool {
	e.T.Helper()
	resp, err := e.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: p})
	if err != nil {
		e.T.Fatalf("CreatePool: %v", err)
	}
	return resp.GetPool()
}

// OpenPool registers key, creates a minimal project and a valid pool for
// the tenant of ctx, opens the pool and returns it.
func (e *Env) OpenPool(ctx context.Context, key string) *crowdgatev1.Pool {
	e.T.Helper()
	prj := MinimalProject(e.MustCredential(ctx, key))
	prj.PlatformUrl = "https://label.example.com/start"
	p := e.MustPool(ctx, ValidPool(e.MustProject(ctx, prj).GetProjectId(), e.Now()))
	resp, err := e.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()})
	if err != nil {
		e.T.Fatalf("OpenPool: %v", err)
	}
	return resp.GetPool()
}

// StartAssignment starts an ACTIVE assignment of pool for userID in the
// emulator, as a Toloker clicking Start would, and returns its id.
func (e *Env) StartAssignment(p *crowdgatev1.Pool, userID string) string {
	e.T.Helper()
	a, err := e.Sim.CreateAssignment(p.GetTolokaPoolId(), userID)
	if err != nil {
		e.T.Fatalf("CreateAssignment: %v", err)
	}
	return a.ID
}

// MinimalProject is a valid project with only the required fields.
func MinimalProject(credID string) *crowdgatev1.Project {
	return &crowdgatev1.Project{
		CredentialId:      credID,
		PublicName:        "Label street signs",
		PublicDescription: "Draw boxes around street signs on our platform",
		PlatformUrl:       "https://label.example.com/start",
		PartnerName:       "Acme Labeling",
		PartnerUrl:        "https://label.example.com",
	}
}

// ValidPool is a valid pool of projectID, expiring a month after now.
func ValidPool(projectID string, now time.Time) *crowdgatev1.Pool {
	return &crowdgatev1.Pool{
		ProjectId:                    projectID,
		PrivateName:                  "Signs, batch 1",
		WillExpire:                   timestamppb.New(now.Add(30 * 24 * time.Hour)),
		RewardPerAssignment:          "0.05",
		AssignmentMaxDurationSeconds: 600,
		Defaults:                     &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1},
	}
}

// REST sends a REST request to the gateway (headers as name, value pairs)
// and returns the status and the body decoded as a JSON object (numbers
// kept exact).
func (e *Env) REST(method, path, body string, headers ...string) (int, map[string]any) {
	e.T.Helper()
	code, b := e.RESTRaw(method, path, body, headers...)
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		e.T.Fatalf("%s %s: %d, body not a JSON object: %q", method, path, code, b)
	}
	return code, out
}

// RESTRaw is REST returning the body as sent.
func (e *Env) RESTRaw(method, path, body string, headers ...string) (int, []byte) {
	e.T.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.HTTP+path, rd)
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	e.Seen.Write(append(b, '\n'))
	return resp.StatusCode, b
}

// DecodeJSON parses b as any JSON value, keeping numbers exact
// (json.Number), so what the gateway sent Toloka (RequestRecord.Body) can
// be compared field by field with cmp.Diff against a decoded literal.
func DecodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// Requests returns the emulator's recorded requests with method and a path
// starting with prefix.
func (e *Env) Requests(method, prefix string) []tolokasim.RequestRecord {
	var out []tolokasim.RequestRecord
	for _, r := range e.Sim.Requests(prefix) {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// AssertNotLeaked fails the test if any of secrets appears in a log line,
// a response a test saw, or a Redis string value of this Env.
func (e *Env) AssertNotLeaked(secrets ...string) {
	e.T.Helper()
	for name, text := range map[string]string{"a log line": e.Logs.String(), "a response": e.Seen.String()} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				e.T.Errorf("a secret appears in %s", name)
			}
		}
	}
	ctx := context.Background()
	iter := e.Redis.Client.Scan(ctx, 0, e.Redis.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if typ, _ := e.Redis.Client.Type(ctx, iter.Val()).Result(); typ != "string" {
			continue
		}
		v, _ := e.Redis.Client.Get(ctx, iter.Val()).Bytes()
		for _, s := range secrets {
			if bytes.Contains(v, []byte(s)) {
				e.T.Errorf("Redis key %s holds a secret in plain text", iter.Val())
			}
		}
	}
}

// WantCode asserts err has gRPC code c and returns its status.
func WantCode(t testing.TB, err error, c codes.Code) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != c {
		t.Fatalf("got %v, want %s", err, c)
	}
	return st
}

// WantField asserts err is INVALID_ARGUMENT with a BadRequest detail
// naming field.
func WantField(t testing.TB, err error, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT for %s", err, field)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
				t.Fatalf("INVALID_ARGUMENT names %q (%s), want %q", v.GetField(), v.GetDescription(), field)
			}
		}
	}
	t.Fatalf("INVALID_ARGUMENT %q names no field, want %q", st.Message(), field)
}

// SyncBuffer collects writes from many goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fanout sends every record to each handler.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			_ = h.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
