package landing_test

// The pages in a real browser: Debian's chromium, headless, driven with
// chromedp at phone size. Run with
//
//	go test ./services/toloker/landing -run Chromium -v
//	go test ./services/toloker/landing -run TestPagesInChromium -args -screenshots=../../../docs/screenshots
//
// (the screenshots' directory is relative to this package: that one is the
// README's docs/screenshots). Without chromium these tests skip, unless
// CROWDGATE_REQUIRE_BROWSER is set (CI sets it): then they fail.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/toloker/session"
)

var screenshotDir = flag.String("screenshots", "", "write a PNG of each landing page (English, 412x915) to this directory")

// A phone (412x915 CSS pixels, a common Android size) and the narrowest
// screen a page must fit.
const (
	phoneWidth, phoneHeight   = 412, 915
	narrowWidth, narrowHeight = 320, 640
)

// browserWait bounds every wait on the browser (a page load, a retry).
const browserWait = 30 * time.Second

// chromiumPath finds chromium. It skips the test when chromium is not
// installed, unless CROWDGATE_REQUIRE_BROWSER is set: then it fails it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CROWDGATE_REQUIRE_BROWSER") != "" {
		t.Fatal("CROWDGATE_REQUIRE_BROWSER is set, but chromium is not installed (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium): the browser tests are skipped; set CROWDGATE_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// startChromium starts a headless chromium for the test (see chromiumPath)
// and returns a context whose tabs share it. The browser stops before the
// servers started earlier in the test: start it after them (a server's
// shutdown waits for the connections a live browser keeps open).
func startChromium(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Without these chromium calls home, and this machine's closed
		// network refuses its connections.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline
		t.Fatalf("starting chromium (%s): %v", path, err)
	}
	return ctx
}

// tab is a browser tab at phone size whose requests ask for a language,
// and which records every Content Security Policy violation.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string // console messages about the CSP
}

// cspListener records the page's CSP violations in window.__csp: the
// browser reports each one as a securitypolicyviolation event. The
// DevTools protocol adds it to every document before the page's own
// content runs (it is not the page's script: the CSP does not apply).
const cspListener = `window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));`

func openTab(t *testing.T, browser context.Context, acceptLanguage string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if strings.Contains(m.Text, "Content Security Policy") {
				tb.mu.Lock()
				tb.console = append(tb.console, m.Text)
				tb.mu.Unlock()
			}
		}
	}()
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateScale(1)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
				UserAgent:      "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36",
				AcceptLanguage: acceptLanguage,
			}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener})
			return err
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// run runs an action with the browser deadline.
func run[T any](tb *tab, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatal(err)
	}
	return v
}

// open navigates to u and returns the document's response.
func (tb *tab) open(u string) *network.Response {
	tb.t.Helper()
	return run(tb, chromedp.NavigateResponse(u))
}

// click clicks the element with id and returns the response of the page it
// leads to.
func (tb *tab) click(id string) *network.Response {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID(id)))
	if err != nil {
		tb.t.Fatalf("clicking #%s: %v", id, err)
	}
	return resp
}

// cspViolations are the violations of the page shown now, and every
// console report of one in this tab so far.
func (tb *tab) cspViolations() []string {
	tb.t.Helper()
	var out []string
	raw := run(tb, chromedp.Evaluate[[]byte](`window.__csp`))
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.t.Fatalf("window.__csp = %s: %v", raw, err)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append(out, tb.console...)
}

// view is what the page shows, as the browser laid it out.
type view struct {
	Lang        string   `json:"lang"`
	Dir         string   `json:"dir"`
	Direction   string   `json:"direction"`
	Title       string   `json:"title"`
	H1          []string `json:"h1"`
	Back        *link    `json:"back"`
	Retry       *link    `json:"retry"`
	Note        string   `json:"note"`
	Names       []string `json:"names"`
	Refresh     string   `json:"refresh"`
	ScrollWidth float64  `json:"scrollWidth"`
	InnerWidth  float64  `json:"innerWidth"`
	Links       []box    `json:"links"`
	Contrast    float64  `json:"contrast"`
	LowContrast string   `json:"lowContrast"`
	Location    string   `json:"location"`
}

