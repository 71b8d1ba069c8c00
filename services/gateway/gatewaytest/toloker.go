package gatewaytest

import (
	"context"
	"io"
	"net/http"
	"net/url"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Landing is what the landing answered a Toloker.
type Landing struct {
	// Status is the HTTP status: 303 on success, a page otherwise.
	Status int
	// Location is the redirect to the platform (303 only).
	Location string
	// Body is the page (not 303).
	Body string
}

// Code is the one-time code of a redirect ("" for a page).
func (l Landing) Code() string {
	u, err := url.Parse(l.Location)
	if err != nil {
		return ""
	}
	return u.Query().Get("code")
}

// Land is a Toloker's click on Start in Toloka: GET /start?assignment_id=.
func (e *Env) Land(assignmentID string) Landing {
	e.T.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(e.HTTP + "/start?assignment_id=" + url.QueryEscape(assignmentID))
	if err != nil {
		e.T.Fatalf("landing: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Landing{Status: resp.StatusCode, Location: resp.Header.Get("Location"), Body: string(b)}
}

// LandSession lands with assignmentID and exchanges the one-time code as
// the platform does (for the tenant of ctx); it returns the session.
func (e *Env) LandSession(ctx context.Context, assignmentID string) *crowdgatev1.Session {
	e.T.Helper()
	l := e.Land(assignmentID)
	if l.Status != http.StatusSeeOther {
		e.T.Fatalf("landing with %s: %d, want 303; page:\n%s", assignmentID, l.Status, l.Body)
	}
	resp, err := e.Sessions.ExchangeCode(ctx, &crowdgatev1.ExchangeCodeRequest{Code: l.Code()})
	if err != nil {
		e.T.Fatalf("ExchangeCode: %v", err)
	}
	return resp.GetSession()
}

// AssignmentGets counts the GET /api/v1/assignments/{id} requests the
// emulator received for assignmentID: what landings asked Toloka.
func (e *Env) AssignmentGets(assignmentID string) int {
	return len(e.Requests(http.MethodGet, "/api/v1/assignments/"+assignmentID))
}

// SubmitToToloka posts a tasks/external/submit for userID in pool straight
// to the emulator with the Toloka API key key, as a platform that bypasses
// Crowdgate would, and returns Toloka's flags.
func (e *Env) SubmitToToloka(key string, p *crowdgatev1.Pool, userID, reward string, closeSession bool) *toloka.ExternalSubmitResult {
	e.T.Helper()
	cfg := toloka.Config{ProductionURL: e.SimURL + "/api/v1", SandboxURL: e.SimURL + "/api/v1"}
	if e.Clock != nil {
		cfg.Now, cfg.Sleep = e.Clock.Now, e.Clock.Sleep
	}
	client, err := toloka.New(cfg)
	if err != nil {
		e.T.Fatal(err)
	}
	account, err := client.Account(toloka.Credential{Environment: toloka.Sandbox, Token: key})
	if err != nil {
		e.T.Fatal(err)
	}
	s := &toloka.ExternalSubmit{PoolID: p.GetTolokaPoolId(), UserID: userID, Reward: money.MustParse(reward)}
	if closeSession {
		s.CloseSession = toloka.Ptr(true)
	}
	res, err := account.SubmitExternal(context.Background(), s)
	if err != nil {
		e.T.Fatalf("SubmitExternal for %s: %v", userID, err)
	}
	return res
}
