package landing_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// The check, over the real gateway: a Russian browser landing with
// a malformed id reads a Russian page (lang="ru") with a link back to
// Toloka's task list.
//
//	curl -H 'Accept-Language: ru' '<gateway>/start?assignment_id=bad'
func TestMalformedLandingInRussianOverTheGateway(t *testing.T) {
	cg := startCrowdgate(t, gatewaytest.Options{})
	a := get(t, noRedirects, cg.base+"/start?assignment_id=bad", "Accept-Language", "ru")
	checkPage(t, a, http.StatusBadRequest, "Ссылка недействительна")
	d := parsePage(t, a.body)
	if lang := attr(d.tag("html")[0], "lang"); lang != "ru" {
		t.Errorf(`<html lang=%q>, want "ru"`, lang)
	}
	if back := d.byID("back"); attr(back, "href") != tolokaTasks || text(back) != "Вернуться в Toloka" {
		t.Errorf("link %q to %q, want %q to %s", text(back), attr(back, "href"), "Вернуться в Toloka", tolokaTasks)
	}
}

// Over the real gateway, a page about a known task names it from the
// project (partner_name, public_name), whatever the query string says, and
// a 503 says when it retries as Retry-After does ("in 5 seconds", not "in
// a minute").
func TestPagesOverTheGateway(t *testing.T) {
	// A fake clock: Toloka's pool operations take no real time.
	cg := startCrowdgate(t, gatewaytest.Options{Clock: fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))})
	pool := cg.openPool(t, "https://platform.example/start")
	aid := cg.env.StartAssignment(pool, "toloker-1")
	start, err := cg.grpc.StartSession(cg.env.Ctx(), &crowdgatev1.StartSessionRequest{AssignmentId: aid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cg.grpc.EndSession(cg.env.Ctx(), &crowdgatev1.EndSessionRequest{SessionId: start.GetSession().GetSessionId(), Reason: crowdgatev1.EndReason_END_REASON_REVOKED}); err != nil {
		t.Fatal(err)
	}
	a := get(t, noRedirects, cg.base+"/start?assignment_id="+aid+"&public_name=Free+money&partner_name=Evil+Corp", "Accept-Language", "es-ES,es;q=0.9")
	checkPage(t, a, http.StatusGone, "Tu sesión ha terminado")
	d := parsePage(t, a.body)
	var names []string
	for _, dd := range d.tag("dd") {
		names = append(names, text(dd))
	}
	if got := strings.Join(names, ", "); got != "Label street signs, Acme Labeling" || strings.Contains(a.body, "Evil") || strings.Contains(a.body, "Free money") {
		t.Errorf("the page names %q (want the project's names only): %s", got, a.body)
	}
	if href := attr(d.byID("back"), "href"); href != tolokaTasks {
		t.Errorf("back to %q, want %s (the project sets no return_url)", href, tolokaTasks)
	}

	down := cg.env.StartAssignment(pool, "toloker-2")
	if err := cg.env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/assignments", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	defer cg.env.Sim.ClearFaults()
	a = get(t, noRedirects, cg.base+"/start?assignment_id="+down)
	checkPage(t, a, http.StatusServiceUnavailable, "Temporarily unavailable")
	note := text(parsePage(t, a.body).byID("retry-note"))
	if after := a.header.Get("Retry-After"); after == "" || !strings.Contains(note, "in "+after+" second") || strings.Contains(a.body, "in a minute") {
		t.Errorf("Retry-After %q, the page says %q", after, note)
	}
}

// Over the real gateway and in Chromium: a Toloker who lands too often gets
// the 429 page, which lands again by itself when Retry-After says, and
// this time reaches the platform.
func TestTooManyAttemptsRetryInChromiumOverTheGateway(t *testing.T) {
	chromiumPath(t) // skip before starting a gateway for nothing
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>The platform</title><h1>Welcome</h1>`)
	}))
	t.Cleanup(platform.Close)
	cg := startCrowdgate(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.Landing.PerAssignment = ratelimit.Limit{Rate: 1, Per: 2 * time.Second, Burst: 1}
	}})
	pool := cg.openPool(t, platform.URL+"/work")
	aid := cg.env.StartAssignment(pool, "toloker-1")
	landingURL := cg.base + "/start?assignment_id=" + aid
	tb := openTab(t, startChromium(t), "en")

	// Land until the limit answers (the first landing reaches the platform).
	var limited *network.Response
	for range 5 {
		if resp := tb.open(landingURL); resp.Status == http.StatusTooManyRequests {
			limited = resp
			break
		}
	}
	if limited == nil {
		t.Fatal("five landings in a row were never limited")
	}
	// Listen for the retry's navigation at once: it comes in a second or two.
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	navigations := chromedp.Events(ctx, page.FrameNavigated)
	after := headerOf(limited, "Retry-After")
	v := tb.view()
	if v.Refresh != after || !strings.Contains(v.Note, "in "+after+" second") || v.Retry == nil {
		t.Errorf("Retry-After %s: the page retries after %q and says %q", after, v.Refresh, v.Note)
	}
	var landed page.EventFrameNavigated
	for ev, err := range navigations {
		if err != nil {
			t.Fatalf("the 429 page did not take the Toloker to the platform within %s: %v", browserWait, err)
		}
		if strings.HasPrefix(ev.Frame.URL, platform.URL) {
			landed = ev
			break
		}
	}
	if !strings.HasPrefix(landed.Frame.URL, platform.URL+"/work?code=") {
		t.Errorf("landed at %s, want the platform with a code", landed.Frame.URL)
	}
	if v := tb.cspViolations(); len(v) > 0 {
		t.Errorf("CSP violations: %q", v)
	}
}
