package tolokasim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const submitPath = "/api/v1/tasks/external/submit"

func TestLostResponseRecordsButDoesNotAnswer(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	h.startAssignment(poolID, "u1")
	if err := h.srv.SetFaults(Faults{PathPrefix: submitPath, LostResponseRate: 1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	body := string(mustJSON(map[string]any{"pool_id": poolID, "user_id": "u1", "retry_id": "r-lost", "reward": json.Number("2.5")}))
	hdr := map[string]string{"Authorization": "ApiKey " + testKey, "Content-Type": "application/json"}
	if res, err := h.send("POST", submitPath, hdr, body); err == nil {
		t.Fatalf("client got an answer %d %s, want a dropped connection", res.status, res.body)
	}
	rep := h.srv.Ledger(LedgerFilter{})
	if rep.Count != 1 || rep.RewardTotal.String() != "2.5" {
		t.Fatalf("ledger count %d total %s, want the submit recorded once", rep.Count, rep.RewardTotal)
	}
	recs := h.srv.Requests(submitPath)
	if len(recs) != 1 || recs[0].Fault != "lost_response" || recs[0].Status != 0 {
		t.Errorf("request log = %+v, want one lost_response with status 0", recs)
	}
	// Other paths are unaffected.
	h.expect(h.do("GET", "/api/v1/pools/"+poolID, testKey, nil), http.StatusOK)

	// The client's retry with the same retry_id is answered, not paid twice.
	h.srv.ClearFaults()
	res := h.expect(h.raw("POST", submitPath, hdr, body), http.StatusOK)
	if !strings.Contains(string(res.body), `"restriction_match":false`) {
		t.Errorf("retry answer %s", res.body)
	}
	rep = h.srv.Ledger(LedgerFilter{})
	if rep.Count != 1 || rep.DuplicatesRefused != 1 {
		t.Errorf("after retry: count %d duplicates %d, want 1 1", rep.Count, rep.DuplicatesRefused)
	}
}

func TestDropDoesNotProcess(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	h.startAssignment(poolID, "u1")
	h.expect(h.do("POST", "/_admin/faults", "", map[string]any{"drop_rate": 1, "path_prefix": submitPath}), http.StatusOK)
	body := string(mustJSON(map[string]any{"pool_id": poolID, "user_id": "u1", "reward": json.Number("1")}))
	if _, err := h.send("POST", submitPath, map[string]string{"Authorization": "ApiKey " + testKey, "Content-Type": "application/json"}, body); err == nil {
		t.Fatal("client got an answer, want a dropped connection")
	}
	if n := h.srv.Ledger(LedgerFilter{}).Count; n != 0 {
		t.Errorf("dropped submit was recorded (%d entries)", n)
	}
}

func TestThrottleAndFailNext(t *testing.T) {
	h := newHarness(t, nil)
	h.expect(h.do("POST", "/_admin/faults", "", map[string]any{"throttle_next": 1, "retry_after_seconds": 7, "throttle_interval": "HOUR"}), http.StatusOK)
	r := h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusTooManyRequests)
	if got := r.header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After = %q, want 7", got)
	}
	body := r.obj(t)
	if diff := cmp.Diff(map[string]any{"interval": "HOUR"}, body["payload"]); diff != "" || body["code"] != CodeTooManyRequests {
		t.Errorf("429 body %s", r.body)
	}
	h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusOK)

	h.expect(h.do("POST", "/_admin/faults", "", map[string]any{"fail_next": 2}), http.StatusOK)
	for i := range 2 {
		r := h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusServiceUnavailable)
		if got := r.code(t); got != CodeRemoteServiceUnavailable {
			t.Errorf("request %d: code %q", i, got)
		}
	}
	left := h.expect(h.do("GET", "/_admin/faults", "", nil), http.StatusOK).obj(t)
	if left["fail_next"] != float64(0) {
		t.Errorf("fail_next left = %v, want 0", left["fail_next"])
	}
	h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusOK)

	// Injected faults come before authentication, like a proxy's.
	h.expect(h.do("POST", "/_admin/faults", "", map[string]any{"fail_next": 1}), http.StatusOK)
	h.expect(h.do("GET", "/api/v1/projects", "", nil), http.StatusServiceUnavailable)

	// Admin paths are never faulted.
	h.expect(h.do("POST", "/_admin/faults", "", map[string]any{"fail_next": 5}), http.StatusOK)
	h.expect(h.do("GET", "/_admin/healthz", "", nil), http.StatusOK)
	h.expect(h.do("DELETE", "/_admin/faults", "", nil), http.StatusNoContent)
	h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusOK)
}

func TestErrorRatesAreReproducible(t *testing.T) {
	statuses := func(seed uint64) []int {
		h := newHarness(t, func(c *Config) {
			c.Faults = Faults{ErrorRates: map[int]float64{500: 0.3, 502: 0.2}, Seed: seed}
		})
		var out []int
		for range 30 {
			r := h.do("GET", "/api/v1/projects", testKey, nil)
			out = append(out, r.status)
			if r.status == http.StatusBadGateway && !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Errorf("502 content type %q, want an HTML page", r.header.Get("Content-Type"))
			}
		}
		return out
	}
	a, b := statuses(7), statuses(7)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different faults (-first +second):\n%s", diff)
	}
	seen := map[int]int{}
	for _, s := range a {
		seen[s]++
	}
	if seen[200] == 0 || seen[500] == 0 || seen[502] == 0 {
		t.Errorf("statuses %v: want a mix of 200, 500 and 502", seen)
	}
	if diff := cmp.Diff(a, statuses(8)); diff == "" {
		t.Error("another seed gave the same 30 statuses")
	}
}

