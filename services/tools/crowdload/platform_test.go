package crowdload

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckRedirect(t *testing.T) {
	const platform = "http://127.0.0.1:4000/work"
	tests := []struct {
		loc string
		ok  bool
	}{
		{"http://127.0.0.1:4000/work?code=abc", true},
		{"http://127.0.0.1:4000/work?lang=en&code=abc", true},
		{"http://127.0.0.1:4000/work", false},           // no code
		{"http://127.0.0.1:4000/work?code=", false},     // empty code
		{"http://127.0.0.1:4001/work?code=abc", false},  // another port
		{"http://evil.example/work?code=abc", false},    // another host
		{"https://127.0.0.1:4000/work?code=abc", false}, // another scheme
		{"http://127.0.0.1:4000/other?code=abc", false}, // another path
		{"/work?code=abc", false},                       // relative
		{"http://127.0.0.1:4000/work?code=a%zz", false}, // unparsable
	}
	for _, tt := range tests {
		err := checkRedirect(tt.loc, platform)
		if (err == nil) != tt.ok {
			t.Errorf("checkRedirect(%q) = %v, want ok %v", tt.loc, err, tt.ok)
		}
		if err != nil && !errors.Is(err, errWrongRedirect) {
			t.Errorf("checkRedirect(%q) = %v, want errWrongRedirect", tt.loc, err)
		}
	}
}

func TestLand(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		location    string
		body        string
		wantLoc     string
		wantRetry   bool
		wantMessage string
	}{
		{"302 to the platform", 302, "http://127.0.0.1:1/work?code=c1", "", "http://127.0.0.1:1/work?code=c1", false, ""},
		{"303 to the platform", 303, "http://127.0.0.1:1/work?code=c2", "", "http://127.0.0.1:1/work?code=c2", false, ""},
		{"a redirect without Location", 302, "", "", "", false, "without Location"},
		{"a 503 page: try again", 503, "", "<html><head><title>Temporarily unavailable</title></head><body>...</body></html>", "", true, `page "Temporarily unavailable"`},
		{"a 429 page: try again", 429, "", "<html><title>Too many attempts</title></html>", "", true, "Too many attempts"},
		{"a 404 page: the assignment is unknown", 404, "", "<html><title>Task not found</title></html>", "", false, "HTTP 404"},
		{"a 200 page instead of a redirect", 200, "", "hello", "", false, "HTTP 200"},
		{"501", 501, "", "not implemented", "", false, "HTTP 501"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotQuery, gotXFF string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotQuery, gotXFF = r.URL.RawQuery, r.Header.Get("X-Forwarded-For")
				if r.URL.Path != "/start" {
					t.Errorf("landing path %q, want /start", r.URL.Path)
				}
				if tt.location != "" {
					w.Header().Set("Location", tt.location)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			loc, err := land(context.Background(), browser, srv.URL, "0000000002--000000000000000000000001", "198.18.0.7")
			if gotQuery != "assignment_id=0000000002--000000000000000000000001" || gotXFF != "198.18.0.7" {
				t.Errorf("query %q, X-Forwarded-For %q", gotQuery, gotXFF)
			}
			if loc != tt.wantLoc {
				t.Errorf("location %q, want %q", loc, tt.wantLoc)
			}
			if tt.wantMessage == "" {
				if err != nil {
					t.Errorf("land: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantMessage) || retryable(err) != tt.wantRetry {
				t.Errorf("land error %v (retryable %v), want one with %q (retryable %v)", err, retryable(err), tt.wantMessage, tt.wantRetry)
			}
		})
	}
}

func TestPlatformExchangesTheCode(t *testing.T) {
	var codes []string
	p, err := startPlatform(func(_ context.Context, code string) (string, error) {
		codes = append(codes, code)
		if code == "spent" {
			return "", errors.New("ExchangeCode: HTTP 404 NotFound: code not found")
		}
		return "ses_" + code, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if !strings.HasPrefix(p.url, "http://127.0.0.1:") || !strings.HasSuffix(p.url, "/work") {
		t.Errorf("platform_url %q, want http://127.0.0.1:port/work", p.url)
	}
	ctx, browser := context.Background(), &http.Client{}
	id, err := visitPlatform(ctx, browser, p.url+"?code=c1")
	if err != nil || id != "ses_c1" {
		t.Errorf("visitPlatform = %q, %v; want ses_c1", id, err)
	}
	if _, err := visitPlatform(ctx, browser, p.url+"?code=spent"); err == nil || !strings.Contains(err.Error(), "code not found") {
		t.Errorf("visitPlatform with a spent code = %v, want the exchange's error", err)
	}
	if _, err := visitPlatform(ctx, browser, p.url); err == nil || !strings.Contains(err.Error(), "no code") {
		t.Errorf("visitPlatform without a code = %v", err)
	}
	if strings.Join(codes, ",") != "c1,spent" {
		t.Errorf("exchanged codes %q, want c1,spent", codes)
	}
}

func TestTolokerIP(t *testing.T) {
	seen := map[string]int{}
	for i := range 20000 {
		ip := net.ParseIP(tolokerIP(i))
		if ip == nil || !benchmarkNet.Contains(ip) {
			t.Fatalf("tolokerIP(%d) = %q, not in 198.18.0.0/15", i, tolokerIP(i))
		}
		if j, dup := seen[ip.String()]; dup {
			t.Fatalf("Tolokers %d and %d share %s", j, i, ip)
		}
		seen[ip.String()] = i
	}
	for i, want := range map[int]string{0: "198.18.0.0", 257: "198.18.1.1", 65536: "198.19.0.0", 131071: "198.19.255.255"} {
		if got := tolokerIP(i); got != want {
			t.Errorf("tolokerIP(%d) = %s, want %s", i, got, want)
		}
	}
}

var benchmarkNet = func() *net.IPNet { _, n, _ := net.ParseCIDR("198.18.0.0/15"); return n }()

func TestBriefBody(t *testing.T) {
	long := strings.Repeat("x", 300)
	for in, want := range map[string]string{
		"<!doctype html><html><head><title>Too many attempts</title>": `page "Too many attempts"`,
		"  plain error\n": "plain error",
		long:              long[:200] + "...",
	} {
		if got := briefBody([]byte(in)); got != want {
			t.Errorf("briefBody(%.40q) = %q, want %q", in, got, want)
		}
	}
}
