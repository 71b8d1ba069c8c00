// Package redistest gives tests a Redis: the real server named by REDIS_URL
// when it is set (CI sets it), an in-process miniredis otherwise.
//
// Every call returns a fresh key prefix, so tests and packages that run in
// parallel against one real server never see each other's keys; Crowdgate's
// stores take that prefix from their configuration.
package redistest

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Redis is a Redis for one test.
type Redis struct {
	// Client talks to the server.
	Client redis.UniversalClient
	// Prefix is unique to this test; use it for every key.
	Prefix string
	// URL is a redis:// URL for the same server, for binaries under test.
	URL string
	// Mini is the in-process server, or nil when the real one is used.
	Mini *miniredis.Miniredis
}

// New returns a Redis for t and closes it (and deletes the test's keys on a
// real server) when t ends.
func New(t testing.TB) *Redis {
	t.Helper()
	prefix := "test:" + randomHex(t) + ":"
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		c := redis.NewClient(opts)
		if err := c.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("REDIS_URL=%s does not answer: %v", url, err)
		}
		t.Cleanup(func() {
			ctx := context.Background()
			iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
			_ = c.Close()
		})
		return &Redis{Client: c, Prefix: prefix, URL: url}
	}
	mini := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return &Redis{Client: c, Prefix: prefix, URL: "redis://" + mini.Addr(), Mini: mini}
}

// Real reports whether REDIS_URL names a real server for this run.
func Real() bool { return os.Getenv("REDIS_URL") != "" }

func randomHex(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// HookedClient returns a client of its own for the same server, running
// hooks on every command and pipeline (to delay, gate or fail them), and
// closes it when t ends.
func (r *Redis) HookedClient(t testing.TB, hooks ...redis.Hook) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	for _, h := range hooks {
		c.AddHook(h)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Script is a Lua script as go-redis sends it: by its SHA-1 (EVALSHA), or
// whole (EVAL) when Redis does not have it yet.
type Script struct{ text, sha string }

// ReadScript reads the script at path (relative to the test's package).
func ReadScript(t testing.TB, path string) Script {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return ScriptOf(string(b))
}

// ScriptOf is the script with this text (one a package builds from parts,
// say).
func ScriptOf(text string) Script {
	sum := sha1.Sum([]byte(text))
	return Script{text: text, sha: hex.EncodeToString(sum[:])}
}

// Runs reports whether cmd runs the script.
func (s Script) Runs(cmd redis.Cmder) bool {
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

// Resend is a redis.Hook that runs each command batch carrying Script
// twice, as go-redis does when a reply is lost after Redis ran it (it
// sends the command again on a new connection): the caller sees the
// second run's answer. With Once only the first such batch is resent. A
// run Redis refused (NOSCRIPT, say) is not resent: the second run must
// find the first one's effects.
type Resend struct {
	Script Script
	Once   bool

	mu   sync.Mutex
	done bool
	sent []any
}

// Done reports whether a batch was resent.
func (h *Resend) Done() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.done
}

// Sent returns the arguments of the last command resent (to send it once
// more, later).
func (h *Resend) Sent() []any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent
}

// take reports whether cmd is to be resent, and notes it.
func (h *Resend) take(cmd redis.Cmder) bool {
	if cmd.Err() != nil || !h.Script.Runs(cmd) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Once && h.done {
		return false
	}
	h.done, h.sent = true, slices.Clone(cmd.Args())
	return true
}

// DialHook is redis.Hook's.
func (h *Resend) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook is redis.Hook's.
func (h *Resend) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && h.take(cmd) {
			return next(ctx, cmd)
		}
		return err
	}
}

// ProcessPipelineHook is redis.Hook's.
func (h *Resend) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if h.take(c) {
				return next(ctx, cmds)
			}
		}
		return err
	}
}

// LoseReply is a redis.Hook that fails the first command batch carrying
// Script as if its reply were lost: once Redis has run it (a Redis killed
// after the write, a dropped connection, a read timeout: go-redis does
// not resend then), or, with Drop, before it reaches Redis. Every command
// of that batch gets ErrReplyLost.
type LoseReply struct {
	Script Script
	Drop   bool

	mu   sync.Mutex
	lost int
}

// ErrReplyLost is the error LoseReply gives the batch it fails.
var ErrReplyLost = errors.New("read tcp: connection reset by peer")

// Lost is how many batches the hook failed (0 or 1).
func (h *LoseReply) Lost() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// DialHook is redis.Hook's.
func (h *LoseReply) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook is redis.Hook's.
func (h *LoseReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		cmds := []redis.Cmder{cmd}
		if h.lose(cmds, false) {
			return ErrReplyLost
		}
		err := next(ctx, cmd)
		if h.lose(cmds, true) {
			return ErrReplyLost
		}
		return err
	}
}

// ProcessPipelineHook is redis.Hook's.
func (h *LoseReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.lose(cmds, false) {
			return ErrReplyLost
		}
		err := next(ctx, cmds)
		if h.lose(cmds, true) {
			return ErrReplyLost
		}
		return err
	}
}

// lose reports whether cmds hold the run to lose, and then fails them all:
// the first, before Redis runs it when Drop is set, once Redis has run it
// otherwise (ran says which moment this is).
func (h *LoseReply) lose(cmds []redis.Cmder, ran bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost > 0 || h.Drop == ran {
		return false
	}
	for _, c := range cmds {
		if h.Script.Runs(c) && (!ran || c.Err() == nil) {
			h.lost++
			for _, c := range cmds {
				c.SetErr(ErrReplyLost)
			}
			return true
		}
	}
	return false
}
