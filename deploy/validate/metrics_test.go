package validate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// Which metrics exist is decided by scraping a real gateway, not by reading
// the code: a dashboard or an alert is only worth something if the binary
// exports what it queries, with the labels it matches on, and some metrics
// come from libraries (grpc_server_*, the Redis pool) whose names appear
// nowhere in Crowdgate's code. gatewayMetrics starts the gateway the way
// cmd/crowdgate builds it (gatewaytest), runs the flow far enough that
// series created on first use exist (a landing, an exchange, a delivered
// submit, a dead one, a Toloka error, a Redis error, the JWKS), and scrapes
// /metrics once for every test of the package.

// exportedMetrics is one scrape of a gateway's /metrics.
type exportedMetrics struct {
	families map[string]*dto.MetricFamily
	// labels are the label names each family's series carry.
	labels map[string]map[string]bool
}

// external are metrics queried on purpose that the gateway does not
// export: Prometheus makes `up` for every target, and HAProxy's exporter
// (the compose stack's load balancer) the haproxy_* ones.
func external(name string) bool {
	return name == "up" || strings.HasPrefix(name, "haproxy_")
}

// scrapeLabels are the labels Prometheus adds to every series it scrapes.
var scrapeLabels = map[string]bool{"job": true, "instance": true}

var (
	exportedOnce sync.Once
	exported     *exportedMetrics
)

// gatewayMetrics returns what a running gateway exports (started once, by
// the first test that asks).
func gatewayMetrics(t testing.TB) *exportedMetrics {
	exportedOnce.Do(func() { exported = scrapeExercisedGateway(t) })
	if exported == nil {
		t.Fatal("the gateway could not be scraped (see the first test that asked)")
	}
	return exported
}

func scrapeExercisedGateway(t testing.TB) *exportedMetrics {
	t.Helper()
	// An in-process Redis whatever REDIS_URL says: the exercise makes it
	// fail for a moment, so that Redis errors are counted.
	mini := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	env := gatewaytest.Start(t, gatewaytest.Options{Redis: &redistest.Redis{
		Client: client, Prefix: "validate:", URL: "redis://" + mini.Addr(), Mini: mini,
	}})
	ctx := env.Ctx()

	// A key Toloka refuses: a Toloka error with its code.
	if _, err := env.Credentials.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{
		DisplayName: "refused", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: "nobody.knows.this-key",
	}); err == nil {
		t.Fatal("CreateCredential with an unknown key succeeded")
	}
	// A landing (303), the code's exchange, a delivered submit, a dead one.
	pool := env.OpenPool(ctx, env.NewAPIKey("validate"))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(env.HTTP + "/start?assignment_id=" + env.StartAssignment(pool, "toloker-1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("landing = %d %q, want a 303 to the platform", resp.StatusCode, resp.Header.Get("Location"))
	}
	ex, err := env.Sessions.ExchangeCode(ctx, &crowdgatev1.ExchangeCodeRequest{Code: loc.Query().Get("code")})
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	sid := ex.GetSession().GetSessionId()
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sid, Reward: "0.05"}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{400: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sid, Reward: "0.06"}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	env.Sim.ClearFaults()
	if code, _ := env.RESTRaw("GET", "/.well-known/jwks.json", ""); code != http.StatusOK {
		t.Fatalf("JWKS: %d", code)
	}
	// Redis fails for one readiness check.
	mini.SetError("ERR injected by deploy/validate")
	if code, _ := env.RESTRaw("GET", "/readyz", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Redis failing = %d, want 503", code)
	}
	mini.SetError("")
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}

	_, mfs := env.Metrics()
	e := &exportedMetrics{families: mfs, labels: map[string]map[string]bool{}}
	for name, mf := range mfs {
		e.labels[name] = map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				e.labels[name][l.GetName()] = true
			}
		}
	}
	return e
}

// family returns the family a queried name belongs to: itself, or the
// histogram or summary whose _bucket, _sum or _count series it is.
func (e *exportedMetrics) family(name string) (string, *dto.MetricFamily) {
	if mf, ok := e.families[name]; ok {
		return name, mf
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if mf, ok := e.families[base]; ok && (mf.GetType() == dto.MetricType_HISTOGRAM || suffix != "_bucket" && mf.GetType() == dto.MetricType_SUMMARY) {
			return base, mf
		}
	}
	return "", nil
}

// check returns an error for every metric expr selects that the gateway
// does not export, or with a label its series do not carry.
func (e *exportedMetrics) check(expr string) []error {
	var errs []error
	for _, sel := range promqlSelectors(expr) {
		if external(sel.name) {
			continue
		}
		base, mf := e.family(sel.name)
		if mf == nil {
			errs = append(errs, fmt.Errorf("metric %s is not exported by the gateway", sel.name))
			continue
		}
		for _, l := range sel.labels {
			bucket := l == "le" && strings.HasSuffix(sel.name, "_bucket")
			if !e.labels[base][l] && !scrapeLabels[l] && l != "__name__" && !bucket {
				errs = append(errs, fmt.Errorf("metric %s has no label %s", sel.name, l))
			}
		}
	}
	if len(promqlSelectors(expr)) == 0 {
		errs = append(errs, fmt.Errorf("%q selects no metric", expr))
	}
	return errs
}

