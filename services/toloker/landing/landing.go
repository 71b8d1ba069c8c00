// Package landing is where Toloka sends a Toloker who clicks Start:
// GET /start?assignment_id=... on Crowdgate's public URL.
//
// The landing checks the assignment id's shape, applies per-IP and
// per-assignment rate limits, and asks the session service for the
// assignment's session. The limits are counted in each replica's memory on
// every landing; a landing that finds no session (the assignment's first,
// or one Toloka already refused) is also counted against the same limits
// shared by every replica through Redis, so that no client spends a
// requester's Toloka quota faster than the limits allow, however many
// replicas it reaches. On success it
// redirects (303) to the project's registered platform URL with a one-time
// code, never to a URL taken from the request, and never with a token in the
// URL. Everything else is a small HTML page with the right status: 400 for
// a malformed id, 404 for an unknown or foreign one, 409 for work already
// submitted or bound to another Toloker, 410 for an expired or skipped
// assignment, an ended session or an archived pool or project, 403 for a
// banned Toloker, 429 with Retry-After when a limit is hit (or the pool's
// budget of assignment ids Toloka does not know is spent), 503 with
// Retry-After when Toloka or Redis cannot be reached. No error ever shows a
// stack trace or a 500. Every page is in the Toloker's language, leads back
// to Toloka, names the task where Crowdgate's records know it, and on 429
// and 503 offers "Try again" and retries by itself when Retry-After says
// (pages.go; the wording is in messages/).
//
// A repeat landing (a reload, a double click) is answered with one Redis
// GET (the session; the one-time code needs no storage), with no template
// work.
package landing

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/settings"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// Sessions starts or finds an assignment's session; *session.Service
// implements it.
type Sessions interface {
	// Find answers a repeat landing from Redis alone, or returns
	// session.ErrNoSession.
	Find(ctx context.Context, assignmentID string) (*session.Landing, error)
	// Land returns where to send the Toloker who landed with assignmentID,
	// asking Toloka when the assignment has no session yet. The handler
	// calls it once Find has answered session.ErrNoSession.
	Land(ctx context.Context, assignmentID string) (*session.Landing, error)
}

// Limiter reserves rate-limit slots; *ratelimit.Limiter (built with a
// negative MaxWait, so it never sleeps) implements it.
type Limiter interface {
	// Wait reserves a slot in every limit under key, or returns a
	// *serviceerror.ResourceExhausted.
	Wait(ctx context.Context, key string, limits ...ratelimit.Limit) error
}

// sharedIPLimit reserves a landing in the address's limit every replica
// shares (its own key, so the limits spread over a Redis Cluster's slots).
// The assignment's shared limit is the session service's: reserved in the
// assignment's slot by the same script that takes its resolve lock
// (session.Config.PerAssignment, which the gateway sets to this handler's
// PerAssignment). A landing the address's limit refuses costs the
// assignment nothing; one the assignment's refuses has spent a slot of the
// address's, which counts the landings tried from it.
func (h *Handler) sharedIPLimit(r *http.Request, perIP ratelimit.Limit) error {
	return h.cfg.Limiter.Wait(r.Context(), "landing-"+perIP.Name, perIP)
}

// Settings are the landing's limits. A Toloker clicks Start once, maybe
// reloads a few times; many Tolokers may share one address (mobile
// carriers' NAT).
type Settings struct {
	// PerIP limits landings per client address; PerAssignment, per
	// assignment. Only their Rate, Per and Burst are used.
	PerIP, PerAssignment ratelimit.Limit
	// TrustedProxies are the load balancers whose X-Forwarded-For is
	// believed (see ClientIP); none by default.
	TrustedProxies []netip.Prefix
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	rate := func(p *ratelimit.Limit) flag.Value {
		return settings.Func(p, ratelimit.ParseRate, ratelimit.Limit.RateString)
	}
	return []settings.Setting{
		settings.New("landing-limit-ip", "CROWDGATE_LANDING_LIMIT_IP", "10/s,burst=60",
			"landings per client address: RATE/PERIOD,burst=N with PERIOD s, m, h or a duration", rate(&s.PerIP)),
		settings.New("landing-limit-assignment", "CROWDGATE_LANDING_LIMIT_ASSIGNMENT", "30/m,burst=10",
			"landings per assignment, in the same form", rate(&s.PerAssignment)),
		settings.New("trusted-proxies", "CROWDGATE_TRUSTED_PROXIES", "",
			"comma-separated CIDRs of the proxies whose X-Forwarded-For is believed (the load balancer); empty: the connection's address counts",
			settings.Func(&s.TrustedProxies, ParsePrefixes, FormatPrefixes)),
	}
}

