package gateway

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// CROWDGATE_CORS_ORIGINS takes origins as browsers send them; anything
// else stops the gateway with one error naming the variable.
func TestCORSOriginsSetting(t *testing.T) {
	load := func(v string) (Config, error) {
		return Load(nil, func(k string) string {
			if k == "CROWDGATE_CORS_ORIGINS" {
				return v
			}
			return ""
		}, io.Discard)
	}
	for v, want := range map[string][]string{
		"":                         nil,
		" , ":                      nil,
		"https://dash.example.com": {"https://dash.example.com"},
		"https://Dash.Example.com, http://localhost:3000,https://*.partner.example": {"https://dash.example.com", "http://localhost:3000", "https://*.partner.example"},
		"*": {"*"},
		// Browsers never send a scheme's default port: it is dropped, or
		// the origin would never match.
		"https://dash.example.com:443, http://localhost:80, https://dash.example.com:8443": {"https://dash.example.com", "http://localhost", "https://dash.example.com:8443"},
		"http://[::1]:3000, http://[::1]:80":                                               {"http://[::1]:3000", "http://[::1]"},
	} {
		cfg, err := load(v)
		if err != nil || !slices.Equal(cfg.CORS.Origins, want) {
			t.Errorf("CROWDGATE_CORS_ORIGINS=%q: %q, %v; want %q", v, cfg.CORS.Origins, err, want)
		}
	}
	for _, v := range []string{
		"https://dash.example.com/", "https://dash.example.com/app", "dash.example.com", "ftp://dash.example.com",
		"null", "https://dash.example.com?x=1", "https://user@dash.example.com", "https://*.*.example.com",
		"*, https://dash.example.com",
		// A star is a whole leftmost label (any subdomain): glued to the
		// domain it would allow https://evilexample.com too.
		"https://*example.com", "https://*", "https://dash.*.example.com", "https://*.com:*",
	} {
		_, err := load(v)
		if err == nil || !strings.Contains(err.Error(), "CROWDGATE_CORS_ORIGINS") {
			t.Errorf("CROWDGATE_CORS_ORIGINS=%q: %v, want an error naming the variable", v, err)
		}
	}
}
