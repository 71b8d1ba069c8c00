package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// The fuzz targets drive the gateway's own HTTP handler in-process (REST
// still reaches the handlers through the gRPC server over loopback, as in
// production), or (FuzzGRPC) its gRPC server over loopback, with
// authentication on and the bootstrap admin key, so every decoded request
// reaches its handler. Seeds are below and in testdata/fuzz/<target>/;
// `go test` runs them as ordinary tests. A short fuzzing run (count-based,
// as CI runs them):
//
//	go test -run='^$' -fuzz='^FuzzREST$' -fuzztime=2000x ./services/gateway
//	go test -run='^$' -fuzz='^FuzzLanding$' -fuzztime=10000x ./services/gateway
//	go test -run='^$' -fuzz='^FuzzGRPC$' -fuzztime=2000x ./services/gateway

// checkNoServerError fails on a 5xx answer or a panic logged by a
// handler's recovery (gRPC handlers' and the landing's).
func checkNoServerError(t *testing.T, a *accessGateway, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: %d %.300s", what, rec.Code, rec.Body.String())
	}
	if strings.Contains(a.logs.String(), "panic") {
		t.Fatalf("%s: a handler panicked:\n%s", what, a.logs.String())
	}
}

// FuzzREST posts arbitrary bodies (and path parameters) to every REST
// route that takes a body: a bad request is a 4xx, never a 5xx or a panic.
func FuzzREST(f *testing.F) {
	a := startAccessGateway(f, nil)
	var routes [][3]string
	for _, r := range restRoutes(f) {
		if r[0] != http.MethodGet {
			routes = append(routes, r)
		}
	}
	// Ids of real records, so fuzzed requests also reach existing ones.
	flow := buildFlow(f, a, bearer(testAdminKey))
	for i := range routes {
		f.Add(uint8(i), "x1", []byte(`{}`))
	}
	for _, seed := range []struct {
		path string
		body string
	}{
		{"/v1/credentials", `{"display_name": "k", "environment": "ENVIRONMENT_SANDBOX", "api_key": "` + testTolokaKey + `"}`},
		{"/v1/projects", `{"credential_id": "` + flow["credential_id"] + `", "public_name": "p", "public_description": "d", "platform_url": "https://p.example.com", "partner_name": "P", "partner_url": "https://p.example.com"}`},
		{"/v1/pools", `{"project_id": "` + flow["project_id"] + `", "private_name": "p", "reward_per_assignment": "0.05", "assignment_max_duration_seconds": 600, "will_expire": "` + time.Now().AddDate(0, 1, 0).UTC().Format(time.RFC3339) + `", "defaults": {"default_overlap_for_new_task_suites": 1}}`},
		{"/v1/submissions", `{"session_id": "` + flow["session_id"] + `", "reward": "0.01", "quality": "0.5", "custom_log": "{\"a\": 1}"}`},
		{"/v1/submissions", `{"pool_id": "` + flow["pool_id"] + `", "user_id": "toloker-1", "reward": "1e400", "start_time": "2024-13-01T00:00:00Z"}`},
		{"/v1/sessions:exchange", `{"code": "` + flow["code"] + `"}`},
		{"/v1/sessions", `{"assignment_id": "` + flow["assignment_id"] + `"}`},
		{"/v1/tenants", `{"display_name": "\u0000\ud800"}`},
	} {
		for i, r := range routes {
			if r[1] == seed.path {
				f.Add(uint8(i), "x1", []byte(seed.body))
			}
		}
	}
	for i, r := range routes {
		if strings.Contains(r[1], "x1") {
			for _, id := range []string{flow["pool_id"], flow["session_id"], flow["submission_id"], flow["project_id"], flow["assignment_id"], "%2F..%2F", "{x}"} {
				f.Add(uint8(i), id, []byte(`{}`))
			}
		}
	}
	h := a.g.httpServer.Handler
	f.Fuzz(func(t *testing.T, route uint8, id string, body []byte) {
		r := routes[int(route)%len(routes)]
		path := strings.ReplaceAll(r[1], "x1", url.PathEscape(id))
		req, err := http.NewRequest(r[0], "http://crowdgate.test"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkNoServerError(t, a, r[0]+" "+path, rec)
	})
}

// FuzzLanding sends arbitrary query strings to GET /start, the page a
// Toloker lands on: any answer but a 5xx or a panic.
func FuzzLanding(f *testing.F) {
	a := startAccessGateway(f, nil)
	flow := buildFlow(f, a, bearer(testAdminKey))
	for _, q := range []string{
		"", "assignment_id=", "assignment_id=" + flow["assignment_id"],
		"assignment_id=" + flow["assignment_id"] + "&assignment_id=x",
		"assignment_id=0000000001--000000000000000000000001",
		"assignment_id=00000000zz--000000000000000000000001",
		"assignment_id=%00%ff%fe", "assignment_id=%zz", "assignment_id=" + strings.Repeat("0", 4096),
		"assignment_id=" + url.QueryEscape("{crowdgate}--:*"), ";;&&==", "assignment_id=a;b",
		"task_id=1&pool_id=2&assignment_id=0000000001--000000000000000000000001&return_url=http://evil.example.com",
	} {
		f.Add(q)
	}
	h := a.g.httpServer.Handler
	var n atomic.Uint32
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, LandingPath, nil)
		req.URL.RawQuery = query
		// Spread the calls over client addresses so the per-IP limit
		// does not answer them all.
		i := n.Add(1)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4321", byte(i>>16), byte(i>>8), byte(i))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkNoServerError(t, a, "GET /start?"+query, rec)
		if loc := rec.Header().Get("Location"); loc != "" && !strings.HasPrefix(loc, "https://label.example.com/start") {
			t.Fatalf("GET /start?%s redirects to %q, not the project's platform", query, loc)
		}
	})
}