// ParsePrefixes reads comma-separated CIDRs ("10.0.0.0/8, 192.0.2.7/32");
// a bare address is a /32 or /128.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("want comma-separated CIDRs such as 10.0.0.0/8, got %q", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// FormatPrefixes writes CIDRs as ParsePrefixes reads them.
func FormatPrefixes(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// DefaultSettings returns the settings' built-in defaults.
func DefaultSettings() Settings {
	var s Settings
	settings.Defaults(s.List())
	return s
}

// WithDefaults returns s with the built-in default for each limit not set.
func (s Settings) WithDefaults() Settings {
	def := DefaultSettings()
	if s.PerIP.Rate == 0 {
		s.PerIP = def.PerIP
	}
	if s.PerAssignment.Rate == 0 {
		s.PerAssignment = def.PerAssignment
	}
	return s
}

// Config configures the landing.
type Config struct {
	// Sessions answers landings.
	Sessions Sessions
	// Limiter applies the per-address limit across replicas to landings
	// that find no session (those may ask Toloka); nil turns that off. The
	// per-assignment limit across replicas is the session service's
	// (session.Config.PerAssignment). Every landing is also counted against
	// both in this replica (ratelimit.Local).
	Limiter Limiter
	// Settings are the limits (the defaults where zero).
	Settings
	// ClientIP returns the client address a request is limited by
	// (ClientIP(Settings.TrustedProxies) when nil).
	ClientIP func(*http.Request) string
	// Log receives failures (never a secret).
	Log *slog.Logger
	// Metrics, when set, registers the landing's metrics.
	Metrics prometheus.Registerer
	// Pages describe an assignment's task on the pages that may name it
	// (the partner's and the task's names, where "Back to Toloka" leads):
	// Sessions when nil and it implements PageInfos (*session.Service
	// does); without either, the pages name no task and lead back to
	// session.DefaultSettings().DefaultReturnURL.
	Pages PageInfos
}

// Handler serves the landing.
type Handler struct {
	cfg       Config
	infos     PageInfos
	returnURL string // where "Back to Toloka" leads when no project is known
	local     *ratelimit.Local
	outcomes  map[string]prometheus.Counter
	duration  prometheus.Observer
}

// Outcomes counted by crowdgate_landings_total.
const (
	outcomeRedirect    = "redirect"
	outcomeBadRequest  = "bad_request"
	outcomeNotFound    = "not_found"
	outcomeNotActive   = "not_active"
	outcomeEnded       = "ended"
	outcomeConflict    = "conflict"
	outcomeRateLimited = "rate_limited"
	outcomeUnavailable = "unavailable"
	outcomeClosed      = "closed"
	outcomeBanned      = "banned"
)

// New returns the landing handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Sessions == nil {
		return nil, errors.New("landing: Config.Sessions is nil")
	}
	cfg.Settings = cfg.Settings.WithDefaults()
	for _, l := range []ratelimit.Limit{cfg.PerIP, cfg.PerAssignment} {
		if l.Rate < 1 || l.Per <= 0 || l.Burst < 1 {
			return nil, fmt.Errorf("landing: a limit needs a positive rate, period and burst, got %d per %s, burst %d", l.Rate, l.Per, l.Burst)
		}
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = ClientIP(cfg.TrustedProxies)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crowdgate_landings_total",
		Help: "Toloker landings (GET /start), by outcome.",
	}, []string{"outcome"})
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "crowdgate_landing_seconds",
		Help:    "Time to answer a landing.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(counter); err != nil {
			return nil, err
		}
		if err := cfg.Metrics.Register(hist); err != nil {
			return nil, err
		}
	}
	h := &Handler{cfg: cfg, local: ratelimit.NewLocal(ratelimit.LocalConfig{}), outcomes: map[string]prometheus.Counter{}, duration: hist}
	h.infos = cfg.Pages
	if h.infos == nil {
		h.infos, _ = cfg.Sessions.(PageInfos)
	}
	h.returnURL = session.DefaultSettings().DefaultReturnURL
	if h.infos != nil && h.infos.DefaultReturnURL() != "" {
		h.returnURL = h.infos.DefaultReturnURL()
	}
	for _, o := range []string{outcomeRedirect, outcomeBadRequest, outcomeNotFound, outcomeNotActive, outcomeEnded,
		outcomeConflict, outcomeRateLimited, outcomeUnavailable, outcomeClosed, outcomeBanned} {
		h.outcomes[o] = counter.WithLabelValues(o)
	}
	return h, nil
}

// RemoteIP is the connection's remote address without the port.
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host
}

