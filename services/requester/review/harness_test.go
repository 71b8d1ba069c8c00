package review_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/credential"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/requester/project"
	"github.com/crowdgate/crowdgate/services/requester/review"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// landingURL is the redirect_url every project of the harness sends Toloka.
const landingURL = "https://crowdgate.example.com/start"

// operationDelay is how long (by the fake clock) the emulator's operations
// take: open, close and archive must be waited for.
const operationDelay = 3 * time.Second

// fakeClock is the time of the emulator and the services. The Toloka
// client's sleeps advance it, so waiting for an operation takes no real time.
type fakeClock = fakeclock.Clock

// syncBuffer collects log lines and responses from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeChecker is a project.WorkChecker whose answer the test sets: items
// for a pool, and items it reports only once the pool is closed (work that
// started while the pool was closing).
type fakeChecker struct {
	mu         sync.Mutex
	items      map[string][]string // by pool id
	whenClosed map[string][]string
	asked      int
}

func (f *fakeChecker) set(poolID string, items ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.items == nil {
		f.items = map[string][]string{}
	}
	f.items[poolID] = items
}

func (f *fakeChecker) setWhenClosed(poolID string, items ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.whenClosed == nil {
		f.whenClosed = map[string][]string{}
	}
	f.whenClosed[poolID] = items
}

func (f *fakeChecker) UnfinishedWork(_ context.Context, _ string, p *crowdgatev1.Pool) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	if p.GetStatus() == crowdgatev1.PoolStatus_POOL_STATUS_CLOSED {
		return append(append([]string(nil), f.items[p.GetPoolId()]...), f.whenClosed[p.GetPoolId()]...), nil
	}
	return f.items[p.GetPoolId()], nil
}

// harness is the requester flow served over real sockets: a gRPC server on
// loopback with the gateway's error conversion, REST through grpc-gateway in
// front of it, and a Toloka emulator behind it.
type harness struct {
	t        *testing.T
	clk      *fakeClock
	sim      *tolokasim.Server
	redis    *redistest.Redis
	key      string // a valid API key of account "acme"
	otherKey string // a valid API key of account "globex"
	wrongKey string // a key Toloka does not know
	logs     *syncBuffer
	seen     *syncBuffer // every response body the callers saw
	checker  *fakeChecker
	client   *toloka.Client

	creds    crowdgatev1.CredentialServiceClient
	projects crowdgatev1.ProjectServiceClient
	pools    crowdgatev1.PoolServiceClient
	reviews  crowdgatev1.ReviewServiceClient
	restURL  string
}

func randomKey(t *testing.T, prefix string) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	// Three dot-separated parts: the shape of a current Toloka API key.
	return prefix + "." + hex.EncodeToString(b) + ".k3y"
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{
		t:        t,
		clk:      fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		redis:    redistest.New(t),
		key:      randomKey(t, "acme"),
		otherKey: randomKey(t, "globex"),
		wrongKey: randomKey(t, "wrong"),
		logs:     &syncBuffer{},
		seen:     &syncBuffer{},
		checker:  &fakeChecker{},
	}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var simSrv *httptest.Server
	h.sim, simSrv = tolokasim.NewTestServer(tolokasim.Config{
		APIKeys:        map[string]string{h.key: "acme", h.otherKey: "globex"},
		OperationDelay: operationDelay,
		Now:            h.clk.Now,
		Logger:         log,
	})
	t.Cleanup(simSrv.Close)

	limiter, err := ratelimit.New(ratelimit.Config{Client: h.redis.Client, Prefix: h.redis.Prefix + "ratelimit:"})
	if err != nil {
		t.Fatal(err)
	}
	h.client, err = toloka.New(toloka.Config{
		ProductionURL:   simSrv.URL + "/api/v1",
		SandboxURL:      simSrv.URL + "/api/v1",
		Limiter:         limiter,
		Logger:          log,
		PollInterval:    time.Second,
		MaxPollInterval: 2 * time.Second,
		Sleep:           func(_ context.Context, d time.Duration) error { h.clk.Advance(d); return nil },
		Jitter:          func(d time.Duration) time.Duration { return d },
	})
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	creds := credential.NewService(credential.Config{Redis: h.redis.Client, Prefix: h.redis.Prefix, Box: box, Toloka: h.client, Log: log, Now: h.clk.Now})
	projects := project.NewService(project.Config{Redis: h.redis.Client, Prefix: h.redis.Prefix, Credentials: creds, LandingURL: landingURL, Log: log, Now: h.clk.Now})
	pools := pool.NewService(pool.Config{Redis: h.redis.Client, Prefix: h.redis.Prefix, Projects: projects, Credentials: creds, Log: log, Now: h.clk.Now})
	projects.SetPoolManager(pools)
	projects.AddWorkChecker(pools)
	projects.AddWorkChecker(h.checker)
	reviews := review.NewService(review.Config{Pools: pools, Projects: projects, Log: log})

	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(tenantFromMetadata, errorToStatus))
	crowdgatev1.RegisterCredentialServiceServer(srv, creds)
	crowdgatev1.RegisterProjectServiceServer(srv, projects)
	crowdgatev1.RegisterPoolServiceServer(srv, pools)
	crowdgatev1.RegisterReviewServiceServer(srv, reviews)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(h.record))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h.creds = crowdgatev1.NewCredentialServiceClient(conn)
	h.projects = crowdgatev1.NewProjectServiceClient(conn)
	h.pools = crowdgatev1.NewPoolServiceClient(conn)
	h.reviews = crowdgatev1.NewReviewServiceClient(conn)

	// REST exactly as the gateway serves it: proto field names, unknown
	// fields refused.
	rest := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}))
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		crowdgatev1.RegisterCredentialServiceHandler, crowdgatev1.RegisterProjectServiceHandler,
		crowdgatev1.RegisterPoolServiceHandler, crowdgatev1.RegisterReviewServiceHandler,
	} {
		if err := register(ctx, rest, conn); err != nil {
			t.Fatal(err)
		}
	}
	restSrv := httptest.NewServer(rest)
	t.Cleanup(restSrv.Close)
	h.restURL = restSrv.URL

	// Whatever a test did, no API key may appear in a log line, a response
	// or Redis.
	t.Cleanup(h.assertNoKeyLeaked)
	return h
}

