// Package weburl holds what several services ask of a URL. Origin is the
// one so far: a platform's default token audience is its URL's origin, and
// an event names a webhook endpoint by its origin, never by the path or
// query that may carry a capability secret.
package weburl

import "net/url"

// Origin is a URL's scheme://host[:port], without user info, path, query
// or fragment; "" for a URL that does not parse or names no host.
func Origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
