package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/gen/openapi"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

const (
	testAdminKey     = "test-admin-key-0123456789abcdef0123456789"
	testServiceToken = "test-service-token-0123456789abcdef012345"
	testTolokaKey    = "acme.0123456789abcdef.k3y"
)

// accessGateway is a gateway with authentication on, its Toloka emulator
// and a gRPC connection to it.
type accessGateway struct {
	g     *Gateway
	base  string
	conn  *grpc.ClientConn
	sim   *tolokasim.Server
	logs  *lockedBuffer
	redis *redistest.Redis
	// stop shuts the gateway down and returns Serve's result.
	stop func() error
}

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startAccessGateway serves a gateway (CROWDGATE_AUTH=keys unless mutate
// says otherwise) until tb ends. Its Redis keys carry the test's prefix.
func startAccessGateway(tb testing.TB, mutate func(*Config)) *accessGateway {
	tb.Helper()
	sim, simSrv := tolokasim.NewTestServer(tolokasim.Config{
		APIKeys: map[string]string{testTolokaKey: "acme"}, Logger: slog.New(slog.DiscardHandler),
		RateLimits: tolokasim.UnlimitedRateLimits(),
	})
	tb.Cleanup(simSrv.Close)
	r := redistest.New(tb)
	cfg, err := Load([]string{"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Redis.URL, cfg.Redis.Prefix = r.URL, r.Prefix
	cfg.Toloka.ProductionURL, cfg.Toloka.SandboxURL = simSrv.URL+"/api/v1", simSrv.URL+"/api/v1"
	cfg.Access.Auth, cfg.Access.AdminKey, cfg.Access.ServiceTokens = "keys", testAdminKey, "billing="+testServiceToken
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &lockedBuffer{}
	g, stop := startLoggingGateway(tb, cfg, slog.New(slog.NewJSONHandler(logs, nil)), nil)
	base := "http://" + g.HTTPAddr()
	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &accessGateway{g: g, base: base, conn: conn, sim: sim, logs: logs, redis: r, stop: stop}
}

// bearer returns ctx sending "authorization: Bearer <secret>" and, when
// given, the tenant header.
func bearer(secret string, tenantID ...string) context.Context {
	var kv []string
	if secret != "" {
		kv = append(kv, "authorization", "Bearer "+secret)
	}
	for _, t := range tenantID {
		kv = append(kv, access.TenantHeader, t)
	}
	return metadata.NewOutgoingContext(context.Background(), metadata.Pairs(kv...))
}

func (a *accessGateway) accessClient() crowdgatev1.AccessServiceClient {
	return crowdgatev1.NewAccessServiceClient(a.conn)
}

func (a *accessGateway) newTenant(t *testing.T, name string) string {
	t.Helper()
	resp, err := a.accessClient().CreateTenant(bearer(testAdminKey), &crowdgatev1.CreateTenantRequest{DisplayName: name})
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	return resp.GetTenant().GetTenantId()
}

func (a *accessGateway) newKey(t *testing.T, tenantID string, scope crowdgatev1.ApiKeyScope) (id, secret string) {
	t.Helper()
	resp, err := a.accessClient().CreateApiKey(bearer(testAdminKey), &crowdgatev1.CreateApiKeyRequest{TenantId: tenantID, DisplayName: scope.String(), Scope: scope})
	if err != nil {
		t.Fatalf("CreateApiKey: %v", err)
	}
	return resp.GetApiKey().GetApiKeyId(), resp.GetSecret()
}

// rest sends a REST request with an optional bearer secret and returns the
// status and body.
func (a *accessGateway) rest(t testing.TB, method, path, body, secret string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// methods returns every RPC of every Crowdgate service, from the
// descriptors: an RPC added later is covered without changing the tests.
func methods(t *testing.T) []protoreflect.MethodDescriptor {
	t.Helper()
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("crowdgate.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				out = append(out, sd.Methods().Get(j))
			}
		}
		return true
	})
	if len(out) < 30 {
		t.Fatalf("found %d Crowdgate RPCs in the descriptors, want them all", len(out))
	}
	sort.Slice(out, func(i, j int) bool { return fullMethod(out[i]) < fullMethod(out[j]) })
	return out
}

func fullMethod(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

// newMessage returns an empty message of a registered type.
func newMessage(t *testing.T, d protoreflect.MessageDescriptor) protoreflect.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New()
}

// invoke calls md with req over gRPC.
func invoke(t *testing.T, ctx context.Context, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, req protoreflect.Message) (proto.Message, error) {
	t.Helper()
	if req == nil {
		req = newMessage(t, md.Input())
	}
	resp := newMessage(t, md.Output()).Interface()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := invokeAny(ctx, conn, md, req.Interface(), resp)
	return resp, err
}

// invokeAny calls a unary RPC, or opens a server stream (WatchEvents, the
// exports) and returns its failure, or nil once the stream is live (its
// header says so) without waiting for events, or once it sent its first
// message or ended without any (an export of an empty pool).
func invokeAny(ctx context.Context, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, req, resp proto.Message) error {
	if !md.IsStreamingServer() {
		return conn.Invoke(ctx, fullMethod(md), req, resp)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, fullMethod(md))
	if err != nil {
		return err
	}
	if err := cs.SendMsg(req); err != nil {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	hdr, err := cs.Header()
	if err != nil {
		return err
	}
	if len(hdr.Get(events.LiveHeader)) == 1 {
		return nil
	}
	if err := cs.RecvMsg(resp); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func TestEveryRPCRefusesCallsWithoutValidCredentials(t *testing.T) {
	a := startAccessGateway(t, nil)
	tid := a.newTenant(t, "Acme")
	revokedID, revoked := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN)
	if _, err := a.accessClient().RevokeApiKey(bearer(testAdminKey), &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: revokedID}); err != nil {
		t.Fatal(err)
	}
	for _, md := range methods(t) {
		for name, ctx := range map[string]context.Context{
			"no credentials":     bearer(""),
			"unknown key":        bearer("cgk_0000000000000000000000000a_" + strings.Repeat("x", 52)),
			"revoked admin key":  bearer(revoked),
			"wrong admin secret": bearer(testAdminKey + "x"),
			"only a tenant":      bearer("", tid),
		} {
			t.Run(fullMethod(md)+"/"+name, func(t *testing.T) {
				if _, err := invoke(t, ctx, a.conn, md, nil); status.Code(err) != codes.Unauthenticated {
					t.Errorf("%v, want UNAUTHENTICATED", err)
				}
			})
		}
	}
	// The audit log records no unauthenticated call.
	resp, err := a.accessClient().ListAuditEvents(bearer(testAdminKey, tid), &crowdgatev1.ListAuditEventsRequest{PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.GetEvents() {
		if e.GetActor() != "admin" {
			t.Errorf("audit event of an unauthenticated call: %v", e)
		}
	}
}

// restRoutes lists every REST route of the OpenAPI document as (verb, path
// with parameters filled, gRPC full method).
func restRoutes(t testing.TB) [][3]string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapi.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	var out [][3]string
	for path, ops := range doc.Paths {
		filled := path
		for strings.Contains(filled, "{") {
			i, j := strings.Index(filled, "{"), strings.Index(filled, "}")
			filled = filled[:i] + "x1" + filled[j+1:]
		}
		for verb, op := range ops {
			svc, m, ok := strings.Cut(op.OperationID, "_")
			if !ok {
				t.Fatalf("operationId %q is not Service_Method", op.OperationID)
			}
			out = append(out, [3]string{strings.ToUpper(verb), filled, "/crowdgate.v1." + svc + "/" + m})
		}
	}
	if len(out) < 30 {
		t.Fatalf("found %d REST routes, want them all", len(out))
	}
	sort.Slice(out, func(i, j int) bool { return out[i][1]+out[i][0] < out[j][1]+out[j][0] })
	return out
}

func TestEveryRESTRouteNeedsCredentialsAndPublicEndpointsStayPublic(t *testing.T) {
	a := startAccessGateway(t, nil)
	tid := a.newTenant(t, "Acme")
	_, readKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	for _, r := range restRoutes(t) {
		t.Run(r[0]+" "+r[1], func(t *testing.T) {
			if code, body := a.rest(t, r[0], r[1], "{}", ""); code != http.StatusUnauthorized {
				t.Errorf("without a key: %d %s, want 401", code, body)
			}
			if code, _ := a.rest(t, r[0], r[1], "{}", "nope"); code != http.StatusUnauthorized {
				t.Errorf("with a bad key: %d, want 401", code)
			}
			code, body := a.rest(t, r[0], r[1], "{}", readKey)
			if access.Required(r[2]) != access.NeedRead {
				if code != http.StatusForbidden {
					t.Errorf("READ key on %s: %d %s, want 403", r[2], code, body)
				}
			} else if code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("READ key on %s: %d %s, want it let through", r[2], code, body)
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/.well-known/jwks.json"} {
		if code, _ := a.rest(t, http.MethodGet, path, "", ""); code != http.StatusOK {
			t.Errorf("GET %s without credentials: %d, want 200", path, code)
		}
	}
	// The landing answers Tolokers, who have no key: never 401 or 403.
	if code, _ := a.rest(t, http.MethodGet, "/start?assignment_id=0000000001--000000000000000000000001", "", ""); code == http.StatusUnauthorized || code == http.StatusForbidden {
		t.Errorf("landing without credentials: %d", code)
	}
	hc, err := healthpb.NewHealthClient(a.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health without credentials: %v, %v", hc.GetStatus(), err)
	}
}

func TestEveryRPCChecksTheKeyScope(t *testing.T) {
	a := startAccessGateway(t, nil)
	tid := a.newTenant(t, "Acme")
	_, readKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	_, writeKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	refused := map[codes.Code]bool{codes.Unauthenticated: true, codes.PermissionDenied: true}
	for _, md := range methods(t) {
		m := fullMethod(md)
		need := access.Required(m)
		t.Run(m, func(t *testing.T) {
			_, err := invoke(t, bearer(readKey), a.conn, md, nil)
			switch {
			case need != access.NeedRead && status.Code(err) != codes.PermissionDenied:
				t.Errorf("READ key: %v, want PERMISSION_DENIED", err)
			case need == access.NeedRead && refused[status.Code(err)]:
				t.Errorf("READ key: %v, want it let through", err)
			}
			_, err = invoke(t, bearer(writeKey), a.conn, md, nil)
			switch {
			case need == access.NeedAdmin && status.Code(err) != codes.PermissionDenied:
				t.Errorf("WRITE key: %v, want PERMISSION_DENIED", err)
			case need != access.NeedAdmin && refused[status.Code(err)]:
				t.Errorf("WRITE key: %v, want it let through", err)
			}
			if _, err := invoke(t, bearer(testServiceToken, tid), a.conn, md, nil); need != access.NeedAdmin && refused[status.Code(err)] {
				t.Errorf("service token: %v, want it let through", err)
			}
		})
	}
}

func TestRevokedKeyIsRefusedAtOnceOverRESTAndGRPC(t *testing.T) {
	a := startAccessGateway(t, nil)
	code, body := a.rest(t, http.MethodPost, "/v1/tenants", `{"display_name": "Acme"}`, testAdminKey)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/tenants: %d %s", code, body)
	}
	var tnt struct {
		Tenant struct {
			TenantID string `json:"tenant_id"`
		}
	}
	if err := json.Unmarshal([]byte(body), &tnt); err != nil {
		t.Fatal(err)
	}
	code, body = a.rest(t, http.MethodPost, "/v1/tenants/"+tnt.Tenant.TenantID+"/api-keys", `{"display_name": "ci", "scope": "API_KEY_SCOPE_WRITE"}`, testAdminKey)
	if code != http.StatusOK {
		t.Fatalf("POST api-keys: %d %s", code, body)
	}
	var created struct {
		APIKey struct {
			ID string `json:"api_key_id"`
		} `json:"api_key"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	if code, body := a.rest(t, http.MethodGet, "/v1/credentials", "", created.Secret); code != http.StatusOK {
		t.Fatalf("fresh key: %d %s", code, body)
	}
	// The key list never shows a secret.
	if _, body := a.rest(t, http.MethodGet, "/v1/tenants/"+tnt.Tenant.TenantID+"/api-keys", "", testAdminKey); strings.Contains(body, created.Secret[len(created.APIKey.ID)+1:]) {
		t.Errorf("the key list shows the secret")
	}

	if code, body := a.rest(t, http.MethodPost, "/v1/api-keys/"+created.APIKey.ID+"/revoke", "{}", testAdminKey); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _ := a.rest(t, http.MethodGet, "/v1/credentials", "", created.Secret); code != http.StatusUnauthorized {
		t.Errorf("revoked key over REST: %d, want 401", code)
	}
	_, err := crowdgatev1.NewCredentialServiceClient(a.conn).ListCredentials(bearer(created.Secret), &crowdgatev1.ListCredentialsRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("revoked key over gRPC: %v, want UNAUTHENTICATED", err)
	}
}

func TestAuditLogOverREST(t *testing.T) {
	a := startAccessGateway(t, nil)
	tid := a.newTenant(t, "Acme")
	keyID, key := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	// A write (refused by Toloka's emulator: unknown key) and some reads.
	a.rest(t, http.MethodPost, "/v1/credentials", `{"display_name": "x", "environment": "ENVIRONMENT_SANDBOX", "api_key": "wrong.key.k3y"}`, key)
	a.rest(t, http.MethodGet, "/v1/credentials", "", key)
	a.rest(t, http.MethodGet, "/v1/projects", "", key)

	code, body := a.rest(t, http.MethodGet, "/v1/audit-events", "", key)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/audit-events: %d %s", code, body)
	}
	var got struct {
		Events []struct {
			Tenant string `json:"tenant_id"`
			Actor  string `json:"actor"`
			Method string `json:"method"`
			Result string `json:"result"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	var methodsSeen []string
	for _, e := range got.Events {
		methodsSeen = append(methodsSeen, e.Method)
		if e.Tenant != tid {
			t.Errorf("event of tenant %q in %q's log", e.Tenant, tid)
		}
	}
	want := []string{"/crowdgate.v1.CredentialService/CreateCredential", "/crowdgate.v1.AccessService/CreateApiKey", "/crowdgate.v1.AccessService/CreateTenant"}
	if strings.Join(methodsSeen, " ") != strings.Join(want, " ") {
		t.Errorf("audited methods = %v, want %v (writes only, newest first)", methodsSeen, want)
	}
	if len(got.Events) > 0 && (got.Events[0].Actor != keyID || got.Events[0].Result == "OK" || got.Events[0].Result == "") {
		t.Errorf("CreateCredential event = %+v, want actor %s and the refusal's code", got.Events[0], keyID)
	}
	// An administrator naming no tenant sees every tenant's events.
	other := a.newTenant(t, "Other")
	code, body = a.rest(t, http.MethodGet, "/v1/audit-events", "", testAdminKey)
	if code != http.StatusOK || !strings.Contains(body, other) || !strings.Contains(body, tid) {
		t.Errorf("admin's audit log: %d %s, want both tenants' events", code, body)
	}
	if strings.Contains(a.logs.String(), key[len(keyID)+1:]) || strings.Contains(a.logs.String(), testAdminKey) {
		t.Error("a secret appears in the logs")
	}
}

// TestTenantIsolationOnEveryRPC builds a tenant's whole flow (credential,
// project, open pool, a Toloker's session and a submit), then calls every
// RPC as another tenant with the first tenant's ids: nothing is found,
// nothing is changed, nothing of the first tenant is returned.
func TestTenantIsolationOnEveryRPC(t *testing.T) {
	a := startAccessGateway(t, nil)
	ta, tb := a.newTenant(t, "A"), a.newTenant(t, "B")
	_, keyA := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	_, keyB := a.newKey(t, tb, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	asA := bearer(keyA)

	ids := buildFlow(t, a, asA)

	// A's view of its records, to compare after B's attempts.
	snapshot := func() map[string]string { return recordsOf(t, a, asA, ids) }
	before := snapshot()

	asB := bearer(keyB)
	for _, md := range methods(t) {
		m := fullMethod(md)
		if access.Required(m) == access.NeedAdmin {
			continue // platform administration, not a tenant's data
		}
		t.Run(m, func(t *testing.T) {
			req := fill(t, md, ids, true)
			carriesA := req != nil
			if req == nil {
				req = newMessage(t, md.Input())
			}
			resp, err := invoke(t, asB, a.conn, md, req)
			if err == nil {
				b, _ := protojson.Marshal(resp)
				for name, id := range ids {
					if name == "skill_id" {
						continue // Toloka's skill ids are short numbers, found in any answer
					}
					if strings.Contains(string(b), id) {
						t.Errorf("B's answer holds A's %s: %s", name, b)
					}
				}
			}
			if carriesA && status.Code(err) != codes.NotFound {
				t.Errorf("B with A's ids: %v, want NOT_FOUND", err)
			}
		})
	}
	after := snapshot()
	for m, b := range before {
		if after[m] != b {
			t.Errorf("%s as A changed after B's calls:\nbefore %s\nafter  %s", m, b, after[m])
		}
	}
}

// recordsOf is what ctx's caller sees of the records ids names: every Get*
// RPC that takes one of them, by method, as JSON.
func recordsOf(t *testing.T, a *accessGateway, ctx context.Context, ids map[protoreflect.Name]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, md := range methods(t) {
		if !strings.HasPrefix(string(md.Name()), "Get") {
			continue
		}
		req := fill(t, md, ids, false)
		if req == nil {
			continue
		}
		resp, err := invoke(t, ctx, a.conn, md, req)
		if err != nil {
			t.Fatalf("%s: %v", fullMethod(md), err)
		}
		b, _ := protojson.Marshal(resp)
		out[fullMethod(md)] = string(b)
	}
	return out
}

// buildFlow walks a tenant's whole flow as ctx's caller: a credential, a
// project, an open pool, a Toloker's session and a submit. It returns
// their ids by request field name (and the session's one-time "code").
func buildFlow(t testing.TB, a *accessGateway, asA context.Context) map[protoreflect.Name]string {
	t.Helper()
	ids := map[protoreflect.Name]string{}
	cred, err := crowdgatev1.NewCredentialServiceClient(a.conn).CreateCredential(asA, &crowdgatev1.CreateCredentialRequest{
		DisplayName: "A", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: testTolokaKey,
	})
	if err != nil {
		t.Fatalf("CreateCredential as A: %v", err)
	}
	ids["credential_id"] = cred.GetCredential().GetCredentialId()
	sk, err := crowdgatev1.NewSkillServiceClient(a.conn).CreateSkill(asA, &crowdgatev1.CreateSkillRequest{Skill: &crowdgatev1.Skill{
		CredentialId: ids["credential_id"], Name: "A's skill",
	}})
	if err != nil {
		t.Fatalf("CreateSkill as A: %v", err)
	}
	ids["skill_id"] = sk.GetSkill().GetSkillId()
	prj, err := crowdgatev1.NewProjectServiceClient(a.conn).CreateProject(asA, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{
		CredentialId: ids["credential_id"], PublicName: "Signs", PublicDescription: "Draw boxes",
		PlatformUrl: "https://label.example.com/start", PartnerName: "Acme", PartnerUrl: "https://label.example.com",
	}})
	if err != nil {
		t.Fatalf("CreateProject as A: %v", err)
	}
	ids["project_id"] = prj.GetProject().GetProjectId()
	pools := crowdgatev1.NewPoolServiceClient(a.conn)
	pl, err := pools.CreatePool(asA, &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{
		ProjectId: ids["project_id"], PrivateName: "batch 1", WillExpire: timestamppb.New(time.Now().Add(30 * 24 * time.Hour)),
		RewardPerAssignment: "0.05", AssignmentMaxDurationSeconds: 600, Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1},
	}})
	if err != nil {
		t.Fatalf("CreatePool as A: %v", err)
	}
	ids["pool_id"] = pl.GetPool().GetPoolId()
	if _, err := pools.OpenPool(asA, &crowdgatev1.OpenPoolRequest{PoolId: ids["pool_id"]}); err != nil {
		t.Fatalf("OpenPool as A: %v", err)
	}
	asg, err := a.sim.CreateAssignment(pl.GetPool().GetTolokaPoolId(), "toloker-1")
	if err != nil {
		t.Fatalf("emulator CreateAssignment: %v", err)
	}
	ids["assignment_id"] = asg.ID
	sess, err := crowdgatev1.NewSessionServiceClient(a.conn).StartSession(asA, &crowdgatev1.StartSessionRequest{AssignmentId: asg.ID})
	if err != nil {
		t.Fatalf("StartSession as A: %v", err)
	}
	ids["session_id"], ids["code"] = sess.GetSession().GetSessionId(), sess.GetCode()
	sub, err := crowdgatev1.NewSubmissionServiceClient(a.conn).Submit(asA, &crowdgatev1.SubmitRequest{SessionId: ids["session_id"], Reward: "0.01"})
	if err != nil {
		t.Fatalf("Submit as A: %v", err)
	}
	ids["submission_id"] = sub.GetSubmission().GetSubmissionId()
	// The Toloker landed: the registry knows them by their Toloka user_id.
	ids["user_id"] = "toloker-1"
	// A ban of another Toloker in the pool (so A's session goes on).
	b, err := crowdgatev1.NewBanServiceClient(a.conn).CreateBan(asA, &crowdgatev1.CreateBanRequest{
		UserId: "banned-toloker", Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL, PoolId: ids["pool_id"], PrivateComment: "A's ban",
	})
	if err != nil {
		t.Fatalf("CreateBan as A: %v", err)
	}
	ids["ban_id"] = b.GetBan().GetBanId()

	return ids
}

// fill returns a request for md with every id field (top level or one
// message deep) set to A's ids, and the other fields a call needs to get
// past validation. It returns nil when md takes none of the ids.
func fill(t *testing.T, md protoreflect.MethodDescriptor, ids map[protoreflect.Name]string, forB bool) protoreflect.Message {
	t.Helper()
	req := newMessage(t, md.Input())
	set := func(m protoreflect.Message) bool {
		found := false
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Kind() != protoreflect.StringKind || fd.IsList() {
				continue
			}
			if id, ok := ids[fd.Name()]; ok {
				m.Set(fd, protoreflect.ValueOfString(id))
				found = true
			}
		}
		return found
	}
	found := set(req)
	fields := req.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && fd.Message().FullName() != "google.protobuf.Timestamp" {
			sub := req.Mutable(fd).Message()
			if set(sub) {
				found = true
			} else {
				req.Clear(fd)
			}
		}
	}
	if !found {
		return nil
	}
	// What B's write attempts need to pass validation, so the lookup is
	// what refuses them.
	if forB {
		switch r := req.Interface().(type) {
		case *crowdgatev1.SubmitRequest:
			r.Reward = "0.01"
		case *crowdgatev1.CreateProjectRequest:
			r.Project.PublicName, r.Project.PublicDescription = "B's", "B's"
			r.Project.PlatformUrl, r.Project.PartnerName, r.Project.PartnerUrl = "https://b.example.com/start", "B", "https://b.example.com"
		case *crowdgatev1.RejectAssignmentRequest:
			r.PublicComment = "by B"
		case *crowdgatev1.UpdatePoolRequest:
			r.Pool.PrivateName = "renamed by B"
			r.UpdateMask = &fieldmaskpb.FieldMask{Paths: []string{"private_name"}}
		case *crowdgatev1.CreateApiKeyRequest:
			r.DisplayName, r.Scope = "B's key", crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN
		case *crowdgatev1.CreateBanRequest:
			// A pool ban names the pool only.
			r.Scope, r.ProjectId, r.CredentialId = crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL, "", ""
		case *crowdgatev1.BatchAcceptAssignmentsRequest:
			r.AssignmentIds = []string{ids["assignment_id"]}
		case *crowdgatev1.BatchRejectAssignmentsRequest:
			r.AssignmentIds, r.PublicComment = []string{ids["assignment_id"]}, "by B"
		}
	}
	return req
}

func TestAuthSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"unknown mode", func(c *Config) { c.Access.Auth = "on" }, "CROWDGATE_AUTH"},
		{"short admin key", func(c *Config) { c.Access.AdminKey = "short" }, "CROWDGATE_ADMIN_KEY"},
		{"short service token", func(c *Config) { c.Access.ServiceTokens = "billing=short" }, "CROWDGATE_SERVICE_TOKENS"},
		{"TLS key without certificate", func(c *Config) { c.Access.TLS.Key = "/nonexistent" }, "CROWDGATE_GRPC_TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{}
			tc.mutate(&cfg)
			_, err := cfg.Access.Config()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "short") && tc.name != "unknown mode" {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}

	// -h never shows a secret given in the environment.
	var usage bytes.Buffer
	env := map[string]string{"CROWDGATE_ADMIN_KEY": testAdminKey, "CROWDGATE_SERVICE_TOKENS": "billing=" + testServiceToken}
	_, _ = Load([]string{"-h"}, func(k string) string { return env[k] }, &usage)
	if !strings.Contains(usage.String(), "CROWDGATE_ADMIN_KEY") {
		t.Fatalf("usage does not document CROWDGATE_ADMIN_KEY:\n%s", usage.String())
	}
	if strings.Contains(usage.String(), testAdminKey) || strings.Contains(usage.String(), testServiceToken) {
		t.Error("-h output shows a secret")
	}
}

