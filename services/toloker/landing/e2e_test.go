package landing_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
)

// crowdgate is a running gateway (gatewaytest) seen from the Toloker's
// and the platform's side: the landing and the JWK Set over plain HTTP,
// SessionService over gRPC and, through grpc-gateway, over REST.
type crowdgate struct {
	env  *gatewaytest.Env
	base string // http://127.0.0.1:port
	grpc crowdgatev1.SessionServiceClient
	key  string // the Toloka API key of the default tenant's credential
}

func startCrowdgate(t *testing.T, opts gatewaytest.Options) *crowdgate {
	t.Helper()
	env := gatewaytest.Start(t, opts)
	return &crowdgate{env: env, base: env.HTTP, grpc: env.Sessions, key: env.NewAPIKey("acme")}
}

// openPool creates a project whose platform is platformURL and an open pool
// in it, for the default tenant.
func (cg *crowdgate) openPool(t *testing.T, platformURL string) *crowdgatev1.Pool {
	t.Helper()
	env, ctx := cg.env, cg.env.Ctx()
	prj := gatewaytest.MinimalProject(env.MustCredential(ctx, cg.key))
	prj.PlatformUrl = platformURL
	p := env.MustPool(ctx, gatewaytest.ValidPool(env.MustProject(ctx, prj).GetProjectId(), env.Now()))
	resp, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()})
	if err != nil {
		t.Fatalf("OpenPool: %v", err)
	}
	return resp.GetPool()
}

// platform is a stand-in partner platform: its start page takes the code,
// exchanges it over REST or gRPC, and verifies the token against the JWK Set
// fetched over HTTP, as a platform's own code would.
type platform struct {
	t        *testing.T
	srv      *httptest.Server
	via      string // "rest" or "grpc"
	cg       *crowdgate
	verifier *token.Verifier

	mu     sync.Mutex
	tokens []string
	codes  []string
}

func newPlatform(t *testing.T, via string) *platform {
	t.Helper()
	p := &platform{t: t, via: via}
	p.srv = httptest.NewServer(http.HandlerFunc(p.start))
	t.Cleanup(p.srv.Close)
	return p
}

// connect points the platform at Crowdgate (its origin is the audience).
func (p *platform) connect(cg *crowdgate) {
	p.cg = cg
	p.verifier = &token.Verifier{
		Keys:   token.NewRemoteKeySet(cg.base+token.JWKSPath, http.DefaultClient),
		Issuer: cg.env.Config.PublicURL, Tenant: tenant.Default, Audience: p.srv.URL,
	}
}

func (p *platform) start(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	tok, err := p.exchange(r.Context(), code)
	if err != nil {
		http.Error(w, "exchange: "+err.Error(), http.StatusUnauthorized)
		return
	}
	claims, err := p.verifier.Verify(r.Context(), tok)
	if err != nil {
		http.Error(w, "verify: "+err.Error(), http.StatusUnauthorized)
		return
	}
	p.mu.Lock()
	p.tokens = append(p.tokens, tok)
	p.codes = append(p.codes, code)
	p.mu.Unlock()
	fmt.Fprintf(w, "welcome %s, session %s", claims.Subject, claims.SessionID)
}

