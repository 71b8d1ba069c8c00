package submission

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

func TestUnits(t *testing.T) {
	for _, tc := range []struct {
		in    string
		units int64
		out   string
	}{
		{"0", 0, "0.00"},
		{"10.52", 1052000000, "10.52"},
		{"10.520", 1052000000, "10.52"},
		{"0.005", 500000, "0.005"},
		{"0.00000001", 1, "0.00000001"},
		{"1000000", 100000000000000, "1000000.00"},
		{"3.3", 330000000, "3.30"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, err := toUnits(money.MustParse(tc.in))
			if err != nil || u != tc.units {
				t.Fatalf("toUnits(%s) = %d, %v; want %d", tc.in, u, err, tc.units)
			}
			if got := formatUnits(u); got != tc.out {
				t.Errorf("formatUnits(%d) = %s, want %s", u, got, tc.out)
			}
		})
	}
	if got := formatUnits(-330000000); got != "-3.30" {
		t.Errorf("formatUnits(-3.3) = %s", got)
	}
	if _, err := toUnits(money.MustParse("-1")); err == nil {
		t.Error("toUnits(-1) succeeded")
	}
}

func TestIDs(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for shard := range MaxShards {
		id := newID(now, shard)
		got, ok := parseID(id)
		if !ok || got != shard {
			t.Fatalf("parseID(%s) = %d, %v; want %d", id, got, ok, shard)
		}
		if !idTime(id).Equal(now) {
			t.Errorf("idTime(%s) = %s, want %s", id, idTime(id), now)
		}
		if b := idBound(now); !(b <= id && id < idBound(now.Add(time.Nanosecond))) {
			t.Errorf("id %s is not between the bounds of its time", id)
		}
	}
	for _, bad := range []string{"", "sub_", "prj_0000000000000000000000000_1", "sub_0000000000000000000000000u_1",
		"sub_00000000000000000000000000_1024", "sub_00000000000000000000000000_01", "sub_00000000000000000000000000-1"} {
		if _, ok := parseID(bad); ok {
			t.Errorf("parseID(%q) accepted it", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	status := func(code int, tolokaCode string) error {
		return fmt.Errorf("wrapped: %w", &toloka.Error{Op: "task.external_submit", StatusCode: code, Code: tolokaCode, Message: "m", RequestID: "req-1"})
	}
	dial := &toloka.Error{Op: "task.external_submit", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}
	for _, tc := range []struct {
		name string
		err  error
		kind string
	}{
		{"400 validation", status(400, "VALIDATION_ERROR"), outDead},
		{"401 credential", status(401, "AUTHENTICATION_ERROR"), outDead},
		{"403 access", status(403, "ACCESS_DENIED"), outDead},
		{"404 pool", status(404, "DOES_NOT_EXIST"), outDead},
		{"409 conflict", status(409, "CONFLICT_STATE"), outDead},
		{"408 timeout", status(408, ""), outRetry},
		{"429 throttled", status(429, "TOO_MANY_REQUESTS"), outRetry},
		{"500", status(500, "INTERNAL_ERROR"), outRetry},
		{"502 proxy", status(502, ""), outRetry},
		{"503", status(503, "REMOTE_SERVICE_UNAVAILABLE"), outRetry},
		{"unreadable 200", status(200, ""), outRetry},
		{"no answer", dial, outRetry},
		{"deadline", &toloka.Error{Err: context.DeadlineExceeded}, outRetry},
		{"Crowdgate's limiter", fmt.Errorf("toloka: refused: %w", &serviceerror.ResourceExhausted{Message: "limit", RetryAfter: time.Second}), outRetry},
		{"invalid body", &serviceerror.InvalidArgument{Field: "pool_id", Reason: "digits"}, outDead},
		{"credential deleted", &serviceerror.NotFound{Resource: "credential", ID: "c"}, outDead},
		{"Redis down", &serviceerror.Unavailable{Message: "datastore unavailable"}, outRetry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, te, _ := classify(tc.err)
			if kind != tc.kind {
				t.Errorf("classify = %s, want %s", kind, tc.kind)
			}
			if te == nil || te.Message == "" {
				t.Errorf("no error kept: %v", te)
			}
		})
	}
	_, te, after := classify(&toloka.Error{StatusCode: 429, Code: "TOO_MANY_REQUESTS", RetryAfter: 3 * time.Second, RequestID: "r", Payload: []byte(`{"interval":"MIN"}`)})
	if after != 3*time.Second || te.HttpStatus != 429 || te.RequestId != "r" || te.PayloadJson != `{"interval":"MIN"}` {
		t.Errorf("429 kept %v, retry after %s", te, after)
	}
}

func TestBackoff(t *testing.T) {
	s := &Service{cfg: Settings{BaseBackoff: time.Second, MaxBackoff: 10 * time.Second}}
	for _, tc := range []struct {
		n        int
		atLeast  time.Duration
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, time.Second},
		{2, 0, time.Second, 2 * time.Second},
		{4, 0, 4 * time.Second, 8 * time.Second},
		{5, 0, 5 * time.Second, 10 * time.Second},
		{40, 0, 5 * time.Second, 10 * time.Second},
		{1, 30 * time.Second, 30 * time.Second, 30 * time.Second},
	} {
		for range 50 {
			if d := s.backoff(tc.n, tc.atLeast); d < tc.min || d > tc.max {
				t.Fatalf("backoff(%d, %s) = %s, want within [%s, %s]", tc.n, tc.atLeast, d, tc.min, tc.max)
			}
		}
	}
}