func TestAuthOffIsTheDefaultAndSaysSoLoudlyAgainstARealRedis(t *testing.T) {
	cfg, err := Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if mode, _ := cfg.Access.Config(); mode.Mode != access.ModeOff {
		t.Fatalf("default mode %q, want off", mode.Mode)
	}
	a := startAccessGateway(t, func(c *Config) { c.Access.Auth, c.Access.AdminKey = "", "" })
	if !strings.Contains(a.logs.String(), "CROWDGATE_AUTH is off") {
		t.Errorf("no loud warning with auth off and REDIS_URL set; logs:\n%s", a.logs.String())
	}
	// Calls without credentials work, as the default tenant.
	if _, err := crowdgatev1.NewCredentialServiceClient(a.conn).ListCredentials(context.Background(), &crowdgatev1.ListCredentialsRequest{}); err != nil {
		t.Errorf("auth off: %v", err)
	}
	resp, err := a.accessClient().ListTenants(context.Background(), &crowdgatev1.ListTenantsRequest{})
	if err != nil || len(resp.GetTenants()) != 1 || resp.GetTenants()[0].GetTenantId() != "default" {
		t.Errorf("ListTenants = %v, %v; want the default tenant", resp.GetTenants(), err)
	}
}

func TestRequestLimitsAndServerTimeouts(t *testing.T) {
	a := startAccessGateway(t, func(c *Config) { c.Access.Auth = "" })
	big := `{"display_name": "` + strings.Repeat("x", MaxRequestBytes) + `"}`
	for _, path := range []string{"/v1/credentials", "/v1/pools", "/v1/submissions", "/v1/tenants"} {
		code, body := a.rest(t, http.MethodPost, path, big, "")
		if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s with %d bytes: %d %.200s, want 400 or 413", path, len(big), code, body)
		}
	}
	// A header block over the limit is refused before any handler.
	if code, _ := a.rest(t, http.MethodGet, "/v1/credentials", "", "", "X-Big", strings.Repeat("h", 128<<10)); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("128 KiB header: %d, want 431", code)
	}
	// A gRPC message over the limit is refused too.
	_, err := crowdgatev1.NewCredentialServiceClient(a.conn).CreateCredential(context.Background(), &crowdgatev1.CreateCredentialRequest{DisplayName: strings.Repeat("x", MaxRequestBytes)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized gRPC message: %v, want RESOURCE_EXHAUSTED", err)
	}
	s := a.g.httpServer
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": s.ReadHeaderTimeout, "ReadTimeout": s.ReadTimeout, "WriteTimeout": s.WriteTimeout, "IdleTimeout": s.IdleTimeout} {
		if d <= 0 {
			t.Errorf("HTTP server %s is not set", name)
		}
	}
}

