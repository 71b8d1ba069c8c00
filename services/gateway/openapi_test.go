package gateway

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// openAPIOperation is what the tests read of an operation.
type openAPIOperation struct {
	OperationID string            `json:"operationId"`
	Summary     string            `json:"summary"`
	Description string            `json:"description"`
	Tags        []string          `json:"tags"`
	Security    *[]map[string]any `json:"security"`
	Parameters  []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
	Responses map[string]struct {
		Schema struct {
			Ref string `json:"$ref"`
		} `json:"schema"`
	} `json:"responses"`
}

type openAPIDoc struct {
	Swagger string `json:"swagger"`
	Info    struct {
		Title, Version, Description string
	} `json:"info"`
	Host                string                                  `json:"host"`
	Schemes             []string                                `json:"schemes"`
	SecurityDefinitions map[string]map[string]string            `json:"securityDefinitions"`
	Security            []map[string][]string                   `json:"security"`
	Tags                []struct{ Name, Description string }    `json:"tags"`
	Paths               map[string]map[string]*openAPIOperation `json:"paths"`
}

func servedOpenAPI(t *testing.T, base string) openAPIDoc {
	t.Helper()
	code, body := get(t, base+"/openapi.json")
	if code != http.StatusOK {
		t.Fatalf("GET /openapi.json = %d", code)
	}
	var doc openAPIDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// operationsRoutes are the routes served beside the REST API.
var operationsRoutes = []string{"/start", "/.well-known/jwks.json", "/healthz", "/readyz", "/metrics", "/openapi.json"}

// TestOpenAPIDocumentTellsToolsWhatTheyNeed: the served document has the
// API's real title, version and description, the Bearer keys as a security
// definition required by every REST call, the errors each call can give as
// rpcStatus, a summary and a description on every operation, {pool_id} in
// every pool route, and the public routes (landing, JWKS, health, metrics)
// described without authentication, on the host of the public URL.
func TestOpenAPIDocumentTellsToolsWhatTheyNeed(t *testing.T) {
	cfg := testConfig(t)
	cfg.PublicURL = "https://crowdgate.example.com"
	g, _ := startGateway(t, cfg, nil)
	doc := servedOpenAPI(t, "http://"+g.HTTPAddr())

	if doc.Swagger != "2.0" || doc.Info.Title != "Crowdgate API" || doc.Info.Version != "v1" || len(doc.Info.Description) < 200 {
		t.Errorf("swagger %q, info %q %q (description %d bytes): want 2.0, Crowdgate API, v1 and a description",
			doc.Swagger, doc.Info.Title, doc.Info.Version, len(doc.Info.Description))
	}
	if doc.Host != "crowdgate.example.com" || !slices.Equal(doc.Schemes, []string{"https"}) {
		t.Errorf("host %q, schemes %v: want the public URL's", doc.Host, doc.Schemes)
	}
	if b := doc.SecurityDefinitions["Bearer"]; b["type"] != "apiKey" || b["in"] != "header" || b["name"] != "Authorization" {
		t.Errorf("securityDefinitions.Bearer = %v, want an apiKey in the Authorization header", b)
	}
	if len(doc.Security) != 1 || doc.Security[0]["Bearer"] == nil {
		t.Errorf("security = %v, want Bearer required by default", doc.Security)
	}
	tags := map[string]bool{}
	for _, tg := range doc.Tags {
		tags[tg.Name] = true
	}

	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		for method, op := range doc.Paths[path] {
			where := strings.ToUpper(method) + " " + path
			if op.Summary == "" || op.Description == "" || op.OperationID == "" {
				t.Errorf("%s: summary %q, description %q, operationId %q: want all three", where, op.Summary, op.Description, op.OperationID)
			}
			if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %s repeats %s's", where, op.OperationID, other)
			}
			ids[op.OperationID] = where
			for _, tg := range op.Tags {
				if !tags[tg] {
					t.Errorf("%s: tag %q is not in the document's tags", where, tg)
				}
			}
			var inPath []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					inPath = append(inPath, p.Name)
				}
			}
			var want []string
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				want = append(want, m[1])
				if strings.Contains(m[1], ".") {
					t.Errorf("%s: path parameter {%s}: name it as the other routes do", where, m[1])
				}
			}
			sort.Strings(inPath)
			sort.Strings(want)
			if !slices.Equal(inPath, want) {
				t.Errorf("%s: path parameters %v, want %v", where, inPath, want)
			}
			if slices.Contains(operationsRoutes, path) {
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s: a public route must say security: []", where)
				}
				continue
			}
			codes := []string{"200", "400", "401", "403", "503", "default"}
			if len(want) > 0 {
				codes = append(codes, "404")
			}
			for _, c := range codes {
				r, ok := op.Responses[c]
				switch {
				case !ok:
					t.Errorf("%s: no %s response", where, c)
				case c != "200" && r.Schema.Ref != "#/definitions/rpcStatus":
					t.Errorf("%s: response %s is %q, want rpcStatus", where, c, r.Schema.Ref)
				}
			}
		}
	}
	for _, route := range operationsRoutes {
		if doc.Paths[route]["get"] == nil {
			t.Errorf("GET %s is not described", route)
		}
	}
	if doc.Paths["/v1/pools/{pool_id}"]["patch"] == nil {
		t.Error("PATCH /v1/pools/{pool_id} (UpdatePool) is not described")
	}
}

// TestEveryDocumentedRouteIsServed: each REST operation of the document,
// called with made-up ids, reaches the REST route it documents (the HTTP
// metrics name the route that served it), so a documented path such as
// PATCH /v1/pools/{pool_id} is one the gateway really serves.
func TestEveryDocumentedRouteIsServed(t *testing.T) {
	g, _ := startGateway(t, testConfig(t), nil)
	base := "http://" + g.HTTPAddr()
	doc := servedOpenAPI(t, base)
	pathParam := regexp.MustCompile(`\{[^}]+\}`)
	want := map[string]bool{}
	for path, ops := range doc.Paths {
		if slices.Contains(operationsRoutes, path) {
			continue
		}
		for method := range ops {
			method = strings.ToUpper(method)
			req, err := http.NewRequest(method, base+pathParam.ReplaceAllString(path, "made-up"), strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want[method+" "+path] = true
		}
	}
	_, mfs := scrape(t, base)
	got := map[string]bool{}
	for _, m := range mfs["http_server_request_duration_seconds"].GetMetric() {
		var method, route string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "http_request_method":
				method = l.GetValue()
			case "http_route":
				route = l.GetValue()
			}
		}
		got[method+" "+route] = true
	}
	for op := range want {
		if !got[op] {
			t.Errorf("%s is documented, but no request reached that route", op)
		}
	}
	if got["GET unmatched"] || got["POST unmatched"] || got["PATCH unmatched"] || got["DELETE unmatched"] {
		t.Errorf("a documented operation reached no route: %v", got)
	}
}