// exchange trades a code for a token the way the platform is set up to.
func (p *platform) exchange(ctx context.Context, code string) (string, error) {
	if p.via == "grpc" {
		resp, err := p.cg.grpc.ExchangeCode(ctx, &crowdgatev1.ExchangeCodeRequest{Code: code})
		if err != nil {
			return "", err
		}
		return resp.GetToken(), nil
	}
	body, _ := json.Marshal(map[string]string{"code": code})
	resp, err := http.Post(p.cg.base+"/v1/sessions:exchange", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", &httpError{resp.StatusCode, string(b)}
	}
	var out struct {
		Token      string          `json:"token"`
		ExpireTime string          `json:"expire_time"`
		Session    json.RawMessage `json:"session"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", err
	}
	return out.Token, nil
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func (p *platform) lastToken() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokens[len(p.tokens)-1]
}

func (p *platform) lastCode() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.codes[len(p.codes)-1]
}

// click follows a Toloker's click through every redirect.
func click(t *testing.T, cg *crowdgate, aid string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(cg.base + "/start?assignment_id=" + url.QueryEscape(aid) + "&from=toloka")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestEndToEnd(t *testing.T) {
	for _, via := range []string{"rest", "grpc"} {
		t.Run("exchange over "+via, func(t *testing.T) {
			plat := newPlatform(t, via)
			cg := startCrowdgate(t, gatewaytest.Options{})
			plat.connect(cg)
			pool := cg.openPool(t, plat.srv.URL+"/start")
			aid := cg.env.StartAssignment(pool, "6f1c2a9b3d4e5f6071829300")

			resp, body := click(t, cg, aid)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), plat.srv.URL+"/start?code=") {
				t.Fatalf("the click ended at %s with %d: %s", resp.Request.URL, resp.StatusCode, body)
			}
			if !strings.HasPrefix(body, "welcome 6f1c2a9b3d4e5f6071829300, session ses_") {
				t.Errorf("the platform answered %q", body)
			}
			tok := plat.lastToken()
			claims, err := plat.verifier.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if claims.AssignmentID != aid || claims.PoolID != pool.PoolId || claims.ProjectID != pool.ProjectId || !slices.Contains(claims.Audience, plat.srv.URL) {
				t.Errorf("claims %+v", claims)
			}

			// The code worked once.
			_, err = plat.exchange(context.Background(), plat.lastCode())
			var he *httpError
			switch via {
			case "rest":
				if !errors.As(err, &he) || he.status != http.StatusNotFound {
					t.Errorf("second REST exchange = %v, want 404", err)
				}
			case "grpc":
				if status.Code(err) != codes.NotFound {
					t.Errorf("second gRPC exchange = %v, want NotFound", err)
				}
			}

			// Tampered and foreign-audience tokens do not pass.
			parts := strings.Split(tok, ".")
			payload, _ := jwtDecode(parts[1])
			payload = bytes.Replace(payload, []byte("6f1c2a9b3d4e5f6071829300"), []byte("6f1c2a9b3d4e5f6071829301"), 1)
			tampered := parts[0] + "." + jwtEncode(payload) + "." + parts[2]
			if _, err := plat.verifier.Verify(context.Background(), tampered); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
				t.Errorf("tampered token: %v", err)
			}
			other := *plat.verifier
			other.Audience = "https://another-platform.example"
			if _, err := other.Verify(context.Background(), tok); !errors.Is(err, jwt.ErrTokenInvalidAudience) {
				t.Errorf("token for another platform: %v", err)
			}
		})
	}
}

func TestDoubleClickEndToEnd(t *testing.T) {
	plat := newPlatform(t, "rest")
	cg := startCrowdgate(t, gatewaytest.Options{})
	plat.connect(cg)
	pool := cg.openPool(t, plat.srv.URL+"/start")
	aid := cg.env.StartAssignment(pool, "toloker-1")

	bodies := make([]string, 2)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() {
			resp, err := http.Get(cg.base + "/start?assignment_id=" + aid)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			bodies[i] = string(b)
		})
	}
	wg.Wait()
	if bodies[0] != bodies[1] || !strings.HasPrefix(bodies[0], "welcome toloker-1, session ses_") {
		t.Errorf("two clicks landed as %q and %q, want the same session", bodies[0], bodies[1])
	}
	if n := len(cg.env.Requests(http.MethodGet, "/api/v1/assignments/"+aid)); n != 1 {
		t.Errorf("Toloka was asked %d times, want 1", n)
	}
}

func TestRotationEndToEnd(t *testing.T) {
	clock := fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))
	encryptionKey := secretbox.NewRandomKey()
	plat := newPlatform(t, "rest")
	cg := startCrowdgate(t, gatewaytest.Options{Clock: clock, Config: func(c *gateway.Config) {
		c.Secrets.Key = base64.StdEncoding.EncodeToString(encryptionKey)
	}})
	plat.connect(cg)
	plat.verifier.Now = clock.Now
	plat.verifier.Keys.(*token.RemoteKeySet).Now = clock.Now
	pool := cg.openPool(t, plat.srv.URL+"/start")

	if resp, body := click(t, cg, cg.env.StartAssignment(pool, "toloker-1")); resp.StatusCode != http.StatusOK {
		t.Fatalf("before rotation: %d %s", resp.StatusCode, body)
	}
	before := plat.lastToken()
	// Another replica (same Redis, same encryption key) rotates the key.
	box, err := secretbox.New(encryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	other, err := token.NewSigner(token.Config{
		Redis: cg.env.Redis.Client, Prefix: cg.env.Redis.Prefix + "token:", Box: box,
		Issuer: cg.env.Config.PublicURL, Now: clock.Now, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(token.DefaultPublishDelay)
	if resp, body := click(t, cg, cg.env.StartAssignment(pool, "toloker-2")); resp.StatusCode != http.StatusOK {
		t.Fatalf("after rotation: %d %s", resp.StatusCode, body)
	}
	after := plat.lastToken()
	if kid(t, before) == kid(t, after) {
		t.Fatal("the rotated key does not sign")
	}
	// A platform that fetches the key set now verifies both.
	fresh := *plat.verifier
	fresh.Keys = &token.RemoteKeySet{URL: cg.base + token.JWKSPath, Now: clock.Now}
	for name, tok := range map[string]string{"before": before, "after": after} {
		if _, err := fresh.Verify(context.Background(), tok); err != nil {
			t.Errorf("token signed %s the rotation: %v", name, err)
		}
	}
}

func TestSessionAPIOverRESTAndGRPC(t *testing.T) {
	cg := startCrowdgate(t, gatewaytest.Options{})
	pool := cg.openPool(t, "https://platform.example/start")
	aid := cg.env.StartAssignment(pool, "toloker-1")

	resp, err := http.Post(cg.base+"/v1/sessions", "application/json", strings.NewReader(`{"assignment_id": "`+aid+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var start struct {
		Session     map[string]any `json:"session"`
		Code        string         `json:"code"`
		RedirectURL string         `json:"redirect_url"`
	}
	if err := json.Unmarshal(b, &start); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/sessions: %d %s", resp.StatusCode, b)
	}
	sid, _ := start.Session["session_id"].(string)
	if start.Code == "" || start.Session["user_id"] != "toloker-1" || start.Session["state"] != "SESSION_STATE_ACTIVE" || start.Session["reward_total"] != "0" {
		t.Errorf("StartSession over REST: %s", b)
	}
	got, err := cg.grpc.GetSession(context.Background(), &crowdgatev1.GetSessionRequest{SessionId: sid})
	if err != nil || got.GetSession().GetAssignmentId() != aid {
		t.Errorf("GetSession over gRPC = %v, %v", got, err)
	}
	ended, err := cg.grpc.EndSession(context.Background(), &crowdgatev1.EndSessionRequest{SessionId: sid, Reason: crowdgatev1.EndReason_END_REASON_REVOKED})
	if err != nil || ended.GetSession().GetEndReason() != crowdgatev1.EndReason_END_REASON_REVOKED {
		t.Errorf("EndSession over gRPC = %v, %v", ended, err)
	}
	// The revoked session's code no longer yields a token.
	if _, err := cg.grpc.ExchangeCode(context.Background(), &crowdgatev1.ExchangeCodeRequest{Code: start.Code}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("exchange after revocation = %v, want FailedPrecondition", err)
	}

	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/v1/sessions", `{"assignment_id": "nope"}`, http.StatusBadRequest},
		{"POST", "/v1/sessions", `{}`, http.StatusBadRequest},
		{"POST", "/v1/sessions:exchange", `{"code": "nope"}`, http.StatusBadRequest},
		{"GET", "/v1/sessions/ses_unknown", "", http.StatusNotFound},
		{"POST", "/v1/sessions/" + sid + "/end", `{"reason": "END_REASON_CLOSE_SESSION"}`, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(tc.method, cg.base+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, resp.StatusCode, b, tc.status)
		}
	}
}