// ClientIP returns the function that names the client of a request for
// the limits: the connection's address, unless it is one of the trusted
// proxies; then X-Forwarded-For is read right to left, every trusted hop
// is skipped, and the first untrusted address is the client (the leftmost
// when every hop is trusted). An entry that is not an address ends the
// walk at the hop that wrote it. With no trusted proxies a client cannot
// choose its address by writing the header.
func ClientIP(trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer := RemoteIP(r)
		addr, err := netip.ParseAddr(peer)
		if err != nil || len(trusted) == 0 || !isTrusted(addr) {
			return peer
		}
		client := peer
		values := r.Header.Values("X-Forwarded-For")
		for i := len(values) - 1; i >= 0; i-- {
			hops := strings.Split(values[i], ",")
			for j := len(hops) - 1; j >= 0; j-- {
				a, ok := forwardedAddr(strings.TrimSpace(hops[j]))
				if !ok {
					return client
				}
				client = a.String()
				if !isTrusted(a) {
					return client
				}
			}
		}
		return client
	}
}

// forwardedAddr is the address of an X-Forwarded-For entry: an address,
// or one with the client's port ("203.0.113.9:51234", "[2001:db8::1]:443"),
// as some proxies write it; false for anything else (a zone included).
func forwardedAddr(hop string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(hop)
	if err != nil {
		ap, perr := netip.ParseAddrPort(hop)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a, a.Zone() == ""
}

// isIP reports whether s is an IP address (v4 or v6, without a zone).
func isIP(s string) bool {
	addr, err := netip.ParseAddr(s)
	return err == nil && addr.Zone() == ""
}

// ServeHTTP answers GET /start?assignment_id=...
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.cfg.Log.Error("panic in the landing", "panic", p, "stack", string(debug.Stack()))
			h.page(w, r, outcomeUnavailable, http.StatusServiceUnavailable, defaultRetry, pageUnavailable, session.PageInfo{})
		}
		h.duration.Observe(time.Since(start).Seconds())
	}()
	hdr := w.Header()
	hdr["Cache-Control"] = noStore
	hdr["Referrer-Policy"] = noReferrer

	aid := assignmentID(r.URL.RawQuery)
	if _, ok := toloka.ParseAssignmentID(aid); !ok {
		h.page(w, r, outcomeBadRequest, http.StatusBadRequest, 0, pageMalformed, session.PageInfo{})
		return
	}
	perIP, perAsg := h.cfg.PerIP, h.cfg.PerAssignment
	perIP.Name, perAsg.Name = limitName("ip-", h.cfg.ClientIP(r)), "asg-"+aid
	if retry, ok := h.local.Allow(perIP, perAsg); !ok {
		h.page(w, r, outcomeRateLimited, http.StatusTooManyRequests, retrySeconds(retry), pageRateLimited, session.PageInfo{})
		return
	}
	l, err := h.cfg.Sessions.Find(r.Context(), aid)
	if errors.Is(err, session.ErrNoSession) {
		if h.cfg.Limiter != nil {
			if err := h.sharedIPLimit(r, perIP); err != nil {
				var re *serviceerror.ResourceExhausted
				if errors.As(err, &re) {
					h.page(w, r, outcomeRateLimited, http.StatusTooManyRequests, retrySeconds(re.RetryAfter), pageRateLimited, session.PageInfo{})
					return
				}
				h.fail(w, r, aid, err)
				return
			}
		}
		// The client's share of the pool's budget of unknown ids is
		// counted by the name its address limit has (an IPv6 /64).
		l, err = h.cfg.Sessions.Land(session.WithClient(r.Context(), strings.TrimPrefix(perIP.Name, "ip-")), aid)
	}
	if err != nil {
		h.fail(w, r, aid, err)
		return
	}
	hdr["Location"] = []string{l.RedirectURL}
	w.WriteHeader(http.StatusSeeOther)
	h.outcomes[outcomeRedirect].Inc()
}

var (
	noStore    = []string{"no-store"}
	noReferrer = []string{"no-referrer"}
)

// assignmentID is the first assignment_id parameter of a raw query, as
// url.Values.Get reads it, without building the whole url.Values (a
// landing's hot path).
func assignmentID(rawQuery string) string {
	const key = "assignment_id"
	for q := rawQuery; q != ""; {
		var part string
		part, q, _ = strings.Cut(q, "&")
		if strings.ContainsAny(part, "%+;") { // escapes or a semicolon: the general path
			return queryGet(rawQuery, key)
		}
		if k, v, _ := strings.Cut(part, "="); k == key {
			return v
		}
	}
	return ""
}

func queryGet(rawQuery, key string) string {
	v, _ := url.ParseQuery(rawQuery)
	return v.Get(key)
}

