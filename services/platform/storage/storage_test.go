package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

func TestUnavailableIsGenericForClientsAndKeepsTheCause(t *testing.T) {
	raw := errors.New("dial tcp 127.0.0.1:40569: connect: connection refused")
	err := Unavailable(raw)
	st := serviceerror.ToStatus(err)
	if st.Code() != codes.Unavailable || strings.Contains(st.Message(), "127.0.0.1") {
		t.Errorf("client sees %v %q", st.Code(), st.Message())
	}
	if serviceerror.Cause(err) != raw {
		t.Errorf("the cause is lost: %v", serviceerror.Cause(err))
	}
	for _, pass := range []error{nil, context.Canceled, fmt.Errorf("x: %w", context.DeadlineExceeded)} {
		if got := Unavailable(pass); got != pass {
			t.Errorf("Unavailable(%v) = %v, want it unchanged", pass, got)
		}
	}
	if again := Unavailable(err); again != err {
		t.Errorf("Unavailable wrapped a domain Unavailable again: %v", again)
	}
}

// EvalAll runs every call even when Redis has lost its script cache (a
// restart or failover): the calls answered NOSCRIPT are sent again with the
// script's text, and each runs exactly once.
func TestEvalAllFallsBackToTheScriptsText(t *testing.T) {
	r := redistest.New(t)
	ctx := context.Background()
	script := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
	key := func(i int) string { return fmt.Sprintf("%scounter:%d", r.Prefix, i) }
	calls := make([]Call, 5)
	for i := range calls {
		calls[i] = Call{Keys: []string{key(i)}}
	}
	for round := int64(1); round <= 2; round++ {
		if err := r.Client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var after *redis.StatusCmd
		cmds, err := EvalAll(ctx, r.Client, script, calls, func(p redis.Pipeliner) { after = p.Ping(ctx) })
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i, c := range cmds {
			if n, err := c.Int64(); err != nil || n != round {
				t.Errorf("round %d, call %d = %v, %v; want %d (run once)", round, i, n, err, round)
			}
		}
		if after == nil || after.Val() != "PONG" {
			t.Errorf("round %d: the commands after the calls did not run", round)
		}
	}
}
