package weburl

import "testing"

func TestOriginKeepsSchemeHostAndPortOnly(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://hooks.example.com/services/T0/B0/secret?token=x#f", "https://hooks.example.com"},
		{"https://me:pw@platform.example.org:8443/start", "https://platform.example.org:8443"},
		{"http://127.0.0.1:9000/hook", "http://127.0.0.1:9000"},
		{"/relative/path", ""},
		{"%zz", ""},
	} {
		if got := Origin(tc.in); got != tc.want {
			t.Errorf("Origin(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
