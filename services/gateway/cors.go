package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/cors"

	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/settings"
	"github.com/crowdgate/crowdgate/services/platform/token"
)

// CORSSettings say which web pages on other origins (partner dashboards)
// may call the REST API from a browser.
//
// The REST API authenticates with a bearer key in the Authorization
// header, never with cookies or HTTP authentication, so a cross-origin
// call needs no credentials mode: Crowdgate never answers
// Access-Control-Allow-Credentials. That also makes "*" safe to allow (a
// page can only use a key it already holds), though a list of the
// dashboards' origins is the better choice.
type CORSSettings struct {
	// Origins are the allowed origins ("https://dash.example.com",
	// "https://*.example.com"), or "*" for any. None by default: no
	// cross-origin access at all.
	Origins []string
}

// List returns the settings as configuration entries.
func (s *CORSSettings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("cors-origins", "CROWDGATE_CORS_ORIGINS", "",
			"comma-separated origins (https://dash.example.com, https://*.example.com, or * for any) whose web pages may call the REST API, /openapi.json and the JWKS from a browser; empty: none",
			settings.Func(&s.Origins, ParseOrigins, func(o []string) string { return strings.Join(o, ",") })),
	}
}

// ParseOrigins reads comma-separated origins: scheme://host[:port] with
// scheme http or https, no path, a host whose first label may be * (any
// subdomain), or "*" alone. Origins are written as browsers send them:
// lower case, without the scheme's default port.
func ParseOrigins(v string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(v, ",") {
		o := strings.TrimSpace(part)
		if o == "" {
			continue
		}
		if o == "*" {
			out = append(out, o)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return nil, fmt.Errorf("want origins such as https://dash.example.com (scheme and host, no path or trailing slash), got %q", o)
		}
		host := strings.ToLower(u.Hostname())
		if rest, sub := strings.CutPrefix(host, "*."); strings.Contains(rest, "*") || (!sub && strings.Contains(host, "*")) || rest == "" {
			// rs/cors matches a star against any text: glued to the
			// domain (https://*example.com) it would allow
			// https://evilexample.com too.
			return nil, fmt.Errorf("a * stands for any subdomain and must be the whole first label (https://*.example.com), got %q", o)
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]" // an IPv6 address
		}
		if port := u.Port(); port != "" && !(u.Scheme == "https" && port == "443") && !(u.Scheme == "http" && port == "80") {
			host += ":" + port
		} // a browser never sends its scheme's default port
		out = append(out, u.Scheme+"://"+host)
	}
	for _, o := range out {
		if o == "*" && len(out) > 1 {
			return nil, fmt.Errorf("* allows every origin: give it alone, got %q", v)
		}
	}
	return out, nil
}

// corsMethods are the REST API's methods.
var corsMethods = []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete}

// withCORS answers CORS for the paths a dashboard calls (the REST API under
// /v1/, /openapi.json and the JWKS), from the allowed origins only: a
// preflight gets 204 with Access-Control-Allow-Origin, -Methods, -Headers
// (Authorization, Content-Type and the tenant header) and -Max-Age, an
// actual request Access-Control-Allow-Origin and the headers it may read
// (Retry-After, WWW-Authenticate). A preflight from another origin gets
// 204 without them, so the browser refuses the call. With no origins,
// nothing changes: no CORS header anywhere, and a preflight is what any
// OPTIONS request is (405 with Allow on the REST API). gateway.go wraps
// the HTTP mux in it, with newCORS's answer (nil: no origins).
func withCORS(c *cors.Cors, h http.Handler) http.Handler {
	if c == nil {
		return h
	}
	withHeaders := c.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if corsPath(r.URL.Path) {
			withHeaders.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// newCORS returns the CORS handling of the allowed origins, nil when there
// are none: the one description of which origins may call, which withCORS
// answers with and refuseCrossOrigin asks.
func newCORS(s CORSSettings) *cors.Cors {
	if len(s.Origins) == 0 {
		return nil
	}
	return cors.New(cors.Options{
		AllowedOrigins:   s.Origins,
		AllowedMethods:   corsMethods,
		AllowedHeaders:   []string{"Authorization", "Content-Type", access.RESTTenantHeader},
		ExposedHeaders:   []string{"Retry-After", "WWW-Authenticate"},
		MaxAge:           600,
		AllowCredentials: false, // see CORSSettings
	})
}

// corsPath reports whether a path is one dashboards may call cross-origin.
func corsPath(p string) bool {
	return strings.HasPrefix(p, "/v1/") || p == "/openapi.json" || p == token.JWKSPath
}
