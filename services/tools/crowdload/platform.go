package crowdload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// platform is the stand-in partner platform: the project's platform_url
// points at it. Crowdgate's landing redirects a Toloker's browser to
// <platform_url>?code=...; the platform exchanges the code for the session
// (and a token) and answers the session id, as a real platform would
// start the Toloker's work.
type platform struct {
	url      string // the platform_url: http://127.0.0.1:port/work
	srv      *http.Server
	exchange func(ctx context.Context, code string) (sessionID string, err error)
}

// startPlatform serves the platform on a free loopback port.
func startPlatform(exchange func(context.Context, string) (string, error)) (*platform, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("stand-in platform: %w", err)
	}
	p := &platform{url: "http://" + ln.Addr().String() + "/work", exchange: exchange}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /work", p.work)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *platform) close() { _ = p.srv.Close() }

// platformAnswer is what the platform answers the Toloker's browser.
type platformAnswer struct {
	SessionID string `json:"session_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (p *platform) work(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	code := r.URL.Query().Get("code")
	if code == "" {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(platformAnswer{Error: "no code in the redirect"})
		return
	}
	id, err := p.exchange(r.Context(), code)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		_ = json.NewEncoder(w).Encode(platformAnswer{Error: err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(platformAnswer{SessionID: id})
}

// landingError is a landing that did not redirect to the platform.
type landingError struct {
	status int
	msg    string
}

func (e *landingError) Error() string {
	if e.status == 0 {
		return "landing: " + e.msg
	}
	return fmt.Sprintf("landing: HTTP %d: %s", e.status, e.msg)
}

// land is the Toloker's browser opening Crowdgate's landing: GET
// <gateway>/start?assignment_id=..., not following the redirect. It returns
// the Location of a 302 or 303. Errors are *callError (no answer, 5xx or
// 429: the browser may try again) or *landingError (any other answer).
//
// The harness stands in for the TLS-terminating proxy in front of the
// gateways too: it appends the Toloker's address (clientIP) to
// X-Forwarded-For, as that proxy would, so the landing's per-address limit
// sees Tolokers, not the one loopback address they all share here.
func land(ctx context.Context, browser *http.Client, gatewayURL, assignmentID, clientIP string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL+"/start?assignment_id="+url.QueryEscape(assignmentID), nil)
	if err != nil {
		return "", err
	}
	if clientIP != "" {
		req.Header.Set("X-Forwarded-For", clientIP)
	}
	resp, err := browser.Do(req)
	if err != nil {
		return "", &callError{Op: "landing", NoAnswer: true, Message: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8192))
	body := briefBody(b)
	switch {
	case resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther:
		loc := resp.Header.Get("Location")
		if loc == "" {
			return "", &landingError{status: resp.StatusCode, msg: "redirect without Location"}
		}
		return loc, nil
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
		return "", &callError{Op: "landing", HTTPStatus: resp.StatusCode, Code: codes.Unavailable, Message: body}
	case resp.StatusCode == http.StatusTooManyRequests:
		return "", &callError{Op: "landing", HTTPStatus: resp.StatusCode, Code: codes.ResourceExhausted, Message: body}
	}
	return "", &landingError{status: resp.StatusCode, msg: body}
}

// briefBody shortens an answer for an error message: an HTML page to its
// title, anything else to its first 200 bytes.
func briefBody(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.Index(s, "<title>"); i >= 0 {
		if j := strings.Index(s[i:], "</title>"); j > 0 {
			return "page " + strconv.Quote(s[i+len("<title>"):i+j])
		}
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// tolokerIP is Toloker i's address: 198.18.0.0/15, the range RFC 2544
// sets aside for benchmarks, so it is nobody's real address.
func tolokerIP(i int) string {
	n := i % (1 << 17)
	return fmt.Sprintf("198.%d.%d.%d", 18+n>>16, (n>>8)&0xff, n&0xff)
}

// errWrongRedirect is a landing redirect to somewhere other than the
// project's platform_url, or without a code.
var errWrongRedirect = errors.New("the landing redirected somewhere other than <platform_url>?code=")

// checkRedirect verifies that loc is platformURL with a code parameter.
func checkRedirect(loc, platformURL string) error {
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("%w: %q", errWrongRedirect, loc)
	}
	p, _ := url.Parse(platformURL)
	if u.Scheme != p.Scheme || u.Host != p.Host || u.Path != p.Path || u.Query().Get("code") == "" {
		return fmt.Errorf("%w: %q", errWrongRedirect, loc)
	}
	return nil
}

// visitPlatform is the browser following the redirect to the platform; it
// returns the session id the platform got for the code.
func visitPlatform(ctx context.Context, browser *http.Client, loc string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return "", err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var a platformAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a); err != nil {
		return "", fmt.Errorf("platform answered %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || a.SessionID == "" {
		return "", fmt.Errorf("platform answered %s: %s", resp.Status, a.Error)
	}
	return a.SessionID, nil
}
