package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

// A web page on another origin cannot change anything through a "simple"
// request (one a browser sends without asking first: a text/plain body),
// which CORS alone lets through; a page on an origin CROWDGATE_CORS_ORIGINS
// allows can, and so can a client that is not a browser (no Origin).
func TestACrossOriginPageCannotChangeAnything(t *testing.T) {
	const dashboard = "https://dash.example.com"
	env := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) { c.CORS.Origins = []string{dashboard} }})
	body := `{"display_name":"x","environment":"ENVIRONMENT_SANDBOX","api_key":"` + env.NewAPIKey("acme") + `"}`
	credentials := func() int {
		_, out := env.REST(http.MethodGet, "/v1/credentials", "")
		list, _ := out["credentials"].([]any)
		return len(list)
	}
	for _, tc := range []struct {
		name    string
		headers []string
		refused bool
	}{
		{"another origin, Sec-Fetch-Site", []string{"Content-Type", "text/plain", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, true},
		{"another origin, Origin only", []string{"Content-Type", "text/plain", "Origin", "https://evil.example"}, true},
		{"a form from another origin", []string{"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example"}, true},
		{"the allowed dashboard", []string{"Origin", dashboard, "Sec-Fetch-Site", "cross-site"}, false},
		{"a server (no Origin)", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := credentials()
			code, out := env.REST(http.MethodPost, "/v1/credentials", body, tc.headers...)
			created := credentials() - before
			switch {
			case tc.refused && (code != http.StatusForbidden || created != 0):
				t.Errorf("POST: %d %v, %d credentials made; want 403 and none", code, out, created)
			case !tc.refused && (code != http.StatusOK || created != 1):
				t.Errorf("POST: %d %v, %d credentials made; want 200 and one", code, out, created)
			}
		})
	}
	// Reading stays open to every origin's simple GET (CORS decides what
	// the page may read).
	if code, _ := env.REST(http.MethodGet, "/v1/credentials", "", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); code != http.StatusOK {
		t.Errorf("cross-origin GET: %d, want 200", code)
	}
}

// A body is one JSON object: anything after it is refused, not ignored
// (a proxy in front could read the request another way).
func TestABodyWithDataAfterItsObjectIsRefused(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for _, body := range []string{
		`{"display_name":"x","environment":"ENVIRONMENT_SANDBOX","api_key":"k"} this is not json ]]]`,
		`{"display_name":"x","environment":"ENVIRONMENT_SANDBOX","api_key":"k"}{"display_name":"y"}`,
	} {
		code, out := env.REST(http.MethodPost, "/v1/credentials", body)
		if code != http.StatusBadRequest || fieldOf(t, out) != "body" {
			t.Errorf("POST %s: %d %v, want 400 naming body", body, code, out)
		}
	}
	if code, out := env.REST(http.MethodPost, "/v1/credentials", "{\"display_name\":\"x\"} \n\t"); code == http.StatusBadRequest && fieldOf(t, out) == "body" {
		t.Errorf("white space after the object: %d %v, want it accepted as JSON", code, out)
	}
}

// Query parameters are as strict as a body's fields: one that names no
// field is refused naming it (a typo would otherwise list everything), and
// a value that does not parse names its parameter in words.
func TestQueryParametersAreCheckedLikeBodyFields(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for _, tc := range []struct {
		query, field, reason string
	}{
		{"bogus=1", "bogus", "is not a parameter"},
		{"pageSize=1&page_size=2", "", "names the same field"},
		{"page_size=1&page_size=2", "page_size", "must be given once"},
		{"page_size=abc", "page_size", "must be an integer"},
	} {
		code, out := env.REST(http.MethodGet, "/v1/credentials?"+tc.query, "")
		msg, _ := out["message"].(string)
		field := fieldOf(t, out)
		if code != http.StatusBadRequest || (tc.field != "" && field != tc.field) || !strings.Contains(msg, tc.reason) {
			t.Errorf("?%s: %d %v, want 400 naming %q: %q", tc.query, code, out, tc.field, tc.reason)
		}
	}
	if code, out := env.REST(http.MethodGet, "/v1/events?start_time=banana", ""); code != http.StatusBadRequest ||
		fieldOf(t, out) != "start_time" || !strings.Contains(out["message"].(string), "RFC 3339") {
		t.Errorf("?start_time=banana: %d %v, want 400 naming start_time", code, out)
	}
	for _, q := range []string{"page_size=2", "pageSize=2"} {
		if code, out := env.REST(http.MethodGet, "/v1/credentials?"+q, ""); code != http.StatusOK {
			t.Errorf("?%s: %d %v, want 200", q, code, out)
		}
	}
}