type link struct {
	Text string `json:"text"`
	Href string `json:"href"` // resolved
	Attr string `json:"attr"` // as written; null when absent
}

type box struct {
	ID     string  `json:"id"`
	Left   float64 `json:"left"`
	Right  float64 `json:"right"`
	Height float64 `json:"height"`
}

// viewScript reads the page; the contrast is WCAG 2's, of each text
// against the background behind it, the lowest on the page.
const viewScript = `(() => {
  const q = s => document.querySelector(s);
  const rgb = s => { const m = s.match(/[\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bg = el => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.a > 0) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const ratio = el => { const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el)); return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
  let worst = {c: 99, what: ''};
  for (const el of document.querySelectorAll('h1, p, dt, dd, a')) { const c = ratio(el); if (c < worst.c) worst = {c, what: el.tagName + (el.id ? '#' + el.id : '')}; }
  const link = el => el && {text: el.textContent.trim(), href: el.href, attr: el.getAttribute('href')};
  return {
    lang: document.documentElement.lang, dir: document.documentElement.dir, direction: getComputedStyle(document.body).direction,
    title: document.title, h1: [...document.querySelectorAll('h1')].map(e => e.textContent.trim()),
    back: link(q('#back')), retry: link(q('#retry')), note: q('#retry-note') ? q('#retry-note').textContent.trim() : '',
    names: [...document.querySelectorAll('dd')].map(e => e.textContent.trim()),
    refresh: q('meta[http-equiv=refresh]') ? q('meta[http-equiv=refresh]').content : '',
    scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth,
    links: [...document.querySelectorAll('a')].map(a => { const r = a.getBoundingClientRect(); return {id: a.id, left: r.left, right: r.right, height: r.height}; }),
    contrast: worst.c, lowContrast: worst.what, location: location.href,
  };
})()`

func (tb *tab) view() view {
	tb.t.Helper()
	raw := run(tb, chromedp.Evaluate[[]byte](viewScript))
	var v view
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.t.Fatalf("reading the page: %v: %s", err, raw)
	}
	return v
}

// checkFits fails unless nothing on the page is wider than the screen and
// every button is on it and big enough to tap.
func (tb *tab) checkFits(width int) {
	tb.t.Helper()
	v := tb.view()
	if v.InnerWidth != float64(width) || v.ScrollWidth > v.InnerWidth {
		tb.t.Errorf("at %d pixels: the page is %v wide in a window of %v (it overflows horizontally)", width, v.ScrollWidth, v.InnerWidth)
	}
	for _, b := range v.Links {
		if b.Left < 0 || b.Right > float64(width) || b.Height < 44 {
			tb.t.Errorf("at %d pixels: button #%s spans %v..%v, %v high: want it on the screen and at least 44 pixels high", width, b.ID, b.Left, b.Right, b.Height)
		}
	}
}

// resize sets the viewport's width and height.
func (tb *tab) resize(width, height int) {
	tb.t.Helper()
	run(tb, chromedp.EmulateViewport(int64(width), int64(height), chromedp.EmulateMobile, chromedp.EmulateScale(1)))
}