func TestRejectInvalidUTF8(t *testing.T) {
	reached := false
	h := rejectInvalidUTF8(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	for _, tc := range []struct {
		target string
		want   int
		field  string // the parameter the BadRequest names
	}{
		{"/v1/pools/pool_1", http.StatusOK, ""},
		{"/v1/pools/caf%C3%A9", http.StatusOK, ""},
		{"/v1/credentials?page_token=abc&page_size=2", http.StatusOK, ""},
		{"/v1/pools/%FF", http.StatusBadRequest, ""},
		{"/v1/pools/%C0%80", http.StatusBadRequest, ""},
		{"/v1/sessions/%ED%A0%80/end", http.StatusBadRequest, ""},
		{"/v1/credentials?page_token=%FF", http.StatusBadRequest, "page_token"},
		{"/v1/credentials?page_size=2&page_token=%FF", http.StatusBadRequest, "page_token"},
		{"/v1/credentials?%FF=1", http.StatusBadRequest, "\uFFFD"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			reached = false
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.target, nil))
			if rec.Code != tc.want || reached != (tc.want == http.StatusOK) {
				t.Errorf("status %d (handler reached: %v), want %d", rec.Code, reached, tc.want)
			}
			if tc.field != "" && !strings.Contains(rec.Body.String(), `"field":"`+tc.field+`"`) {
				t.Errorf("body %s, want a BadRequest naming %q", rec.Body, tc.field)
			}
		})
	}
}

