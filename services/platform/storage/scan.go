package storage

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ScanKeys returns every key matching the glob pattern match, on every
// master of a Redis Cluster (SCAN sees one node's keys), each once. It is
// for operator commands (re-sealing secrets), not for requests.
func ScanKeys(ctx context.Context, rdb redis.UniversalClient, match string) ([]string, error) {
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
		out  []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, match, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			if k := iter.Val(); !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
			mu.Unlock()
		}
		return Unavailable(iter.Err())
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return scan(ctx, node) })
	} else {
		err = scan(ctx, rdb)
	}
	return out, err
}

// GlobEscape escapes the characters SCAN's MATCH gives a meaning to, so a
// key prefix matches only itself.
func GlobEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