// tenantFromMetadata lets a test act for another tenant (auth does this in
// the gateway).
func tenantFromMetadata(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-tenant"); len(v) > 0 {
			ctx = tenant.WithID(ctx, v[0])
		}
	}
	return handler(ctx, req)
}

// errorToStatus is the gateway's one conversion of domain errors.
func errorToStatus(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		return nil, serviceerror.ToStatus(err).Err()
	}
	return resp, nil
}

// record keeps every gRPC response and error the client saw.
func (h *harness) record(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if m, ok := reply.(proto.Message); ok && err == nil {
		b, _ := protojson.Marshal(m)
		h.seen.Write(append(b, '\n'))
	}
	if err != nil {
		st := status.Convert(err)
		b, _ := protojson.Marshal(st.Proto())
		h.seen.Write(append(b, '\n'))
	}
	return err
}

func (h *harness) assertNoKeyLeaked() {
	t := h.t
	for name, text := range map[string]string{"a log line": h.logs.String(), "a response": h.seen.String()} {
		for _, key := range []string{h.key, h.otherKey, h.wrongKey} {
			if strings.Contains(text, key) {
				t.Errorf("an API key appears in %s", name)
			}
		}
	}
	ctx := context.Background()
	iter := h.redis.Client.Scan(ctx, 0, h.redis.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		typ, _ := h.redis.Client.Type(ctx, iter.Val()).Result()
		if typ != "string" {
			continue
		}
		v, _ := h.redis.Client.Get(ctx, iter.Val()).Bytes()
		for _, key := range []string{h.key, h.otherKey, h.wrongKey} {
			if bytes.Contains(v, []byte(key)) {
				t.Errorf("Redis key %s holds an API key in plain text", iter.Val())
			}
		}
	}
}

// as returns a context acting for tenant id.
func as(id string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "x-tenant", id)
}

var bg = context.Background()

// mustCredential registers key (sandbox) and returns its id.
func (h *harness) mustCredential(ctx context.Context, key string) string {
	h.t.Helper()
	resp, err := h.creds.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{
		DisplayName: "Acme sandbox", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: key,
	})
	if err != nil {
		h.t.Fatalf("CreateCredential: %v", err)
	}
	return resp.GetCredential().GetCredentialId()
}

// restCall sends a REST request and returns the status and decoded body.
func (h *harness) restCall(method, path, body string, headers ...string) (int, map[string]any) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.restURL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	h.seen.Write(append(b, '\n'))
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		h.t.Fatalf("%s %s: %d, body not JSON: %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// requests returns the emulator's recorded requests with method and a path
// starting with prefix.
func (h *harness) requests(method, prefix string) []tolokasim.RequestRecord {
	var out []tolokasim.RequestRecord
	for _, r := range h.sim.Requests(prefix) {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// decode parses JSON keeping numbers exact, for field-by-field comparison.
func decode(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// wantField asserts err is INVALID_ARGUMENT naming field.
func wantField(t *testing.T, err error, field string) {
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

// wantCode asserts err has code c.
func wantCode(t *testing.T, err error, c codes.Code) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != c {
		t.Fatalf("got %v, want %s", err, c)
	}
	return st
}

// tolokaFaults answers the next n API requests under prefix with 503.
func tolokaFaults(prefix string, n int) tolokasim.Faults {
	return tolokasim.Faults{PathPrefix: prefix, FailNext: n}
}