// selector is a metric a PromQL expression selects, and the label names it
// matches on.
type selector struct {
	name   string
	labels []string
}

// promqlKeywords are PromQL words that are not metric names: operators and
// the aggregations (which may be followed by a by clause before their
// parenthesis).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// groupingKeywords take a parenthesised label list.
var groupingKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

var matcherLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)

// promqlSelectors finds the vector selectors of a PromQL expression (with
// Grafana's $variables): every identifier that is not a function, an
// aggregation, a keyword or part of a label list, string, number, duration
// or range, with the label names of its {matchers}. It is a lexer, not a
// parser, which is enough for the expressions alerts and dashboards hold.
func promqlSelectors(expr string) []selector {
	var out []selector
	s := expr
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	skipString := func(i int) int { // s[i] is a quote; returns the index after the closing one
		q := s[i]
		for i++; i < len(s) && s[i] != q; i++ {
			if s[i] == '\\' && q != '`' {
				i++
			}
		}
		return i + 1
	}
	// block returns the index after the bracket that closes s[i] and the
	// text in between, strings blanked out.
	block := func(i int, open, closing byte) (int, string) {
		var b strings.Builder
		depth := 0
		for i < len(s) {
			switch c := s[i]; {
			case c == '"' || c == '\'' || c == '`':
				j := skipString(i)
				b.WriteString(`""`)
				i = j
				continue
			case c == open:
				depth++
			case c == closing:
				depth--
				if depth == 0 {
					return i + 1, b.String()
				}
			}
			b.WriteByte(s[i])
			i++
		}
		return i, b.String()
	}
	nextNonSpace := func(i int) int {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
		return i
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '[':
			i, _ = block(i, '[', ']')
		case c == '{':
			i, _ = block(i, '{', '}') // a selector by __name__ only: not used here
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				i, _ = block(i, '{', '}')
			}
			for i < len(s) && isIdent(s[i], false) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdent(s[i], false) || s[i] == '.') {
				i++
			}
		case isIdent(c, true):
			start := i
			for i < len(s) && isIdent(s[i], false) {
				i++
			}
			word := s[start:i]
			j := nextNonSpace(i)
			switch {
			case groupingKeywords[word]:
				if j < len(s) && s[j] == '(' {
					i, _ = block(j, '(', ')')
				}
			case promqlKeywords[word]:
			case j < len(s) && s[j] == '(':
				// A function or an aggregation.
			default:
				sel := selector{name: word}
				if j < len(s) && s[j] == '{' {
					var matchers string
					i, matchers = block(j, '{', '}')
					for _, m := range matcherLabel.FindAllStringSubmatch(matchers, -1) {
						sel.labels = append(sel.labels, m[1])
					}
				}
				out = append(out, sel)
			}
		default:
			i++
		}
	}
	return out
}

func TestPromQLSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string // name{label,label}
	}{
		{`up{job="crowdgate"} == 0`, []string{"up{job}"}},
		{`sum(up{job="crowdgate"}) == 0 or absent(up{job="crowdgate"})`, []string{"up{job}", "up{job}"}},
		{`histogram_quantile(0.99, sum by (le, op) (rate(crowdgate_toloka_request_seconds_bucket[$__rate_interval])))`,
			[]string{"crowdgate_toloka_request_seconds_bucket{}"}},
		{`sum(rate(a_total{x=~"5..|429", y!="a{b}"}[5m])) / sum(rate(a_total[5m] offset 1h)) > 0.2`, []string{"a_total{x,y}", "a_total{}"}},
		{`count by (version, commit) (crowdgate_build_info)`, []string{"crowdgate_build_info{}"}},
		{`max(m) by (kind) > bool 1e3 unless on(instance) group_left(kind) n{instance="$instance"}`, []string{"m{}", "n{instance}"}},
		{"sum(x)\n  # a comment naming not_a_metric\n  / sum(y)", []string{"x{}", "y{}"}},
	} {
		var got []string
		for _, s := range promqlSelectors(tc.expr) {
			got = append(got, s.name+"{"+strings.Join(s.labels, ",")+"}")
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("promqlSelectors(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// dashboardFile is the Grafana dashboard the compose stack provisions.
var dashboardFile = filepath.Join(deployDir, "grafana", "dashboards", "crowdgate.json")

// dashboardQuery is one PromQL expression of a dashboard and where it is.
type dashboardQuery struct{ where, expr string }

// dashboardQueries returns every PromQL expression of a dashboard: each
// target of each panel (rows' panels included) and each query variable.
func dashboardQueries(doc map[string]any) ([]dashboardQuery, error) {
	var out []dashboardQuery
	var walk func(panels []any) error
	walk = func(panels []any) error {
		for _, p := range panels {
			panel, ok := p.(map[string]any)
			if !ok {
				return errors.New("a panel is not an object")
			}
			title, _ := panel["title"].(string)
			targets, _ := panel["targets"].([]any)
			for _, tg := range targets {
				target, _ := tg.(map[string]any)
				expr, _ := target["expr"].(string)
				if expr == "" {
					return fmt.Errorf("panel %q has a target without expr", title)
				}
				out = append(out, dashboardQuery{fmt.Sprintf("panel %q", title), expr})
			}
			if inner, ok := panel["panels"].([]any); ok {
				if err := walk(inner); err != nil {
					return err
				}
			}
		}
		return nil
	}
	panels, _ := doc["panels"].([]any)
	if err := walk(panels); err != nil {
		return nil, err
	}
	if tmpl, ok := doc["templating"].(map[string]any); ok {
		vars, _ := tmpl["list"].([]any)
		for _, v := range vars {
			variable, _ := v.(map[string]any)
			if variable["type"] != "query" {
				continue
			}
			q := variable["query"]
			if m, ok := q.(map[string]any); ok {
				q = m["query"]
			}
			expr, _ := q.(string)
			// label_values(metric{...}, label) and friends.
			if i := strings.Index(expr, "("); i >= 0 && strings.HasSuffix(expr, ")") {
				expr = expr[i+1 : len(expr)-1]
				if j := strings.LastIndex(expr, ","); j >= 0 && !strings.Contains(expr[j:], "}") {
					expr = expr[:j]
				}
			}
			out = append(out, dashboardQuery{fmt.Sprintf("variable %v", variable["name"]), expr})
		}
	}
	return out, nil
}

func loadDashboard(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return doc
}

// TestDashboardQueriesNameExportedMetrics: every query of the Grafana
// dashboard selects metrics a running gateway exports (or Prometheus's up,
// HAProxy's), with labels their series carry.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	doc := loadDashboard(t)
	queries, err := dashboardQueries(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 20 {
		t.Fatalf("the dashboard has %d queries; it should have the on-call panels", len(queries))
	}
	m := gatewayMetrics(t)
	for _, q := range queries {
		for _, err := range m.check(q.expr) {
			t.Errorf("%s: %v (query %s)", q.where, err, q.expr)
		}
	}
}

// TestDashboardIsWellFormed: the dashboard Grafana provisions has a stable
// uid, unique panel ids, titled panels, and queries the data source its
// variable names (so the JSON imports into another Grafana).
func TestDashboardIsWellFormed(t *testing.T) {
	doc := loadDashboard(t)
	if doc["uid"] != "crowdgate-overview" || doc["title"] == "" {
		t.Errorf("uid %v, title %v: want a stable uid crowdgate-overview and a title", doc["uid"], doc["title"])
	}
	ids := map[float64]bool{}
	var walk func([]any)
	walk = func(panels []any) {
		for _, p := range panels {
			panel := p.(map[string]any)
			id, _ := panel["id"].(float64)
			if ids[id] {
				t.Errorf("panel id %v repeated", id)
			}
			ids[id] = true
			if title, _ := panel["title"].(string); title == "" {
				t.Errorf("panel %v has no title", id)
			}
			if panel["type"] != "row" {
				ds, _ := panel["datasource"].(map[string]any)
				if ds["uid"] != "${datasource}" || ds["type"] != "prometheus" {
					t.Errorf("panel %q queries data source %v, want the ${datasource} variable", panel["title"], ds)
				}
				if d, _ := panel["description"].(string); d == "" {
					t.Errorf("panel %q has no description (what it shows, and its alert or runbook)", panel["title"])
				}
			}
			if inner, ok := panel["panels"].([]any); ok {
				walk(inner)
			}
		}
	}
	walk(doc["panels"].([]any))
}

// TestMetricChecksCatchBreakage: a query of a metric the gateway does not
// export, or on a label it does not carry, is reported.
func TestMetricChecksCatchBreakage(t *testing.T) {
	m := gatewayMetrics(t)
	for _, tc := range []struct{ expr, want string }{
		{`sum(rate(crowdgate_grpc_handled_total[5m]))`, "metric crowdgate_grpc_handled_total is not exported"},
		{`sum by (outcome) (rate(crowdgate_landings_total{result="redirect"}[5m]))`, "has no label result"},
		{`histogram_quantile(0.99, rate(crowdgate_landings_total_bucket[5m]))`, "crowdgate_landings_total_bucket is not exported"},
		{`sum(rate(crowdgate_toloka_errors_total{code="DOES_NOT_EXIST"}[5m]))`, ""},
		{`haproxy_backend_active_servers{proxy="gateway_http"} < 2`, ""},
	} {
		var got []string
		for _, err := range m.check(tc.expr) {
			got = append(got, err.Error())
		}
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("check(%s) = %v, want no error", tc.expr, got)
		case tc.want != "" && !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, tc.want) }):
			t.Errorf("check(%s) = %v, want an error containing %q", tc.expr, got, tc.want)
		}
	}
}