// A Get without an id is INVALID_ARGUMENT naming it, not NOT_FOUND.
func TestAGetWithoutAnIDNamesIt(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for path, field := range map[string]string{
		"/v1/credentials/": "credential_id", "/v1/projects/": "project_id", "/v1/pools/": "pool_id",
	} {
		if code, out := env.REST(http.MethodGet, path, ""); code != http.StatusBadRequest || fieldOf(t, out) != field {
			t.Errorf("GET %s: %d %v, want 400 naming %s", path, code, out, field)
		}
	}
}

// HEAD answers as GET without a body, but for an export; 405's Allow says
// so.
func TestHEADAnswersAsGET(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	resp, err := http.Head(env.HTTP + "/v1/credentials")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(b) != 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("HEAD: %d %q, body %q; want 200, JSON, no body", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	// Not an export: it would stream every row to drop them.
	resp, err = http.Head(env.HTTP + "/v1/pools/pool_1/submissions:export")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allow := resp.Header.Get("Allow"); resp.StatusCode != http.StatusMethodNotAllowed || allow != "GET" {
		t.Errorf("HEAD of an export: %d, Allow %q; want 405, GET", resp.StatusCode, allow)
	}
	req, _ := http.NewRequest(http.MethodPut, env.HTTP+"/v1/credentials", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allow := resp.Header.Get("Allow"); resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(allow, "HEAD") {
		t.Errorf("PUT: %d, Allow %q; want 405 allowing HEAD", resp.StatusCode, allow)
	}
}

// A body over the bound is 413, at once when Content-Length says so (a
// client waiting for 100 Continue gets the answer) and when it is chunked.
func TestABodyOverTheBoundIs413(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	big := `{"display_name":"` + strings.Repeat("x", gateway.MaxRequestBytes) + `"}`
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(big)
		if chunked {
			body = io.MultiReader(strings.NewReader(big)) // no length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, env.HTTP+"/v1/credentials", body)
		req.Header.Set("Content-Type", "application/json")
		if !chunked {
			req.Header.Set("Expect", "100-continue")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("chunked %v: %v", chunked, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "must be at most 1 MiB") {
			t.Errorf("chunked %v: %d %s, want 413", chunked, resp.StatusCode, b)
		}
	}
}

// A 401's WWW-Authenticate names the bearer scheme (RFC 6750), not the
// error's text.
func TestA401ChallengesWithTheBearerScheme(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.Access.Auth, c.Access.AdminKey = "keys", strings.Repeat("a", 40)
	}})
	resp, err := http.Get(env.HTTP + "/v1/credentials")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != `Bearer realm="crowdgate"` {
		t.Errorf("GET without a key: %d, WWW-Authenticate %q", resp.StatusCode, got)
	}
}

// rawCodec sends bytes as they are: a client whose messages are broken.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error { return nil }
func (rawCodec) Name() string                                { return "proto" }

var _ encoding.CodecV2 = rawCodec{}

// A gRPC request whose message does not decode (invalid UTF-8 in a string,
// broken wire format) is INVALID_ARGUMENT, not INTERNAL, and the next call
// is served.
func TestAMessageThatDoesNotDecodeIsInvalidArgument(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for name, msg := range map[string][]byte{
		"invalid UTF-8":        append([]byte{0x0a, 4}, 'a', 0xff, 0xfe, 'b'), // credential_id = "a\xff\xfeb"
		"broken wire format":   {0x0a, 0x7f, 'a'},
		"an unknown wire type": {0x0f},
	} {
		err := env.Conn.Invoke(env.Ctx(), "/crowdgate.v1.CredentialService/GetCredential", msg, new([]byte), grpc.ForceCodecV2(rawCodec{}))
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
	_, err := env.Credentials.GetCredential(env.Ctx(), &crowdgatev1.GetCredentialRequest{CredentialId: "cred_none"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("a well-formed call after them: %v, want NOT_FOUND", err)
	}
}