func kid(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &token.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := tok.Header["kid"].(string)
	return k
}

func jwtDecode(s string) ([]byte, error) { return jwt.NewParser().DecodeSegment(s) }

func jwtEncode(b []byte) string { return (&jwt.Token{}).EncodeSegment(b) }

// A tenant chooses its platform_url freely: tenant B can send its Tolokers
// to tenant A's platform. A's platform neither exchanges B's codes (they
// are B's) nor accepts B's tokens: its verifier is pinned to tenant A.
func TestAnotherTenantsTokenIsRefusedByThePlatform(t *testing.T) {
	plat := newPlatform(t, "rest")
	cg := startCrowdgate(t, gatewaytest.Options{})
	plat.connect(cg)

	asB := gatewaytest.As("tenant-b")
	env := cg.env
	prj := gatewaytest.MinimalProject(env.MustCredential(asB, env.NewAPIKey("globex")))
	prj.PlatformUrl = plat.srv.URL + "/start" // A's platform
	p := env.MustPool(asB, gatewaytest.ValidPool(env.MustProject(asB, prj).GetProjectId(), env.Now()))
	if _, err := env.Pools.OpenPool(asB, &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	aid := env.StartAssignment(p, "toloker-b")

	// The Toloker lands on A's platform with B's code: A cannot exchange it.
	resp, body := click(t, cg, aid)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "exchange") {
		t.Fatalf("A's platform took B's code: %d %s", resp.StatusCode, body)
	}
	// B exchanges a fresh code itself and replays the token at A's platform.
	start, err := env.Sessions.StartSession(asB, &crowdgatev1.StartSessionRequest{AssignmentId: aid})
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.Sessions.ExchangeCode(asB, &crowdgatev1.ExchangeCodeRequest{Code: start.GetCode()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plat.verifier.Verify(context.Background(), got.GetToken()); !errors.Is(err, token.ErrInvalidToken) {
		t.Errorf("A's verifier accepted tenant B's token: %v", err)
	}
}

// Landings with made-up assignment ids cannot spend a requester's Toloka
// quota: past the pool's budget of unknown ids they get the 429 page, and
// Toloka is not asked.
func TestMadeUpAssignmentIDsStopAtThePoolsBudget(t *testing.T) {
	cg := startCrowdgate(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.Session.UnknownPerPool = ratelimit.Limit{Rate: 2, Per: time.Hour}
	}})
	pool := cg.openPool(t, "https://platform.example/start")
	prefix := cg.env.StartAssignment(pool, "toloker-1")[:12]
	want := []int{http.StatusNotFound, http.StatusNotFound, http.StatusTooManyRequests, http.StatusTooManyRequests}
	for i, status := range want {
		aid := prefix + fmt.Sprintf("%024x", 0xfeed00+i)
		resp, body := click(t, cg, aid)
		if resp.StatusCode != status {
			t.Errorf("made-up id %d: %d %s, want %d", i, resp.StatusCode, body, status)
		}
	}
	if n := len(cg.env.Requests(http.MethodGet, "/api/v1/assignments/"+prefix)); n != 2 {
		t.Errorf("Toloka was asked %d times, want 2 (the budget)", n)
	}
}