// readingOrder is what a screen reader announces, in order: the page's
// heading and its links, with their roles, from the accessibility tree.
func (tb *tab) readingOrder() []string {
	tb.t.Helper()
	tree := run(tb, func(ctx context.Context, tg *chromedp.Target) (accessibility.GetFullAXTreeResult, error) {
		return cdp.Call(ctx, tg, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	})
	byID := map[accessibility.NodeID]*accessibility.Node{}
	for _, n := range tree.Nodes {
		byID[n.NodeID] = n
	}
	value := func(v *accessibility.Value) string {
		if v == nil {
			return ""
		}
		var s string
		_ = json.Unmarshal(v.Value, &s)
		return s
	}
	var out []string
	var walk func(*accessibility.Node)
	walk = func(n *accessibility.Node) {
		if role := value(n.Role); !n.Ignored && (role == "heading" || role == "link" || role == "main") {
			out = append(out, role+": "+value(n.Name))
		}
		for _, c := range n.ChildIDs {
			if child, ok := byID[c]; ok {
				walk(child)
			}
		}
	}
	if len(tree.Nodes) > 0 {
		walk(tree.Nodes[0])
	}
	return out
}

// tabOrder presses Tab n times and returns the ids of the elements that
// took the focus, each with whether the focus is visible (an outline).
func (tb *tab) tabOrder(n int) []string {
	tb.t.Helper()
	var out []string
	for range n {
		run(tb, chromedp.KeyEvent(kb.Tab))
		out = append(out, run(tb, chromedp.Evaluate[string](
			`document.activeElement.id + (getComputedStyle(document.activeElement).outlineStyle === 'none' ? ' (focus not visible)' : '')`)))
	}
	return out
}

// localNumber is n as a page in lang writes it (Arabic digits in Arabic).
func localNumber(lang string, n int) string {
	return message.NewPrinter(language.MustParse(lang)).Sprintf("%d", n)
}

// headerOf reads a response header.
func headerOf(resp *network.Response, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// countingServer counts the landings of each assignment, by language
// (the tabs of the languages land in parallel).
type countingServer struct {
	mu     sync.Mutex
	counts map[string]int
	times  map[string][]time.Time
}

func (c *countingServer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			c.mu.Lock()
			key := r.URL.Query().Get("assignment_id") + " " + r.Header.Get("Accept-Language")
			c.counts[key]++
			c.times[key] = append(c.times[key], time.Now())
			c.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (c *countingServer) count(aid, lang string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[aid+" "+lang]
}

// tolokaStandIn serves the pages "Back to Toloka" leads to (this machine
// cannot reach toloka.ai).
func tolokaStandIn(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Toloka tasks</title><h1>Tasks</h1>`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Every page in every language, at phone size in Chromium: it renders in
// the Toloker's language and direction, with one heading, the task's names
// where known, readable contrast, a screen reader's order (heading, then
// the buttons), buttons the keyboard reaches with a visible focus, nothing
// wider than the screen at 412 and at 320 pixels, no CSP violation; "Try
// again" reloads the page and "Back to Toloka" leads back to Toloka.
func TestPagesInChromium(t *testing.T) {
	browser := startChromium(t)
	toloka := tolokaStandIn(t)
	projectReturn := toloka + "/tasks?project=42"
	infos := map[string]session.PageInfo{}
	for _, p := range pages {
		if p.named {
			// A long unbroken name must wrap, not widen the page.
			infos[assignmentOf(p.page)] = session.PageInfo{
				PublicName:  "Street signs and traffic lights: draw-a-box-around-every-sign-in-city-photos",
				PartnerName: "Acme Labeling", ReturnURL: projectReturn,
			}
		}
	}
	sessions := &pageSessions{infos: infos, defaultReturn: toloka + "/tasks", endedReturn: toloka + "/tasks?from=ended", retryAfter: 45 * time.Second}
	counter := &countingServer{counts: map[string]int{}, times: map[string][]time.Time{}}
	start := servePagesWith(t, sessions, counter.wrap)
	if *screenshotDir != "" {
		if err := os.MkdirAll(*screenshotDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the CSP check sees a violation", func(t *testing.T) {
		// The same CSP on a page with a style it does not allow: the check
		// below is not blind.
		csp := ""
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			fmt.Fprint(w, `<!doctype html><title>x</title><style>h1{color:red}</style><h1>x</h1>`)
		}))
		defer srv.Close()
		probe := get(t, noRedirects, start+"?assignment_id="+assignmentOf("malformed"))
		csp = probe.header.Get("Content-Security-Policy")
		tb := openTab(t, browser, "en")
		tb.open(srv.URL)
		if v := tb.cspViolations(); len(v) == 0 {
			t.Fatal("an inline style the CSP forbids was not reported: the CSP check cannot be trusted")
		}
	})

	for _, lang := range []string{"en", "ru", "es", "tr", "pt", "id", "ar"} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			w := readWording(t, lang)
			tb := openTab(t, browser, lang)
			for _, p := range pages {
				t.Run(p.page, func(t *testing.T) {
					tb.t = t
					aid := assignmentOf(p.page)
					u := start + "?assignment_id=" + aid
					resp := tb.open(u)
					if resp.Status != int64(p.status) {
						t.Errorf("status %d, want %d", resp.Status, p.status)
					}
					v := tb.view()
					title := w.text(t, p.page+".title")
					if v.Lang != lang || v.Dir != w.Direction || v.Direction != w.Direction {
						t.Errorf("lang %q dir %q (laid out %s), want %q %q", v.Lang, v.Dir, v.Direction, lang, w.Direction)
					}
					if v.Title != title || !slices.Equal(v.H1, []string{title}) {
						t.Errorf("title %q, headings %q: want one heading %q", v.Title, v.H1, title)
					}
					wantNames := []string(nil)
					if p.named {
						wantNames = []string{infos[aid].PublicName, infos[aid].PartnerName}
					}
					if !slices.Equal(v.Names, wantNames) {
						t.Errorf("the page names %q, want %q", v.Names, wantNames)
					}
					if v.Contrast < 4.5 {
						t.Errorf("%s has a contrast of %.2f:1, want at least 4.5:1 (WCAG AA)", v.LowContrast, v.Contrast)
					}
					wantBack := toloka + "/tasks"
					switch {
					case p.page == "ended" || p.page == "session_expired":
						wantBack = toloka + "/tasks?from=ended"
					case p.named:
						wantBack = projectReturn
					}
					if v.Back == nil || v.Back.Text != w.text(t, "back") || v.Back.Href != wantBack {
						t.Errorf("back button %+v, want %q to %s", v.Back, w.text(t, "back"), wantBack)
					}
					wantOrder := []string{"main: ", "heading: " + title}
					wantFocus := []string{"back"}
					if p.retry {
						after := headerOf(resp, "Retry-After")
						n, _ := strconv.Atoi(after)
						if n < 1 || v.Refresh != after {
							t.Errorf("Retry-After %q, automatic retry after %q: want the same seconds", after, v.Refresh)
						}
						if !strings.Contains(v.Note, localNumber(lang, n)) {
							t.Errorf("the page says %q, Retry-After says %s", v.Note, after)
						}
						if v.Retry == nil || v.Retry.Text != w.text(t, "retry") || v.Retry.Attr != "" || v.Retry.Href != v.Location {
							t.Errorf("try-again button %+v, want %q to this page", v.Retry, w.text(t, "retry"))
						}
						wantOrder = append(wantOrder, "link: "+w.text(t, "retry"))
						wantFocus = []string{"retry", "back"}
					} else if v.Retry != nil || v.Refresh != "" {
						t.Errorf("a %s page offers a retry: %+v, refresh %q", p.page, v.Retry, v.Refresh)
					}
					wantOrder = append(wantOrder, "link: "+w.text(t, "back"))
					if got := tb.readingOrder(); !slices.Equal(got, wantOrder) {
						t.Errorf("a screen reader reads %q, want %q", got, wantOrder)
					}
					if got := tb.tabOrder(len(wantFocus)); !slices.Equal(got, wantFocus) {
						t.Errorf("Tab focuses %q, want %q", got, wantFocus)
					}
					tb.checkFits(phoneWidth)
					if lang == "en" && *screenshotDir != "" {
						run(tb, chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
						png := run(tb, chromedp.CaptureScreenshot())
						if err := os.WriteFile(filepath.Join(*screenshotDir, strings.ReplaceAll(p.page, "_", "-")+".png"), png, 0o644); err != nil {
							t.Fatal(err)
						}
					}
					tb.resize(narrowWidth, narrowHeight)
					tb.checkFits(narrowWidth)
					tb.resize(phoneWidth, phoneHeight)
					if v := tb.cspViolations(); len(v) > 0 {
						t.Errorf("CSP violations: %q", v)
					}

					// Click only what is there: a query for a missing
					// element waits out the whole deadline.
					if p.retry && v.Retry != nil {
						before := counter.count(aid, lang)
						again := tb.click("retry")
						if again.URL != u || again.Status != int64(p.status) || counter.count(aid, lang) != before+1 {
							t.Errorf("Try again led to %s (%d), %d landings: want this page again, landed once more", again.URL, again.Status, counter.count(aid, lang)-before)
						}
					}
					if v.Back == nil {
						return
					}
					if back := tb.click("back"); back.URL != wantBack || back.Status != http.StatusOK {
						t.Errorf("Back to Toloka led to %s (%d), want %s", back.URL, back.Status, wantBack)
					}
				})
			}
		})
	}
}

// A 429 or 503 page retries by itself when Retry-After says: the browser
// lands again after that many seconds (not before), and a landing that now
// succeeds takes the Toloker to the platform.
func TestPagesRetryInChromium(t *testing.T) {
	browser := startChromium(t)
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>The platform</title><h1>Welcome</h1>`)
	}))
	t.Cleanup(platform.Close)
	for _, tc := range []struct {
		name   string
		status int
		err    error
	}{
		{"503", http.StatusServiceUnavailable, &serviceerror.Unavailable{Message: "toloka: down", RetryAfter: time.Second}},
		{"429", http.StatusTooManyRequests, &session.BudgetError{RetryAfter: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aid := assignmentOf("unavailable")
			var mu sync.Mutex
			landings := 0
			sessions := &pageSessions{land: func(string) (*session.Landing, error) {
				mu.Lock()
				defer mu.Unlock()
				if landings++; landings == 1 {
					return nil, tc.err
				}
				return &session.Landing{RedirectURL: platform.URL + "/work?code=abc"}, nil
			}}
			counter := &countingServer{counts: map[string]int{}, times: map[string][]time.Time{}}
			start := servePagesWith(t, sessions, counter.wrap)
			tb := openTab(t, browser, "en")

			ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
			defer cancel()
			var first *network.Response
			landed, err := chromedp.Run(ctx, chromedp.WaitEvent(page.FrameNavigated,
				func(ev page.EventFrameNavigated) bool { return strings.HasPrefix(ev.Frame.URL, platform.URL) },
				func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
					resp, err := chromedp.NavigateResponse(start+"?assignment_id="+aid)(ctx, tg)
					first = resp
					return chromedp.Void{}, err
				}))
			if err != nil {
				t.Fatalf("the page did not take the Toloker to the platform within %s: %v", browserWait, err)
			}
			if first.Status != int64(tc.status) || headerOf(first, "Retry-After") != "1" {
				t.Errorf("first landing: %d, Retry-After %q; want %d, 1", first.Status, headerOf(first, "Retry-After"), tc.status)
			}
			if landed.Frame.URL != platform.URL+"/work?code=abc" {
				t.Errorf("landed at %s", landed.Frame.URL)
			}
			counter.mu.Lock()
			times := counter.times[aid+" en"]
			counter.mu.Unlock()
			if len(times) != 2 {
				t.Fatalf("%d landings, want 2 (the page, then its retry)", len(times))
			}
			if gap := times[1].Sub(times[0]); gap < time.Second {
				t.Errorf("the retry came %s after the page, before the second Retry-After asked for", gap)
			}
			if v := tb.cspViolations(); len(v) > 0 {
				t.Errorf("CSP violations: %q", v)
			}
		})
	}
}
