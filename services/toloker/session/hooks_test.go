package session_test

import (
	"crypto/sha1"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// luaScript is one of the service's scripts as go-redis sends it: by its
// SHA-1 (EVALSHA), or whole (EVAL) when Redis does not have it yet.
type luaScript struct{ text, sha string }

// readScript reads lua/<name>.
func readScript(t *testing.T, name string) luaScript {
	t.Helper()
	b, err := os.ReadFile("lua/" + name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(b)
	return luaScript{text: string(b), sha: hex.EncodeToString(sum[:])}
}

// runs reports whether cmd runs the script.
func (s luaScript) runs(cmd redis.Cmder) bool {
	a := cmd.Args()
	if len(a) < 2 {
		return false
	}
	arg, _ := a[1].(string)
	switch strings.ToLower(cmd.Name()) {
	case "evalsha":
		return arg == s.sha
	case "eval":
		return arg == s.text
	}
	return false
}

// hookedEnv returns sessions whose Redis client runs hook, on the Redis
// the rest of the environment uses.
func hookedEnv(t *testing.T, hook redis.Hook) *sessiontest.Env {
	t.Helper()
	r := redistest.New(t)
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	hooked := redis.NewClient(opts)
	hooked.AddHook(hook)
	t.Cleanup(func() { _ = hooked.Close() })
	return sessiontest.New(t, sessiontest.Options{Redis: r, Session: func(c *session.Config) { c.Redis = hooked }})
}
