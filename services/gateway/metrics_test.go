package gateway

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// scrape reads base/metrics in the text format and parses it.
func scrape(t *testing.T, base string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	_, text := get(t, base+"/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return text, mfs
}

// value returns the value of the series of family name whose labels include
// want: a counter's or gauge's value, a histogram's sample count.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// TestRPCMetricsHaveTheConventionalNames: gRPC is measured by
// go-grpc-middleware's Prometheus provider (grpc_server_*, the names gRPC
// dashboards expect), REST calls included, every method's series exist from
// the start, and no exemplar is ever attached.
func TestRPCMetricsHaveTheConventionalNames(t *testing.T) {
	g, _ := startGateway(t, testConfig(t), nil)
	base := "http://" + g.HTTPAddr()
	if code, _ := get(t, base+"/v1/projects/p1"); code != http.StatusNotFound {
		t.Fatalf("GET /v1/projects/p1 = %d, want 404", code)
	}
	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := crowdgatev1.NewPoolServiceClient(conn).GetPool(context.Background(), &crowdgatev1.GetPoolRequest{PoolId: "x"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetPool: %v, want NOT_FOUND", err)
	}

	text, mfs := scrape(t, base)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"grpc_server_handled_total", map[string]string{"grpc_type": "unary", "grpc_service": "crowdgate.v1.ProjectService", "grpc_method": "GetProject", "grpc_code": "NotFound"}, 1},
		{"grpc_server_handled_total", map[string]string{"grpc_type": "unary", "grpc_service": "crowdgate.v1.PoolService", "grpc_method": "GetPool", "grpc_code": "NotFound"}, 1},
		{"grpc_server_started_total", map[string]string{"grpc_service": "crowdgate.v1.PoolService", "grpc_method": "GetPool"}, 1},
		{"grpc_server_handling_seconds", map[string]string{"grpc_service": "crowdgate.v1.PoolService", "grpc_method": "GetPool"}, 1},
		// Series of methods nobody called yet exist, at zero, so rate()
		// and ratios over them work from the first scrape.
		{"grpc_server_handled_total", map[string]string{"grpc_service": "crowdgate.v1.SubmissionService", "grpc_method": "Submit", "grpc_code": "OK"}, 0},
		{"grpc_server_handling_seconds", map[string]string{"grpc_service": "crowdgate.v1.SubmissionService", "grpc_method": "Submit"}, 0},
	} {
		if got, ok := value(mfs, tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if strings.Contains(text, "crowdgate_grpc_") {
		t.Error("/metrics still exports the old crowdgate_grpc_* metrics")
	}

	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	om, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(om), "\n") {
		if !strings.HasPrefix(line, "#") && strings.Contains(line, " # {") {
			t.Errorf("an exemplar in /metrics: %s", line)
		}
	}
}

// TestHTTPMetricsByRoutePatternAndMethod: every HTTP request is timed under
// the pattern of the route that served it (a REST call under its REST
// route, not "/v1/"), its method and status; never a raw path or an id, and
// methods outside HTTP's own set count as _OTHER.
func TestHTTPMetricsByRoutePatternAndMethod(t *testing.T) {
	g, _ := startGateway(t, testConfig(t), nil)
	base := "http://" + g.HTTPAddr()
	do := func(method, path, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	do("GET", "/healthz", "")
	projectCode := do("GET", "/v1/projects/prj-secret-id", "")
	patchCode := do("PATCH", "/v1/pools/pool-secret-id", `{}`)
	replaceCode := do("POST", "/v1/credentials/cred-secret-id:replaceApiKey", `{"api_key":"x"}`)
	do("GET", "/no/such/path/123", "")
	do("GET", "/v1/no/such/thing-secret", "")
	do("BREW", "/healthz", "")

	text, mfs := scrape(t, base)
	const name = "http_server_request_duration_seconds"
	for _, tc := range []struct {
		method, route string
		code          int
		want          float64
	}{
		{"GET", "/healthz", 200, 1},
		{"GET", "/v1/projects/{project_id}", projectCode, 1},
		{"PATCH", "/v1/pools/{pool_id}", patchCode, 1}, // as the OpenAPI document names it
		{"POST", "/v1/credentials/{credential_id}:replaceApiKey", replaceCode, 1},
		{"GET", "unmatched", 404, 2},
	} {
		labels := map[string]string{"http_request_method": tc.method, "http_route": tc.route, "http_response_status_code": itoa(tc.code)}
		if got, ok := value(mfs, name, labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, tc.want)
		}
	}
	if _, ok := value(mfs, name, map[string]string{"http_request_method": "_OTHER"}); !ok {
		t.Errorf("%s has no _OTHER method series for BREW", name)
	}
	for _, leak := range []string{"secret", "/no/such", "BREW"} {
		if strings.Contains(text, leak) {
			t.Errorf("/metrics shows %q from a request", leak)
		}
	}
	if strings.Contains(text, "crowdgate_http_requests_total") {
		t.Error("/metrics still exports crowdgate_http_requests_total (the histogram counts requests)")
	}
	// Every route label is a pattern the gateway serves, or "unmatched".
	var routes []string
	for _, m := range mfs[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "http_route" && !slices.Contains(routes, l.GetValue()) {
				routes = append(routes, l.GetValue())
			}
		}
	}
	for _, r := range routes {
		if r != "unmatched" && !strings.HasPrefix(r, "/") {
			t.Errorf("route label %q is neither a path pattern nor unmatched", r)
		}
	}
}

// TestBuildAndRedisMetrics: the gateway exports its build and its Redis
// client's pool and command metrics.
func TestBuildAndRedisMetrics(t *testing.T) {
	g, _ := startGateway(t, testConfig(t), nil)
	base := "http://" + g.HTTPAddr()
	get(t, base+"/readyz") // a PING
	_, mfs := scrape(t, base)
	if v, ok := value(mfs, "crowdgate_build_info", map[string]string{"version": "dev"}); !ok || v != 1 {
		t.Errorf("crowdgate_build_info{version=dev} = %v (present %v), want 1 in an unstamped test binary", v, ok)
	}
	if v, ok := value(mfs, "crowdgate_redis_command_duration_seconds", map[string]string{"command": "ping"}); !ok || v < 1 {
		t.Errorf("crowdgate_redis_command_duration_seconds{command=ping} = %v (present %v), want at least 1", v, ok)
	}
	if _, ok := mfs["crowdgate_redis_pool_conn_total_current"]; !ok {
		t.Error("no crowdgate_redis_pool_conn_total_current")
	}
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}
