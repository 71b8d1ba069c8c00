package session_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// readScript reads lua/<name>, one of the service's scripts.
func readScript(t *testing.T, name string) redistest.Script {
	t.Helper()
	return redistest.ReadScript(t, "lua/"+name)
}

// hookedEnv returns sessions whose Redis client runs hook, on the Redis
// the rest of the environment uses.
func hookedEnv(t *testing.T, hook redis.Hook) *sessiontest.Env {
	t.Helper()
	r := redistest.New(t)
	hooked := r.HookedClient(t, hook)
	return sessiontest.New(t, sessiontest.Options{Redis: r, Session: func(c *session.Config) { c.Redis = hooked }})
}
