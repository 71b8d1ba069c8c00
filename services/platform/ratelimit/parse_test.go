package ratelimit

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Limit
	}{
		{"10/s,burst=60", Limit{Rate: 10, Per: time.Second, Burst: 60}},
		{"30/m,burst=10", Limit{Rate: 30, Per: time.Minute, Burst: 10}},
		{" 100 / 10s , burst = 5 ", Limit{Rate: 100, Per: 10 * time.Second, Burst: 5}},
		{"5/h", Limit{Rate: 5, Per: time.Hour, Burst: 5}},
		{"300/1500ms,burst=1", Limit{Rate: 300, Per: 1500 * time.Millisecond, Burst: 1}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseRate (-want +got):\n%s", diff)
			}
			back, err := ParseRate(got.RateString())
			if err != nil || back != got {
				t.Errorf("ParseRate(%q) = %v, %v: RateString does not round-trip", got.RateString(), back, err)
			}
		})
	}
	for _, bad := range []string{"", "10", "x/s", "0/s", "-1/s", "10/", "10/day", "10/0s", "10/s,burst=0", "10/s,burst=x", "10/s,bursts=3", "10/s,3"} {
		if l, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", bad, l)
		}
	}
}
