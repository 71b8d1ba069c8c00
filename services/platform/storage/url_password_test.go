package storage

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestARefusedRedisURLDoesNotShowItsPassword: REDIS_URL may hold a
// password (README: "-h never shows it"); a refused value stops the gateway
// with one log line naming the variable, which must not carry the password
// (the parser's error quoted the whole URL; found by the secrets review).
func TestARefusedRedisURLDoesNotShowItsPassword(t *testing.T) {
	const pw = "s3cret-redis-password"
	for _, u := range []string{
		"redis://:" + pw + "@redis.internal:63x9/0",
		"redis://user:" + pw + "@redis.internal:6379/x",
		"redis://:" + pw + "@redis.internal:6379/0?dial_timeout=soon",
		// The parser quotes the URL with %q: a '"' or '\' in a password
		// comes out escaped (found by the review of this session's diff).
		"redis://user:" + pw + `"x@redis.internal:63x9/0`,
		"redis://user:" + pw + `\x@redis.internal:63x9/0`,
	} {
		for _, mode := range []Mode{ModeStandalone, ModeSentinel, ModeCluster} {
			_, err := Open(context.Background(), Settings{URL: u, Mode: mode}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				t.Fatalf("%s: the malformed %s was accepted", mode, strings.ReplaceAll(u, pw, "…"))
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("%s: the error of a malformed REDIS_URL shows its password: %v", mode, err)
			}
			if !strings.HasPrefix(err.Error(), "REDIS_URL") {
				t.Errorf("%s: the error %q does not name REDIS_URL", mode, err)
			}
		}
	}
}