// limitName makes a client address usable as a limit name (no braces or
// whitespace; bounded length), in its canonical form so that one address
// written two ways is one limit. An IPv6 client is its /64: every client
// holds at least that many addresses (privacy addresses, a cloud VM's
// range), and would otherwise get a limit per address it picks.
func limitName(prefix, ip string) string {
	if addr, err := netip.ParseAddr(ip); err == nil {
		addr = addr.Unmap().WithZone("")
		if addr.Is6() {
			addr = netip.PrefixFrom(addr, 64).Masked().Addr()
		}
		var buf [64]byte
		return string(addr.AppendTo(append(buf[:0], prefix...)))
	}
	b := []byte(ip)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if c == '{' || c == '}' || c <= ' ' || c >= 0x7f {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return prefix + "unknown"
	}
	return prefix + string(b)
}

// fail answers an error from the session service.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, aid string, err error) {
	var (
		notActive *session.NotActiveError
		ended     *session.EndedError
		nf        *serviceerror.NotFound
		ia        *serviceerror.InvalidArgument
		fp        *serviceerror.FailedPrecondition
		re        *serviceerror.ResourceExhausted
	)
	var (
		closed  *session.ClosedError
		budget  *session.BudgetError
		banned  *session.BannedError
		limited *session.LimitedError
	)
	switch {
	case errors.As(err, &limited):
		h.page(w, r, outcomeRateLimited, http.StatusTooManyRequests, retrySeconds(limited.Exhausted.RetryAfter), pageRateLimited, session.PageInfo{})
	case errors.As(err, &banned):
		h.page(w, r, outcomeBanned, http.StatusForbidden, 0, pageBanned, h.describe(r, aid))
	case errors.As(err, &closed):
		h.page(w, r, outcomeClosed, http.StatusGone, 0, pageClosed, h.describe(r, aid))
	case errors.As(err, &budget):
		h.page(w, r, outcomeRateLimited, http.StatusTooManyRequests, retrySeconds(budget.RetryAfter), pageRateLimited, session.PageInfo{})
	case errors.As(err, &notActive):
		switch toloka.AssignmentStatus(notActive.Status) {
		case toloka.AssignmentExpired:
			h.page(w, r, outcomeNotActive, http.StatusGone, 0, pageExpired, h.describe(r, aid))
		case toloka.AssignmentSkipped:
			h.page(w, r, outcomeNotActive, http.StatusGone, 0, pageSkipped, h.describe(r, aid))
		default:
			h.page(w, r, outcomeNotActive, http.StatusConflict, 0, pageSubmitted, h.describe(r, aid))
		}
	case errors.As(err, &ended):
		outcome, status, p := outcomeEnded, http.StatusGone, pageEnded
		switch ended.Session.GetEndReason() {
		case crowdgatev1.EndReason_END_REASON_EXPIRED:
			p = pageSessionExpired
		case crowdgatev1.EndReason_END_REASON_RESTRICTED, crowdgatev1.EndReason_END_REASON_FILTERED_OUT:
			// Toloka answered the Toloker's submit that they may not work
			// on the task: not "finished, thank you". (A revoked session
			// keeps the ended page: the ban that revoked it may be lifted
			// since, and the page would then blame a refusal that is over.)
			outcome, status, p = outcomeBanned, http.StatusForbidden, pageBanned
		}
		info := h.describe(r, aid)
		if u := ended.Session.GetReturnUrl(); u != "" {
			info.ReturnURL = u // the session's own, even when the look-up failed
		}
		h.page(w, r, outcome, status, 0, p, info)
	case errors.As(err, &ia):
		h.page(w, r, outcomeBadRequest, http.StatusBadRequest, 0, pageMalformed, session.PageInfo{})
	case errors.As(err, &nf):
		h.page(w, r, outcomeNotFound, http.StatusNotFound, 0, pageNotFound, session.PageInfo{})
	case errors.As(err, &fp):
		h.cfg.Log.Warn("landing refused", "assignment_id", aid, "err", err)
		h.page(w, r, outcomeConflict, http.StatusConflict, 0, pageConflict, h.describe(r, aid))
	case errors.As(err, &re):
		h.page(w, r, outcomeUnavailable, http.StatusServiceUnavailable, retrySeconds(re.RetryAfter), pageUnavailable, session.PageInfo{})
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The Toloker went away; nobody reads the answer.
		h.page(w, r, outcomeUnavailable, http.StatusServiceUnavailable, defaultRetry, pageUnavailable, session.PageInfo{})
	default:
		h.cfg.Log.Warn("landing unavailable", "assignment_id", aid, "err", err)
		// Toloka's or Redis's own retry hint, when the error has one.
		retry := defaultRetry
		if un := (*serviceerror.Unavailable)(nil); errors.As(err, &un) && un.RetryAfter > 0 {
			retry = retrySeconds(un.RetryAfter)
		}
		h.page(w, r, outcomeUnavailable, http.StatusServiceUnavailable, retry, pageUnavailable, session.PageInfo{})
	}
}

// defaultRetry is the Retry-After, in seconds, of a 503 whose cause gives
// no time.
const defaultRetry = 5
