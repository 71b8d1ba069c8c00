package tolokasim

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

// Test accounts and their keys.
const (
	testKey   = "key-acme"
	testAcct  = "acme"
	otherKey  = "key-rival"
	otherAcct = "rival"
)

// fakeClock is an injectable clock that tests move by hand.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)) }

type harness struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	clock *fakeClock
}

// newHarness starts an emulator over real HTTP with a fake clock, two
// accounts, no rate limits and no operation delay, adjusted by mutate.
func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	clock := newFakeClock()
	cfg := Config{
		APIKeys:    map[string]string{testKey: testAcct, otherKey: otherAcct},
		Now:        clock.Now,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		RateLimits: UnlimitedRateLimits(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, ts := NewTestServer(cfg)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return &harness{t: t, srv: srv, ts: ts, clock: clock}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// obj decodes the body as a JSON object.
func (r result) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// fieldCodes returns path -> code of a VALIDATION_ERROR payload.
func (r result) fieldCodes(t *testing.T) map[string]string {
	t.Helper()
	var e struct {
		Code    string                `json:"code"`
		Payload map[string]FieldError `json:"payload"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if r.status != http.StatusBadRequest || e.Code != CodeValidation {
		t.Fatalf("got %d %s, want 400 VALIDATION_ERROR; body %s", r.status, e.Code, r.body)
	}
	out := map[string]string{}
	for k, v := range e.Payload {
		out[k] = v.Code
	}
	return out
}

// code returns the "code" of an error body.
func (r result) code(t *testing.T) string {
	t.Helper()
	c, _ := r.obj(t)["code"].(string)
	return c
}

// do sends a request with key as ApiKey (none when empty). body may be nil,
// a string (sent as is) or any value (sent as JSON); a non-nil body is
// sent with Content-Type application/json.
func (h *harness) do(method, path, key string, body any) result {
	h.t.Helper()
	hdr := map[string]string{}
	if key != "" {
		hdr["Authorization"] = "ApiKey " + key
	}
	var text string
	switch b := body.(type) {
	case nil:
	case string:
		text = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		text = string(j)
	}
	if body != nil {
		hdr["Content-Type"] = "application/json"
	}
	return h.raw(method, path, hdr, text)
}

// raw sends a request with exactly the given headers.
func (h *harness) raw(method, path string, hdr map[string]string, body string) result {
	h.t.Helper()
	res, err := h.send(method, path, hdr, body)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

func (h *harness) send(method, path string, hdr map[string]string, body string) (result, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		return result{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// expect fails unless r has the given status.
func (h *harness) expect(r result, status int) result {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("got status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

func validProject() map[string]any {
	return map[string]any{
		"public_name":        "Label images",
		"public_description": "Draw boxes on the partner platform",
		"task_spec": map[string]any{
			"input_spec":  map[string]any{"url": map[string]any{"type": "url", "required": true}},
			"output_spec": map[string]any{"result": map[string]any{"type": "STRING"}},
		},
		"assignments_issuing_type":        "EXTERNAL",
		"assignments_issuing_view_config": map[string]any{"redirect_url": "https://crowdgate.example/land"},
		"metadata":                        map[string]any{"ptmik_partner_name": []any{"Acme"}},
	}
}

func (h *harness) validPool(projectID string) map[string]any {
	return map[string]any{
		"project_id":                      projectID,
		"private_name":                    "Pool 1",
		"may_contain_adult_content":       false,
		"will_expire":                     h.clock.Now().Add(30 * 24 * time.Hour).Format("2006-01-02T15:04:05"),
		"reward_per_assignment":           json.Number("0.05"),
		"defaults":                        map[string]any{"default_overlap_for_new_task_suites": 1},
		"assignment_max_duration_seconds": 600,
	}
}

func (h *harness) createProject(key string) string {
	h.t.Helper()
	r := h.expect(h.do("POST", "/api/v1/projects", key, validProject()), http.StatusCreated)
	return r.obj(h.t)["id"].(string)
}

func (h *harness) createPool(key, projectID string, edit func(map[string]any)) string {
	h.t.Helper()
	body := h.validPool(projectID)
	if edit != nil {
		edit(body)
	}
	r := h.expect(h.do("POST", "/api/v1/pools", key, body), http.StatusCreated)
	return r.obj(h.t)["id"].(string)
}

// openPool creates a project and an open pool for testKey.
func (h *harness) openPool(edit func(map[string]any)) string {
	h.t.Helper()
	poolID := h.createPool(testKey, h.createProject(testKey), edit)
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/open", testKey, nil), http.StatusAccepted)
	return poolID
}

func (h *harness) startAssignment(poolID, userID string) Assignment {
	h.t.Helper()
	a, err := h.srv.CreateAssignment(poolID, userID)
	if err != nil {
		h.t.Fatalf("CreateAssignment(%s, %s): %v", poolID, userID, err)
	}
	return a
}

func (h *harness) submit(body map[string]any) result {
	h.t.Helper()
	return h.do("POST", "/api/v1/tasks/external/submit", testKey, body)
}