func TestTimeoutHangsUntilClientGivesUp(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	h.startAssignment(poolID, "u1")
	if err := h.srv.SetFaults(Faults{PathPrefix: submitPath, TimeoutRate: 1}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest("POST", h.ts.URL+submitPath, strings.NewReader(string(mustJSON(
		map[string]any{"pool_id": poolID, "user_id": "u1", "reward": json.Number("1")}))))
	req.Header.Set("Authorization", "ApiKey "+testKey)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want a client timeout", resp.StatusCode)
	}
	if n := h.srv.Ledger(LedgerFilter{}).Count; n != 0 {
		t.Errorf("hung submit was recorded (%d entries)", n)
	}
}

func TestInvalidFaults(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		name string
		body string
	}{
		{"rate above 1", `{"drop_rate": 1.5}`},
		{"rates add above 1", `{"drop_rate": 0.6, "lost_response_rate": 0.6}`},
		{"status out of range", `{"error_rates": {"200": 0.1}}`},
		{"unknown field", `{"drop_rat": 0.1}`},
		{"bad interval", `{"throttle_next": 1, "throttle_interval": "WEEK"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.expect(h.do("POST", "/_admin/faults", "", tc.body), http.StatusBadRequest)
		})
	}
}

func TestRateLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.RateLimits = RateLimits{
			RequestsPerSecond:      -1,
			CreateProjectPerMinute: 3,
			CreateProjectPerDay:    5,
			CreatePoolPerMinute:    -1,
			CreatePoolPerDay:       -1,
		}
	})
	create := func() result { return h.do("POST", "/api/v1/projects", testKey, validProject()) }
	check429 := func(r result, interval, retryAfter string) {
		t.Helper()
		h.expect(r, http.StatusTooManyRequests)
		if got := r.header.Get("Retry-After"); got != retryAfter {
			t.Errorf("Retry-After = %q, want %q", got, retryAfter)
		}
		if diff := cmp.Diff(map[string]any{"interval": interval}, r.obj(t)["payload"]); diff != "" {
			t.Errorf("payload (-want +got):\n%s", diff)
		}
	}
	for range 3 {
		h.expect(create(), http.StatusCreated)
	}
	check429(create(), "MIN", "60")
	h.clock.Advance(30 * time.Second)
	check429(create(), "MIN", "30")
	// Another account has its own quota.
	h.expect(h.do("POST", "/api/v1/projects", otherKey, validProject()), http.StatusCreated)
	h.clock.Advance(30 * time.Second)
	h.expect(create(), http.StatusCreated) // 4 today
	h.expect(create(), http.StatusCreated) // 5 today
	check429(create(), "DAY", "86340")     // first of the day leaves in 24h - 60s
	h.clock.Advance(86340 * time.Second)
	h.expect(create(), http.StatusCreated)
	// Other methods are not counted against creation quotas.
	h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusOK)
}

func TestDocumentedRateLimitDefaults(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RateLimits = RateLimits{} })
	projectID := h.createProject(testKey)
	for range 19 {
		h.createProject(testKey)
	}
	r := h.expect(h.do("POST", "/api/v1/projects", testKey, validProject()), http.StatusTooManyRequests)
	if got := r.obj(t)["payload"]; !cmp.Equal(got, map[string]any{"interval": "MIN"}) {
		t.Errorf("payload %v", got)
	}
	for range 20 {
		h.createPool(testKey, projectID, nil)
	}
	h.expect(h.do("POST", "/api/v1/pools", testKey, h.validPool(projectID)), http.StatusTooManyRequests)
}

func TestRequestsPerSecond(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RateLimits = RateLimits{RequestsPerSecond: 5} })
	for range 5 {
		h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusOK)
	}
	r := h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusTooManyRequests)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", r.header.Get("Retry-After"))
	}
	h.expect(h.do("GET", "/api/v1/projects", otherKey, nil), http.StatusOK)
	h.clock.Advance(time.Second)
	h.expect(h.do("GET", "/api/v1/projects", testKey, nil), http.StatusOK)
}

func TestReset(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	h.startAssignment(poolID, "u")
	h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": "u", "reward": json.Number("1")}), http.StatusOK)
	h.expect(h.do("POST", "/_admin/api-keys", "", map[string]any{"key": "added-key", "account": "newco"}), http.StatusCreated)
	h.expect(h.do("POST", "/_admin/reset", "", nil), http.StatusNoContent)

	h.expect(h.do("GET", "/api/v1/pools/"+poolID, testKey, nil), http.StatusNotFound)
	if n := h.srv.Ledger(LedgerFilter{}).Count; n != 0 {
		t.Errorf("ledger has %d entries after reset", n)
	}
	if n := len(h.srv.Requests("/api/v1/pools/")); n != 1 {
		t.Errorf("request log has %d pool requests after reset, want only the one after it", n)
	}
	// Keys stay, ids keep increasing.
	newID := h.createProject("added-key")
	if a, b := mustUint(t, newID), mustUint(t, poolID); a <= b {
		t.Errorf("id after reset %d, want more than %d", a, b)
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	id, ok := parseID(s)
	if !ok {
		t.Fatalf("id %q is not numeric", s)
	}
	return id
}
