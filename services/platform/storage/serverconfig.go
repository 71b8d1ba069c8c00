package storage

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// MinHashListpackValue is the smallest hash-max-listpack-value Crowdgate
// asks of Redis. A hash whose values all fit keeps Redis's compact listpack
// encoding; one longer value turns the whole hash into a hash table. A
// submission record's payload is a few hundred bytes, so with Redis's
// default (64) each record takes about 1.1 KiB, and about 0.5 KiB with
// 1024 (MEMORY USAGE, BenchmarkRedisMemoryPerSubmission).
const MinHashListpackValue = 1024

// CheckServer reads the settings Crowdgate relies on from the server rdb
// talks to (a node, on Cluster) and describes each one that is off; a
// server that does not answer CONFIG GET (a managed Redis may disable it)
// is not judged. The gateway logs what it returns at startup
// (deploy/README.md, "Redis": what the server must have).
func CheckServer(ctx context.Context, rdb redis.UniversalClient) []string {
	cfg, err := rdb.ConfigGet(ctx, "*").Result()
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := cfg["maxmemory-policy"]; ok && p != "noeviction" {
		out = append(out, fmt.Sprintf("Redis maxmemory-policy is %q: Redis may evict sessions and queued submits when full; "+
			"set noeviction (deploy/README.md)", p))
	}
	if v, ok := cfg["hash-max-listpack-value"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n < MinHashListpackValue {
			out = append(out, fmt.Sprintf("Redis hash-max-listpack-value is %d: each submission record takes about twice the memory; "+
				"set it to %d or more (deploy/README.md)", n, MinHashListpackValue))
		}
	}
	return out
}
