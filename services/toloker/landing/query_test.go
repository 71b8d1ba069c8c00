package landing

import (
	"net/url"
	"testing"
)

// assignmentID must read a query exactly as url.Values.Get does.
func FuzzAssignmentID(f *testing.F) {
	for _, q := range []string{
		"", "assignment_id=0000000007--111111111111111111111111", "x=1&assignment_id=a&assignment_id=b",
		"assignment%5Fid=e", "assignment_id=a%2Bb", "assignment_id=a+b", "assignment_id", "assignment_id=",
		"a=1;assignment_id=x", "assignment_id=x;y=1", "&&assignment_id=z&", "assignment_id=%zz", "ASSIGNMENT_ID=q",
		"assignment_id=a=b", "user_id=mallory&assignment_id=c&redirect_url=https%3A%2F%2Fevil.example",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, _ := url.ParseQuery(q)
		if got, want := assignmentID(q), v.Get("assignment_id"); got != want {
			t.Errorf("assignmentID(%q) = %q, url.Values.Get says %q", q, got, want)
		}
	})
}

func TestLimitNameIsCanonical(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.7", "::ffff:192.0.2.7"},
		{"2001:db8::1", "2001:DB8:0:0::1"},
		{"2001:db8::1", "2001:db8::1%eth0"},
	} {
		if x, y := limitName("ip-", tc.a), limitName("ip-", tc.b); x != y {
			t.Errorf("%s and %s are one address but two limits: %q, %q", tc.a, tc.b, x, y)
		}
	}
	if got := limitName("ip-", "192.0.2.7"); got != "ip-192.0.2.7" {
		t.Errorf("limitName = %q", got)
	}
	if got := limitName("ip-", "{evil} \\x"); got != "ip-_evil__\\x" {
		t.Errorf("limitName of garbage = %q", got)
	}
}