// grpcCodes are the gRPC codes a Crowdgate RPC may answer, whatever the
// request: what serviceerror.ToStatus makes of its domain errors, and the
// gRPC library's own refusals of a message it cannot take. Anything else is
// a bug: INTERNAL is a panic (the recovery interceptor's answer) or an
// error no domain type describes (its text hidden from the caller), UNKNOWN
// an error that bypassed ToStatus.
var grpcCodes = map[codes.Code]string{
	codes.OK:                 "",
	codes.InvalidArgument:    "bad input, naming the field",
	codes.NotFound:           "no such record (or another tenant's)",
	codes.AlreadyExists:      "a record with that identity exists",
	codes.FailedPrecondition: "the state forbids it, or Toloka refused the credential or the call",
	codes.PermissionDenied:   "the caller may not do this",
	codes.Unauthenticated:    "no valid credentials",
	codes.ResourceExhausted:  "a rate limit or quota (Crowdgate's, or Toloka's 429)",
	codes.Unavailable:        "Redis or Toloka unreachable or failing",
	codes.DeadlineExceeded:   "a Toloka call or the client's deadline ran out",
}

// FuzzGRPC decodes each input into the request of every RPC of the API
// (proto.Unmarshal; an RPC whose request the bytes do not decode into is
// skipped) and calls it over gRPC on the real gateway, authenticated with
// the admin key: whatever the request, the answer is one of grpcCodes
// (never INTERNAL: a handler panicked) and no handler panics. Seeds: a
// valid request per RPC, on the records of a whole flow.
func FuzzGRPC(f *testing.F) {
	a := startAccessGateway(f, nil)
	admin := bearer(testAdminKey)
	mds := apiMethods(f)
	flow := buildFlow(f, a, admin)
	tnt, err := a.accessClient().CreateTenant(admin, &crowdgatev1.CreateTenantRequest{DisplayName: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	key, err := a.accessClient().CreateApiKey(admin, &crowdgatev1.CreateApiKeyRequest{
		TenantId: tnt.GetTenant().GetTenantId(), DisplayName: "fuzz", Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ,
	})
	if err != nil {
		f.Fatal(err)
	}
	values := map[protoreflect.Name]string{
		"tenant_id": tnt.GetTenant().GetTenantId(), "api_key_id": key.GetApiKey().GetApiKeyId(), "api_key": testTolokaKey,
		"display_name": "fuzz", "public_comment": "Thanks", "reward": "0.01", "quality": "0.5",
	}
	for name, id := range flow {
		values[name] = id
	}
	// EndSession's seed ends a session of its own, so the flow's session
	// stays live for the other seeds (Submit).
	pool, err := crowdgatev1.NewPoolServiceClient(a.conn).GetPool(admin, &crowdgatev1.GetPoolRequest{PoolId: flow["pool_id"]})
	if err != nil {
		f.Fatal(err)
	}
	asg, err := a.sim.CreateAssignment(pool.GetPool().GetTolokaPoolId(), "toloker-2")
	if err != nil {
		f.Fatal(err)
	}
	other, err := crowdgatev1.NewSessionServiceClient(a.conn).StartSession(admin, &crowdgatev1.StartSessionRequest{AssignmentId: asg.ID})
	if err != nil {
		f.Fatal(err)
	}
	for _, md := range mds {
		seed := validRequest(f, md, values)
		if r, ok := seed.(*crowdgatev1.EndSessionRequest); ok {
			r.SessionId = other.GetSession().GetSessionId()
		}
		b, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, md := range mds {
			req := newRequest(t, md.Input())
			if err := proto.Unmarshal(data, req.Interface()); err != nil {
				continue // not a request of md a gRPC client can send
			}
			resp := newRequest(t, md.Output()).Interface()
			ctx, cancel := context.WithTimeout(admin, 30*time.Second)
			err := invokeAny(ctx, a.conn, md, req.Interface(), resp)
			cancel()
			if _, ok := grpcCodes[status.Code(err)]; !ok {
				t.Fatalf("%s(%s) answered %v: not a documented code\n%s", fullMethod(md), shortText(req.Interface()), err, lastLines(a.logs.String(), 20))
			}
			if strings.Contains(a.logs.String(), "panic") {
				t.Fatalf("%s(%s): a handler panicked:\n%s", fullMethod(md), shortText(req.Interface()), a.logs.String())
			}
		}
	})
}

// apiMethods is every RPC of the API (methods, for a testing.TB).
func apiMethods(tb testing.TB) []protoreflect.MethodDescriptor {
	tb.Helper()
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("crowdgate.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			for j := range fd.Services().Get(i).Methods().Len() {
				out = append(out, fd.Services().Get(i).Methods().Get(j))
			}
		}
		return true
	})
	if len(out) < 30 {
		tb.Fatalf("found %d RPCs, want them all", len(out))
	}
	sort.Slice(out, func(i, j int) bool { return fullMethod(out[i]) < fullMethod(out[j]) })
	return out
}

