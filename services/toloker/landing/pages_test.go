package landing_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
	"github.com/crowdgate/crowdgate/services/toloker/session"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// tolokaTasks is where a page leads back to when no project is known.
const tolokaTasks = "https://toloka.ai/tasks"

// doc is a parsed page, read the way a user (or a screen reader) would.
type doc struct{ root *html.Node }

func parsePage(t *testing.T, body string) doc {
	t.Helper()
	root, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the page is not HTML: %v", err)
	}
	return doc{root}
}

// all returns the elements for which match holds, in document order.
func (d doc) all(match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	return out
}

func (d doc) tag(name string) []*html.Node {
	return d.all(func(n *html.Node) bool { return n.Data == name })
}

func (d doc) byID(id string) *html.Node {
	if ns := d.all(func(n *html.Node) bool { return attr(n, "id") == id }); len(ns) > 0 {
		return ns[0]
	}
	return nil
}

func attr(n *html.Node, name string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, name string) bool {
	for _, a := range n.Attr {
		if a.Key == name {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(sb.String())
}

// refresh is the page's automatic retry (a meta refresh), "" for none.
func (d doc) refresh() string {
	for _, m := range d.tag("meta") {
		if strings.EqualFold(attr(m, "http-equiv"), "refresh") {
			return attr(m, "content")
		}
	}
	return ""
}

// wording is a language's message file, as a translator wrote it.
type wording struct {
	Language  string                     `json:"language"`
	Direction string                     `json:"direction"`
	Messages  map[string]json.RawMessage `json:"messages"`
}

func readWording(t testing.TB, lang string) wording {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("messages", lang+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var w wording
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

// text returns a plain text of the file.
func (w wording) text(t testing.TB, key string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(w.Messages[key], &s); err != nil {
		t.Fatalf("%s.json: %q is not a plain text", w.Language, key)
	}
	return s
}

// pages are every page, with what they must offer.
var pages = []struct {
	page   string
	status int
	retry  bool // a "Try again" button and an automatic retry
	named  bool // names the task when Crowdgate's records know it
}{
	{"malformed", http.StatusBadRequest, false, false},
	{"not_found", http.StatusNotFound, false, false},
	{"submitted", http.StatusConflict, false, true},
	{"expired", http.StatusGone, false, true},
	{"skipped", http.StatusGone, false, true},
	{"banned", http.StatusForbidden, false, true},
	{"closed", http.StatusGone, false, true},
	{"ended", http.StatusGone, false, true},
	{"session_expired", http.StatusGone, false, true},
	{"conflict", http.StatusConflict, false, true},
	{"rate_limited", http.StatusTooManyRequests, true, false},
	{"unavailable", http.StatusServiceUnavailable, true, false},
}

// assignmentOf is an assignment id whose landing shows page (a malformed
// id for "malformed").
func assignmentOf(page string) string {
	if page == "malformed" {
		return "not-an-assignment"
	}
	for i, p := range pages {
		if p.page == page {
			return "0000000007--" + strings.Repeat("0", 22) + strconv.Itoa(10+i)
		}
	}
	panic(page)
}

// pageSessions answers each assignment of assignmentOf with what leads
// to its page, and describes tasks from its "records" (infos).
type pageSessions struct {
	infos map[string]session.PageInfo // by assignment id
	// defaultReturn is DefaultReturnURL (tolokaTasks when empty);
	// endedReturn, the return URL of the ended sessions.
	defaultReturn, endedReturn string
	// retryAfter is the wait of the 429 and 503 answers (30 s and 5 s when
	// zero).
	retryAfter time.Duration
	// land, when set, answers every landing instead.
	land func(aid string) (*session.Landing, error)
}

// answer is the session service's answer that leads to page.
func (s *pageSessions) answer(page string) error {
	endedReturn := s.endedReturn
	if endedReturn == "" {
		endedReturn = "https://toloka.ai/tasks?from=ended"
	}
	limited, unavailable := 30*time.Second, 5*time.Second
	if s.retryAfter > 0 {
		limited, unavailable = s.retryAfter, s.retryAfter
	}
	switch page {
	case "submitted":
		return &session.NotActiveError{Status: "SUBMITTED"}
	case "expired":
		return &session.NotActiveError{Status: "EXPIRED"}
	case "skipped":
		return &session.NotActiveError{Status: "SKIPPED"}
	case "banned":
		return &session.BannedError{Scope: "project"}
	case "closed":
		return &session.ClosedError{What: "pool"}
	case "ended":
		return &session.EndedError{Session: &crowdgatev1.Session{EndReason: crowdgatev1.EndReason_END_REASON_CLOSE_SESSION, ReturnUrl: endedReturn}}
	case "session_expired":
		return &session.EndedError{Session: &crowdgatev1.Session{EndReason: crowdgatev1.EndReason_END_REASON_EXPIRED, ReturnUrl: endedReturn}}
	case "conflict":
		return serviceerror.NewFailedPrecondition("bound to another Toloker")
	case "rate_limited":
		return &session.BudgetError{RetryAfter: limited}
	case "unavailable":
		return &serviceerror.Unavailable{Message: "toloka: down", RetryAfter: unavailable}
	}
	return &serviceerror.NotFound{Resource: "assignment", ID: page}
}

func (s *pageSessions) Find(context.Context, string) (*session.Landing, error) {
	return nil, session.ErrNoSession
}

func (s *pageSessions) Land(_ context.Context, aid string) (*session.Landing, error) {
	if s.land != nil {
		return s.land(aid)
	}
	for _, p := range pages {
		if assignmentOf(p.page) == aid {
			return nil, s.answer(p.page)
		}
	}
	return nil, &serviceerror.NotFound{Resource: "assignment", ID: aid}
}

func (s *pageSessions) PageInfo(_ context.Context, aid string) (session.PageInfo, error) {
	if info, ok := s.infos[aid]; ok {
		return info, nil
	}
	return session.PageInfo{ReturnURL: s.DefaultReturnURL()}, nil
}

func (s *pageSessions) DefaultReturnURL() string {
	if s.defaultReturn != "" {
		return s.defaultReturn
	}
	return tolokaTasks
}

// servePages serves a landing over s at /start.
func servePages(t *testing.T, s landing.Sessions) string {
	t.Helper()
	return servePagesWith(t, s, nil)
}

// servePagesWith is servePages with wrap around the landing.
func servePagesWith(t *testing.T, s landing.Sessions, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	// Loose limits: the tests land on one assignment many times.
	loose := ratelimit.Limit{Rate: 10000, Per: time.Second, Burst: 10000}
	h, err := landing.New(landing.Config{Sessions: s, Log: slog.New(slog.DiscardHandler),
		Settings: landing.Settings{PerIP: loose, PerAssignment: loose}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /start", h)
	var root http.Handler = mux
	if wrap != nil {
		root = wrap(mux)
	}
	srv := httptest.NewServer(root)
	t.Cleanup(srv.Close)
	return srv.URL + "/start"
}

// A Toloker reads the page in the language their browser asks for, as
// golang.org/x/text/language matches it (regions, old codes, preference
// order, q=0), with English when nothing matches.
func TestPagesSpeakTheTolokersLanguage(t *testing.T) {
	start := servePages(t, &pageSessions{})
	for _, tc := range []struct {
		acceptLanguage string
		lang, dir      string
	}{
		{"ru", "ru", "ltr"},
		{"ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru", "ltr"},
		{"es-419,es;q=0.9", "es", "ltr"},
		{"tr-TR", "tr", "ltr"},
		{"pt-BR", "pt", "ltr"},
		{"pt-PT", "pt", "ltr"},
		{"id-ID", "id", "ltr"},
		{"in", "id", "ltr"}, // Indonesian's old code
		{"ar-EG,ar;q=0.9", "ar", "rtl"},
		{"ar", "ar", "rtl"},
		{"de-DE, pt;q=0.5", "pt", "ltr"},        // the first language offered
		{"fr, en;q=0.9, ru;q=0.8", "en", "ltr"}, // the Toloker's order wins
		{"ru;q=0, es", "es", "ltr"},             // q=0 means "not this one"
		{"fr", "en", "ltr"},
		{"uk", "en", "ltr"}, // no Ukrainian file: not Russian by guesswork
		{"", "en", "ltr"},
		{"garbage;;,", "en", "ltr"},
		// One entry that does not parse spoils no other.
		{"es-ES,es;q=0.9,en;q=0.8,zz_invalid__tag;q=0.1", "es", "ltr"},
		{"xx_bad, ru;q=0.9", "ru", "ltr"},
	} {
		t.Run(tc.acceptLanguage, func(t *testing.T) {
			a := get(t, noRedirects, start+"?assignment_id="+assignmentOf("not_found"), "Accept-Language", tc.acceptLanguage)
			want := readWording(t, tc.lang).text(t, "not_found.title")
			checkPage(t, a, http.StatusNotFound, want)
			d := parsePage(t, a.body)
			htmlEl := d.tag("html")[0]
			if attr(htmlEl, "lang") != tc.lang || attr(htmlEl, "dir") != tc.dir {
				t.Errorf(`<html lang=%q dir=%q>, want lang=%q dir=%q`, attr(htmlEl, "lang"), attr(htmlEl, "dir"), tc.lang, tc.dir)
			}
			if got := a.header.Get("Content-Language"); got != tc.lang {
				t.Errorf("Content-Language %q, want %q", got, tc.lang)
			}
			if !strings.Contains(a.header.Get("Vary"), "Accept-Language") {
				t.Errorf("Vary %q does not name Accept-Language", a.header.Get("Vary"))
			}
		})
	}
}

// Every page offers a way on: "Back to Toloka" (the project's return URL
// where Crowdgate knows it, Toloka's task list otherwise), and on 429 and
// 503 a "Try again" button and an automatic retry at the time Retry-After
// says, which the text states with the same number.
func TestEveryPageLeadsOn(t *testing.T) {
	const projectReturn = "https://toloka.ai/tasks?project=42"
	infos := map[string]session.PageInfo{}
	for _, p := range pages {
		if p.named {
			infos[assignmentOf(p.page)] = session.PageInfo{PartnerName: "Acme Labeling", PublicName: "Label street signs", ReturnURL: projectReturn}
		}
	}
	start := servePages(t, &pageSessions{infos: infos})
	for _, lang := range []string{"en", "ru", "ar"} {
		w := readWording(t, lang)
		for _, p := range pages {
			t.Run(lang+"/"+p.page, func(t *testing.T) {
				a := get(t, noRedirects, start+"?assignment_id="+assignmentOf(p.page), "Accept-Language", lang)
				checkPage(t, a, p.status, w.text(t, p.page+".title"))
				d := parsePage(t, a.body)
				if h1 := d.tag("h1"); len(h1) != 1 || text(h1[0]) != w.text(t, p.page+".title") {
					t.Errorf("%d headings (the first %q), want one: %q", len(h1), text(h1[0]), w.text(t, p.page+".title"))
				}
				back := d.byID("back")
				wantBack := tolokaTasks
				switch {
				case p.page == "ended" || p.page == "session_expired":
					wantBack = "https://toloka.ai/tasks?from=ended" // the session's own
				case p.named:
					wantBack = projectReturn
				}
				if back == nil || back.Data != "a" || attr(back, "href") != wantBack || text(back) != w.text(t, "back") {
					t.Errorf("back link %v href %q text %q, want %q to %s", back, attr(back, "href"), text(back), w.text(t, "back"), wantBack)
				}
				retry := d.byID("retry")
				if !p.retry {
					if retry != nil || d.refresh() != "" || a.header.Get("Retry-After") != "" {
						t.Errorf("a %s page retries: button %v, refresh %q, Retry-After %q", p.page, retry, d.refresh(), a.header.Get("Retry-After"))
					}
					return
				}
				after := a.header.Get("Retry-After")
				if after == "" || d.refresh() != after {
					t.Errorf("Retry-After %q, meta refresh %q: want the same number of seconds", after, d.refresh())
				}
				if retry == nil || retry.Data != "a" || !hasAttr(retry, "href") || attr(retry, "href") != "" || text(retry) != w.text(t, "retry") {
					t.Errorf("try-again link %v href %q text %q, want a link to this page", retry, attr(retry, "href"), text(retry))
				}
				note := text(d.byID("retry-note"))
				if !strings.Contains(note, " "+after+" ") && lang != "ar" {
					t.Errorf("the page says %q, Retry-After says %s", note, after)
				}
				if lang == "en" {
					if want := "in " + after + " seconds."; !strings.HasSuffix(note, want) || strings.Contains(a.body, "in a minute") {
						t.Errorf("the page says %q, want it to end %q", note, want)
					}
				}
			})
		}
	}
}

// A page names the task (its public name and partner) only from
// Crowdgate's records, through the session or the catalog; whatever the
// query string says is never shown.
func TestPagesNameTheTaskFromCrowdgatesRecords(t *testing.T) {
	simClock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Sim: func(c *tolokasim.Config) { c.Now = simClock.Now }})
	start := serveLanding(t, env, nil)
	pool := env.NewPool(t, tenant.Default, func(prj *crowdgatev1.Project, _ *crowdgatev1.Pool) {
		prj.PublicName, prj.PartnerName = "Label street signs", "Acme Labeling"
		prj.ReturnUrl = "https://toloka.ai/tasks?from=acme"
	})
	ended := env.StartAssignment(t, pool, "toloker-d")
	l, err := env.Sessions.Land(ctx, ended)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Sessions.End(ctx, tenant.Default, sess.GetSession().GetSessionId(), crowdgatev1.EndReason_END_REASON_CLOSE_SESSION); err != nil {
		t.Fatal(err)
	}
	submitted := env.StartAssignment(t, pool, "toloker-s")
	env.Submit(t, pool, "toloker-s", true)
	expired := env.StartAssignment(t, pool, "toloker-e")
	simClock.Advance(601 * time.Second)
	unknown := poolHex(pool.TolokaPoolId) + "--" + strings.Repeat("0", 24)
	archived := env.NewPool(t, tenant.Default, func(prj *crowdgatev1.Project, p *crowdgatev1.Pool) {
		prj.PublicName, prj.PartnerName = "Label street signs", "Acme Labeling"
		prj.ReturnUrl = "https://toloka.ai/tasks?from=acme"
		p.Status = crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED
	})
	closed := env.StartAssignment(t, archived, "toloker-c")

	const forged = "&public_name=Free+money&partner_name=Evil+Corp&return_url=https%3A%2F%2Fevil.example%2F"
	for _, tc := range []struct {
		name, aid, title string
		named            bool
		back             string
	}{
		{"an ended session (its record)", ended, "Your session has ended", true, "https://toloka.ai/tasks?from=acme"},
		{"an assignment already submitted (the catalog)", submitted, "Task already submitted", true, "https://toloka.ai/tasks?from=acme"},
		{"an expired assignment (the catalog)", expired, "Task expired", true, "https://toloka.ai/tasks?from=acme"},
		{"an assignment of an archived pool (the catalog)", closed, "Task closed", true, "https://toloka.ai/tasks?from=acme"},
		{"an unknown assignment", unknown, "Task not found", false, tolokaTasks},
		{"a malformed id", "x", "This link is not valid", false, tolokaTasks},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, noRedirects, start+"?assignment_id="+tc.aid+forged)
			checkPage(t, a, a.status, tc.title)
			for _, bad := range []string{"Free money", "Evil Corp", "evil.example"} {
				if strings.Contains(a.body, bad) {
					t.Errorf("the page shows %q from the query string", bad)
				}
			}
			d := parsePage(t, a.body)
			var shown []string
			for _, dd := range d.tag("dd") {
				shown = append(shown, text(dd))
			}
			if got, want := strings.Join(shown, ", "), map[bool]string{true: "Label street signs, Acme Labeling", false: ""}[tc.named]; got != want {
				t.Errorf("the page names %q, want %q", got, want)
			}
			if got := attr(d.byID("back"), "href"); got != tc.back {
				t.Errorf("back to %q, want %q", got, tc.back)
			}
		})
	}
}

// An Accept-Language list split over two header lines (RFC 9110 allows
// it) is read as one list.
func TestAnAcceptLanguageOverTwoLinesIsOneList(t *testing.T) {
	start := servePages(t, &pageSessions{})
	req, err := http.NewRequest(http.MethodGet, start+"?assignment_id="+assignmentOf("not_found"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Accept-Language", "xx")
	req.Header.Add("Accept-Language", "ru;q=0.9")
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Language"); got != "ru" {
		t.Errorf("Accept-Language xx, then ru;q=0.9 on a second line: page in %q, want ru", got)
	}
}