func TestRESTHeaderMatcherForwardsTheTenantHeader(t *testing.T) {
	for _, tc := range []struct {
		header, wantKey string
		wantOK          bool
	}{
		{"X-Crowdgate-Tenant", access.TenantHeader, true},
		{"x-crowdgate-tenant", access.TenantHeader, true},
		{"Authorization", "grpcgateway-Authorization", true},
		{"X-Other", "", false},
		{"Grpc-Metadata-X-Crowdgate-Tenant", access.MisnamedTenantHeader, true},
		{"grpc-metadata-x-crowdgate-tenant", access.MisnamedTenantHeader, true},
		{"Grpc-Metadata-X-Other", "", false},
	} {
		if key, ok := restHeaderMatcher(tc.header); key != tc.wantKey || ok != tc.wantOK {
			t.Errorf("restHeaderMatcher(%q) = %q, %v; want %q, %v", tc.header, key, ok, tc.wantKey, tc.wantOK)
		}
	}
}

// TestTenantAdminKeyActsOnlyForItsOwnTenant calls every RPC with tenant B's
// ADMIN key and A's ids (A's tenant id and one of A's key ids too), once
// acting for B and once naming A in x-crowdgate-tenant. A tenant's ADMIN
// key manages its own tenant's keys, not the platform: naming A, every call
// is PERMISSION_DENIED; acting for B, every call carrying A's ids is
// NOT_FOUND or PERMISSION_DENIED, tenants are neither listed nor created;
// no answer holds any of A's ids, and nothing of A's changes (its records,
// its keys, its audit log), nor does the list of tenants.
func TestTenantAdminKeyActsOnlyForItsOwnTenant(t *testing.T) {
	a := startAccessGateway(t, nil)
	ta, tb := a.newTenant(t, "A"), a.newTenant(t, "B")
	_, keyA := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	victimID, _ := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	_, adminB := a.newKey(t, tb, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN)
	asA := bearer(keyA)
	ids := buildFlow(t, a, asA)

	// B's requests also carry A's tenant id and one of A's key ids.
	targets := map[protoreflect.Name]string{"tenant_id": ta, "api_key_id": victimID}
	for k, v := range ids {
		targets[k] = v
	}

	// Everything of A's, and the platform's tenants, seen by A and by the
	// bootstrap admin.
	asRoot := bearer(testAdminKey)
	state := func() map[string]string {
		t.Helper()
		out := recordsOf(t, a, asA, ids)
		keys, err := a.accessClient().ListApiKeys(asRoot, &crowdgatev1.ListApiKeysRequest{TenantId: ta, PageSize: 500})
		if err != nil {
			t.Fatalf("ListApiKeys of A: %v", err)
		}
		for _, k := range keys.GetApiKeys() {
			k.LastUsedTime = nil // moves when A's own key is used
		}
		tenants, err := a.accessClient().ListTenants(asRoot, &crowdgatev1.ListTenantsRequest{PageSize: 500})
		if err != nil {
			t.Fatalf("ListTenants: %v", err)
		}
		audit, err := a.accessClient().ListAuditEvents(bearer(testAdminKey, ta), &crowdgatev1.ListAuditEventsRequest{PageSize: 500})
		if err != nil {
			t.Fatalf("ListAuditEvents of A: %v", err)
		}
		for name, m := range map[string]proto.Message{"A's api keys": keys, "tenants": tenants, "A's audit log": audit} {
			b, _ := protojson.Marshal(m)
			out[name] = string(b)
		}
		return out
	}
	before := state()

	platformOnly := map[string]bool{
		crowdgatev1.AccessService_CreateTenant_FullMethodName: true,
		crowdgatev1.AccessService_ListTenants_FullMethodName:  true,
	}
	for _, md := range methods(t) {
		m := fullMethod(md)
		for _, namesA := range []bool{false, true} {
			name, ctx := m+"/acting_for_B", bearer(adminB)
			if namesA {
				name, ctx = m+"/naming_A", bearer(adminB, ta)
			}
			t.Run(name, func(t *testing.T) {
				req := fill(t, md, targets, true)
				carriesA := req != nil
				if req == nil {
					req = newMessage(t, md.Input())
				}
				if r, ok := req.Interface().(*crowdgatev1.CreateTenantRequest); ok {
					r.DisplayName = "by B" // valid, so only the caller can refuse it
				}
				resp, err := invoke(t, ctx, a.conn, md, req)
				switch got := status.Code(err); {
				case namesA || platformOnly[m]:
					if got != codes.PermissionDenied {
						t.Errorf("B's ADMIN key: %v, want PERMISSION_DENIED", err)
					}
				case carriesA:
					if got != codes.NotFound && got != codes.PermissionDenied {
						t.Errorf("B's ADMIN key with A's ids: %v, want NOT_FOUND or PERMISSION_DENIED", err)
					}
				}
				if err != nil {
					return
				}
				if l, ok := resp.(*crowdgatev1.ListAuditEventsResponse); ok {
					// B's log records B's own attempts on A's ids (the
					// resource B named); it must hold no event of A's.
					for _, e := range l.GetEvents() {
						if e.GetTenantId() != tb {
							t.Errorf("B's audit log holds an event of tenant %q: %v", e.GetTenantId(), e)
						}
						e.Resource = ""
					}
				}
				b, _ := protojson.Marshal(resp)
				for field, id := range targets {
					if field == "skill_id" {
						continue // Toloka's skill ids are short numbers, found in any answer
					}
					if strings.Contains(string(b), id) {
						t.Errorf("B's answer holds A's %s: %s", field, b)
					}
				}
			})
		}
	}
	after := state()
	for k, b := range before {
		if after[k] != b {
			t.Errorf("%s changed after B's calls:\nbefore %s\nafter  %s", k, b, after[k])
		}
	}
}