func newRequest(tb testing.TB, d protoreflect.MessageDescriptor) protoreflect.Message {
	tb.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
	if err != nil {
		tb.Fatal(err)
	}
	return mt.New()
}

// validRequest is a request of md that passes validation on the flow's
// records: its top-level string fields set from values by name, and the
// resources of the create and update calls.
func validRequest(tb testing.TB, md protoreflect.MethodDescriptor, values map[protoreflect.Name]string) proto.Message {
	req := newRequest(tb, md.Input())
	fields := req.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if v, ok := values[fd.Name()]; ok && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			req.Set(fd, protoreflect.ValueOfString(v))
		}
	}
	month := timestamppb.New(time.Now().AddDate(0, 1, 0))
	pool := &crowdgatev1.Pool{
		ProjectId: values["project_id"], PrivateName: "fuzz", WillExpire: month, RewardPerAssignment: "0.05",
		AssignmentMaxDurationSeconds: 600, Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1},
	}
	switch r := req.Interface().(type) {
	case *crowdgatev1.CreateCredentialRequest:
		r.Environment = crowdgatev1.Environment_ENVIRONMENT_SANDBOX
	case *crowdgatev1.CreateApiKeyRequest:
		r.Scope = crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE
	case *crowdgatev1.CreateProjectRequest:
		r.Project = &crowdgatev1.Project{
			CredentialId: values["credential_id"], PublicName: "Signs", PublicDescription: "Draw boxes",
			PlatformUrl: "https://label.example.com/start", PartnerName: "Acme", PartnerUrl: "https://label.example.com",
			BonusPriceMin: "0.5", BonusPriceMax: "2",
		}
	case *crowdgatev1.CreatePoolRequest:
		r.Pool = pool
	case *crowdgatev1.UpdatePoolRequest:
		pool.PoolId, pool.PrivateName = values["pool_id"], "renamed"
		r.Pool, r.UpdateMask = pool, &fieldmaskpb.FieldMask{Paths: []string{"private_name"}}
	case *crowdgatev1.SubmitRequest:
		r.StartTime, r.EndTime = timestamppb.New(time.Now().Add(-time.Minute)), timestamppb.Now()
	case *crowdgatev1.EndSessionRequest:
		r.Reason = crowdgatev1.EndReason_END_REASON_ENDED
	case *crowdgatev1.ListSubmissionsRequest:
		r.UserId, r.CreateTimeFrom, r.PageSize = "toloker-1", timestamppb.New(time.Now().Add(-time.Hour)), 10
	}
	return req.Interface()
}

// shortText is m in text form, cut for an error message.
func shortText(m proto.Message) string {
	s := prototext.MarshalOptions{}.Format(m)
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