// TestOneClientCannotSpendThePoolsBudgetForEveryone: a client spends at
// most its share of a pool's budget of unknown ids
// (CROWDGATE_SESSION_UNKNOWN_PER_CLIENT): past it, its own first landings
// get the 429 page, and a Toloker landing from elsewhere is let in. The
// pool's id is in every assignment id, so one anonymous client used to
// spend the whole budget with made-up ids and shut the pool's first
// landings to everyone until the window ended.
func TestOneClientCannotSpendThePoolsBudgetForEveryone(t *testing.T) {
	cg := startCrowdgate(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.Session.UnknownPerPool = ratelimit.Limit{Rate: 6, Per: time.Hour}
		c.Session.UnknownPerClient = ratelimit.Limit{Rate: 2, Per: time.Hour}
		var err error
		if c.Landing.TrustedProxies, err = landing.ParsePrefixes("127.0.0.0/8,::1/128"); err != nil {
			t.Fatal(err)
		}
	}})
	pool := cg.openPool(t, "https://platform.example/start")
	land := func(aid, from string) int {
		req, _ := http.NewRequest(http.MethodGet, cg.base+"/start?assignment_id="+aid, nil)
		req.Header.Set("X-Forwarded-For", from)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	real := cg.env.StartAssignment(pool, "toloker-1")
	prefix := real[:12]
	want := []int{http.StatusNotFound, http.StatusNotFound, http.StatusTooManyRequests, http.StatusTooManyRequests, http.StatusTooManyRequests}
	for i, status := range want {
		if got := land(prefix+fmt.Sprintf("%024x", 0xbad00+i), "203.0.113.66"); got != status {
			t.Errorf("the client's made-up id %d: %d, want %d", i, got, status)
		}
	}
	if n := len(cg.env.Requests(http.MethodGet, "/api/v1/assignments/"+prefix)); n != 2 {
		t.Errorf("Toloka was asked %d times about made-up ids, want 2 (the client's share)", n)
	}
	if got := land(real, "203.0.113.7"); got != http.StatusSeeOther {
		t.Errorf("a Toloker's first landing from another address: %d, want 303", got)
	}
}

// A client that connects directly cannot choose the address the landing
// limits by writing X-Forwarded-For: only a trusted proxy's header counts.
func TestSpoofedForwardedForDoesNotEscapeThePerAddressLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
		through int // landings that get past the per-address limit
	}{
		{"nothing trusted", "", 3},
		{"loopback is the trusted proxy", "127.0.0.0/8,::1/128", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := startCrowdgate(t, gatewaytest.Options{Config: func(c *gateway.Config) {
				c.Landing.PerIP = ratelimit.Limit{Rate: 3, Per: time.Hour, Burst: 3}
				var err error
				if c.Landing.TrustedProxies, err = landing.ParsePrefixes(tc.trusted); err != nil {
					t.Fatal(err)
				}
			}})
			pool := cg.openPool(t, "https://platform.example/start")
			aid := cg.env.StartAssignment(pool, "toloker-1")
			through := 0
			for i := range 8 {
				req, _ := http.NewRequest(http.MethodGet, cg.base+"/start?assignment_id="+aid, nil)
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
				resp, err := noFollow.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusTooManyRequests {
					through++
				}
			}
			if through != tc.through {
				t.Errorf("%d of 8 landings with rotated X-Forwarded-For got through, want %d", through, tc.through)
			}
		})
	}
}

// noFollow is a client that does not follow redirects.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