// TestTenantAdminKeyManagesItsOwnTenant: a tenant's ADMIN key creates, lists
// and revokes its own tenant's keys, does what a WRITE key does in its
// tenant and reads its own tenant's audit log only; the bootstrap admin
// still does everything for any tenant it names, and internal services
// still act for the tenant they name.
func TestTenantAdminKeyManagesItsOwnTenant(t *testing.T) {
	a := startAccessGateway(t, nil)
	ta, tb := a.newTenant(t, "A"), a.newTenant(t, "B")
	adminBID, adminB := a.newKey(t, tb, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN)
	_, readA := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	ac := a.accessClient()

	// B's ADMIN key manages B's keys, with or without naming B.
	for _, asB := range []context.Context{bearer(adminB), bearer(adminB, tb)} {
		created, err := ac.CreateApiKey(asB, &crowdgatev1.CreateApiKeyRequest{TenantId: tb, DisplayName: "ci", Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE})
		if err != nil {
			t.Fatalf("CreateApiKey for B by B's ADMIN key: %v", err)
		}
		id, secret := created.GetApiKey().GetApiKeyId(), created.GetSecret()
		if created.GetApiKey().GetTenantId() != tb {
			t.Errorf("key created for tenant %q, want B", created.GetApiKey().GetTenantId())
		}
		if _, err := crowdgatev1.NewCredentialServiceClient(a.conn).ListCredentials(bearer(secret), &crowdgatev1.ListCredentialsRequest{}); err != nil {
			t.Errorf("the new key: %v", err)
		}
		list, err := ac.ListApiKeys(asB, &crowdgatev1.ListApiKeysRequest{TenantId: tb, PageSize: 500})
		if err != nil {
			t.Fatalf("ListApiKeys of B by B's ADMIN key: %v", err)
		}
		listed := map[string]bool{}
		for _, k := range list.GetApiKeys() {
			listed[k.GetApiKeyId()] = true
		}
		if !listed[id] || !listed[adminBID] {
			t.Errorf("B's keys %v, want %s and %s", list.GetApiKeys(), id, adminBID)
		}
		if _, err := ac.RevokeApiKey(asB, &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: id}); err != nil {
			t.Fatalf("RevokeApiKey of B's key by B's ADMIN key: %v", err)
		}
		if _, err := crowdgatev1.NewCredentialServiceClient(a.conn).ListCredentials(bearer(secret), &crowdgatev1.ListCredentialsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("the revoked key: %v, want UNAUTHENTICATED", err)
		}
	}
	// It does whatever a WRITE key does in B, and its audit log is B's.
	buildFlow(t, a, bearer(adminB))
	audit, err := ac.ListAuditEvents(bearer(adminB), &crowdgatev1.ListAuditEventsRequest{PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(audit.GetEvents()) == 0 {
		t.Error("B's audit log is empty")
	}
	for _, e := range audit.GetEvents() {
		if e.GetTenantId() != tb {
			t.Errorf("B's ADMIN key sees an event of tenant %q: %v", e.GetTenantId(), e)
		}
	}

	// The bootstrap admin acts for A by naming it: A's whole flow, A's keys.
	asRootForA := bearer(testAdminKey, ta)
	idsA := buildFlow(t, a, asRootForA)
	if _, err := crowdgatev1.NewProjectServiceClient(a.conn).GetProject(bearer(readA), &crowdgatev1.GetProjectRequest{ProjectId: idsA["project_id"]}); err != nil {
		t.Errorf("A's READ key on the project the bootstrap admin made for A: %v", err)
	}
	if _, err := crowdgatev1.NewProjectServiceClient(a.conn).GetProject(bearer(testServiceToken, ta), &crowdgatev1.GetProjectRequest{ProjectId: idsA["project_id"]}); err != nil {
		t.Errorf("a service naming A: %v", err)
	}
	created, err := ac.CreateApiKey(asRootForA, &crowdgatev1.CreateApiKeyRequest{TenantId: ta, DisplayName: "ops", Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN})
	if err != nil {
		t.Fatalf("CreateApiKey for A by the bootstrap admin: %v", err)
	}
	if _, err := ac.ListApiKeys(asRootForA, &crowdgatev1.ListApiKeysRequest{TenantId: ta}); err != nil {
		t.Errorf("ListApiKeys of A by the bootstrap admin: %v", err)
	}
	if _, err := ac.RevokeApiKey(bearer(testAdminKey), &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: created.GetApiKey().GetApiKeyId()}); err != nil {
		t.Errorf("RevokeApiKey of A's key by the bootstrap admin: %v", err)
	}
	if _, err := ac.CreateTenant(bearer(testAdminKey), &crowdgatev1.CreateTenantRequest{DisplayName: "C"}); err != nil {
		t.Errorf("CreateTenant by the bootstrap admin: %v", err)
	}
	if resp, err := ac.ListTenants(bearer(testAdminKey), &crowdgatev1.ListTenantsRequest{}); err != nil || len(resp.GetTenants()) < 4 {
		t.Errorf("ListTenants by the bootstrap admin: %v, %v; want default, A, B and C", resp.GetTenants(), err)
	}
	seen := map[string]bool{}
	all, err := ac.ListAuditEvents(bearer(testAdminKey), &crowdgatev1.ListAuditEventsRequest{PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all.GetEvents() {
		seen[e.GetTenantId()] = true
	}
	if !seen[ta] || !seen[tb] {
		t.Errorf("the bootstrap admin's audit log covers tenants %v, want A and B", seen)
	}
}

// TestTenantHeaderIsOneNameOverRESTAndGRPC: the tenant a call acts for is
// named by X-Crowdgate-Tenant over REST and by x-crowdgate-tenant metadata
// over gRPC, with the same effect; grpc-gateway's
// Grpc-Metadata-X-Crowdgate-Tenant is refused with 400 naming the right
// header, rather than silently dropped (the call would act for the
// caller's default tenant).
func TestTenantHeaderIsOneNameOverRESTAndGRPC(t *testing.T) {
	a := startAccessGateway(t, nil)
	ta := a.newTenant(t, "A")
	_, readA := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	body := func(name string) string {
		return `{"display_name": "` + name + `", "environment": "ENVIRONMENT_SANDBOX", "api_key": "` + testTolokaKey + `"}`
	}

	code, resp := a.rest(t, http.MethodPost, "/v1/credentials", body("over REST"), testAdminKey, "X-Crowdgate-Tenant", ta)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/credentials naming A: %d %s", code, resp)
	}
	var viaREST struct {
		Credential struct {
			ID string `json:"credential_id"`
		} `json:"credential"`
	}
	if err := json.Unmarshal([]byte(resp), &viaREST); err != nil || viaREST.Credential.ID == "" {
		t.Fatalf("POST /v1/credentials: %s (%v)", resp, err)
	}
	viaGRPC, err := crowdgatev1.NewCredentialServiceClient(a.conn).CreateCredential(bearer(testAdminKey, ta), &crowdgatev1.CreateCredentialRequest{
		DisplayName: "over gRPC", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: testTolokaKey,
	})
	if err != nil {
		t.Fatalf("CreateCredential naming A: %v", err)
	}
	want := []string{viaREST.Credential.ID, viaGRPC.GetCredential().GetCredentialId()}

	credentialsOf := func(ctx context.Context) string {
		t.Helper()
		list, err := crowdgatev1.NewCredentialServiceClient(a.conn).ListCredentials(ctx, &crowdgatev1.ListCredentialsRequest{PageSize: 100})
		if err != nil {
			t.Fatalf("ListCredentials: %v", err)
		}
		b, _ := protojson.Marshal(list)
		return string(b)
	}
	ofA, ofDefault := credentialsOf(bearer(readA)), credentialsOf(bearer(testAdminKey))
	for _, id := range want {
		if !strings.Contains(ofA, id) {
			t.Errorf("A's READ key does not see credential %s: %s", id, ofA)
		}
		if strings.Contains(ofDefault, id) {
			t.Errorf("credential %s landed in tenant default: %s", id, ofDefault)
		}
	}
	// A's own key may name its own tenant over REST too.
	if code, resp := a.rest(t, http.MethodGet, "/v1/credentials", "", readA, "X-Crowdgate-Tenant", ta); code != http.StatusOK || !strings.Contains(resp, want[0]) {
		t.Errorf("GET /v1/credentials by A naming A: %d %s", code, resp)
	}

	// grpc-gateway's metadata prefix is no second name: it is refused, with
	// or without the right header beside it, and creates nothing.
	for _, headers := range [][]string{
		{"Grpc-Metadata-X-Crowdgate-Tenant", ta},
		{"grpc-metadata-x-crowdgate-tenant", ta},
		{"Grpc-Metadata-X-Crowdgate-Tenant", ta, "X-Crowdgate-Tenant", ta},
	} {
		code, resp := a.rest(t, http.MethodPost, "/v1/credentials", body("misnamed"), testAdminKey, headers...)
		if code != http.StatusBadRequest || !strings.Contains(resp, "X-Crowdgate-Tenant") {
			t.Errorf("POST /v1/credentials with %v: %d %s, want 400 naming X-Crowdgate-Tenant", headers, code, resp)
		}
		if code, resp := a.rest(t, http.MethodGet, "/v1/credentials", "", readA, headers...); code != http.StatusBadRequest {
			t.Errorf("GET /v1/credentials with %v: %d %s, want 400", headers, code, resp)
		}
	}
	for who, ctx := range map[string]context.Context{"A": bearer(readA), "default": bearer(testAdminKey)} {
		if got := credentialsOf(ctx); strings.Contains(got, "misnamed") {
			t.Errorf("a refused call created a credential in tenant %s: %s", who, got)
		}
	}
}

// Exports over REST keep the list RPCs' rules: another tenant's pool is
// NOT_FOUND, a READ key exports submissions and Tolokers but not sessions
// (GetSession needs WRITE), and no key is UNAUTHENTICATED.
func TestExportKeepsTenantAndScopeRulesOverREST(t *testing.T) {
	a := startAccessGateway(t, nil)
	ta, tb := a.newTenant(t, "A"), a.newTenant(t, "B")
	_, writeA := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	_, readA := a.newKey(t, ta, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	_, readB := a.newKey(t, tb, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	ids := buildFlow(t, a, bearer(writeA))
	base := "/v1/pools/" + ids["pool_id"] + "/"
	for _, c := range []struct {
		path, key, accept string
		code              int
		holds             string
	}{
		{"submissions:export", readA, "text/csv", http.StatusOK, ids["submission_id"]},
		{"submissions:export", readA, "", http.StatusOK, ids["submission_id"]},
		{"tolokers:export", readA, "", http.StatusOK, ids["user_id"]},
		{"sessions:export", writeA, "", http.StatusOK, ids["session_id"]},
		{"sessions:export", readA, "", http.StatusForbidden, "WRITE"},
		{"submissions:export", readB, "text/csv", http.StatusNotFound, ""},
		{"tolokers:export", readB, "", http.StatusNotFound, ""},
		{"submissions:export", "", "text/csv", http.StatusUnauthorized, ""},
	} {
		code, body := a.rest(t, http.MethodGet, base+c.path, "", c.key, "Accept", c.accept)
		if code != c.code || !strings.Contains(body, c.holds) {
			t.Errorf("%s as %q (Accept %q): %d %s, want %d holding %q", c.path, c.key, c.accept, code, body, c.code, c.holds)
		}
		if c.code != http.StatusOK && strings.Contains(body, ids["submission_id"]) {
			t.Errorf("%s refused but holds A's submission: %s", c.path, body)
		}
	}
}
