// Package storage is Crowdgate's only datastore, Redis, and the few things
// every capability does with it in one way:
//
//   - Open connects to a Redis server, Sentinel group or Cluster behind
//     go-redis's UniversalClient, or, when nothing is configured, starts an
//     embedded in-process Redis for trying Crowdgate out on a laptop;
//   - Store keeps tenant-scoped records (credentials, projects, pools,
//     tenants, keys) as binary protobuf with newest-first paged listing;
//   - GroupCommit sends the writes of concurrent calls in shared pipelines;
//   - EvalAll runs a Lua script for many calls in one pipeline, falling back
//     from EVALSHA to EVAL for the calls Redis does not have the script for
//     (single calls use go-redis's Script.Run, which does the same);
//   - Unavailable turns a store failure into the one error clients see: a
//     generic UNAVAILABLE with a retry hint. The raw error (which may name
//     internal addresses) stays in the error's cause, for the log only.
package storage

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// RetryAfter is the retry hint a client gets when the datastore fails.
const RetryAfter = time.Second

// unavailableMessage is all a client learns of a datastore failure.
const unavailableMessage = "the datastore is unavailable; try again shortly"

// Unavailable converts a Redis failure into the domain error a client sees:
// UNAVAILABLE, a generic message and a retry hint, with err as its cause
// (logged at the error boundary, never sent). nil stays nil; a context's end
// and an error that is already a domain Unavailable pass unchanged.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var un *serviceerror.Unavailable
	if errors.As(err, &un) {
		return err
	}
	return &serviceerror.Unavailable{Message: unavailableMessage, RetryAfter: RetryAfter, Cause: err}
}

// Call is one run of a script: its keys and arguments.
type Call struct {
	Keys []string
	Args []any
}

// EvalAll runs script once per call in one pipeline on rdb and returns each
// call's command, in order. The pipeline is sent with EVALSHA; the calls
// Redis answers NOSCRIPT (they did not run: the script cache is empty after
// a restart or a failover) are sent again, in a second pipeline, with the
// script's text. after, when set, adds commands at the end of every
// pipeline sent (a WAIT that must follow the writes on the same
// connection); its commands in the last pipeline are the ones that count.
//
// The returned error is the pipeline's own failure (the network); each
// command's Err is its call's.
func EvalAll(ctx context.Context, rdb redis.Cmdable, script *redis.Script, calls []Call, after func(redis.Pipeliner)) ([]*redis.Cmd, error) {
	out := make([]*redis.Cmd, len(calls))
	pending := make([]int, len(calls))
	for i := range calls {
		pending[i] = i
	}
	for _, sha := range []bool{true, false} {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range pending {
				if sha {
					out[i] = script.EvalSha(ctx, p, calls[i].Keys, calls[i].Args...)
				} else {
					out[i] = script.Eval(ctx, p, calls[i].Keys, calls[i].Args...)
				}
			}
			if after != nil {
				after(p)
			}
			return nil
		})
		var retry []int
		for _, i := range pending {
			if sha && redis.HasErrorPrefix(out[i].Err(), "NOSCRIPT") {
				retry = append(retry, i)
			}
		}
		if len(retry) == 0 {
			if err != nil && !isCommandError(out, err) {
				return out, err
			}
			return out, nil
		}
		pending = retry
	}
	return out, nil
}

// isCommandError reports whether err (a pipeline's first error) is one of
// its commands' own answers rather than a failure of the pipeline.
func isCommandError(cmds []*redis.Cmd, err error) bool {
	for _, c := range cmds {
		if c != nil && c.Err() == err {
			return true
		}
	}
	return false
}

// delFieldIfScript deletes field ARGV[1] of the hash KEYS[1] if it still
// holds ARGV[2].
var delFieldIfScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`)

// DelFieldIf deletes field of the hash key if it still holds value (a
// compare-and-delete: a mark another writer has replaced since it was read
// stays). A Redis failure is Unavailable.
func DelFieldIf(ctx context.Context, rdb redis.Scripter, key, field, value string) error {
	return Unavailable(delFieldIfScript.Run(ctx, rdb, []string{key}, field, value).Err())
}
