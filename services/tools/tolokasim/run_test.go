package tolokasim

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// addrHandler is a slog.Handler that reports the "addr" attribute of the
// listening line.
type addrHandler struct {
	addrs chan string
}

func (h addrHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h addrHandler) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "addr" {
			h.addrs <- a.Value.String()
		}
		return true
	})
	return nil
}

func (h addrHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h addrHandler) WithGroup(string) slog.Handler      { return h }

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Addr:    "127.0.0.1:0",
			APIKeys: map[string]string{testKey: testAcct},
			Logger:  slog.New(addrHandler{addrs}),
		})
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening log line")
	}
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("logged addr %q is not the real port", addr)
	}

	resp, err := http.Get("http://" + addr + "/_admin/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/projects", nil)
	req.Header.Set("Authorization", "OAuth "+testKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !json.Valid(b) {
		t.Fatalf("projects: %d %s", resp.StatusCode, b)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get("http://" + addr + "/_admin/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	if err := Run(context.Background(), Config{Addr: "127.0.0.1:0", Faults: Faults{DropRate: 2}}); err == nil {
		t.Error("Run accepted a drop rate of 2")
	}
	if err := Run(context.Background(), Config{Addr: "not-an-address"}); err == nil {
		t.Error("Run accepted a bad address")
	}
}

// BenchmarkGetAssignment measures the hot path Crowdgate's benchmark
// compares against: GET /api/v1/assignments/{id}, handler only.
func BenchmarkGetAssignment(b *testing.B) {
	clock := newFakeClock()
	srv := New(Config{
		APIKeys:    map[string]string{testKey: testAcct},
		Now:        clock.Now,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		RateLimits: UnlimitedRateLimits(),
	})
	call := func(method, path, body string) *httptest.ResponseRecorder {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req := httptest.NewRequest(method, path, rd)
		req.Header.Set("Authorization", "ApiKey "+testKey)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		return w
	}
	var project map[string]any
	_ = json.Unmarshal(call("POST", "/api/v1/projects", string(mustJSON(validProject()))).Body.Bytes(), &project)
	var pool map[string]any
	_ = json.Unmarshal(call("POST", "/api/v1/pools", string(mustJSON(map[string]any{
		"project_id": project["id"], "private_name": "p", "may_contain_adult_content": false,
		"will_expire": "2099-01-01T00:00:00", "reward_per_assignment": json.Number("0.05"),
		"defaults": map[string]any{"default_overlap_for_new_task_suites": 1}, "assignment_max_duration_seconds": 600,
	}))).Body.Bytes(), &pool)
	poolID, _ := pool["id"].(string)
	call("POST", "/api/v1/pools/"+poolID+"/open", "")
	a, err := srv.CreateAssignment(poolID, "bench-user")
	if err != nil {
		b.Fatal(err)
	}
	path := "/api/v1/assignments/" + a.ID
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "ApiKey "+testKey)
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
