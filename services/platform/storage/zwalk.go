package storage

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ZCursor is a position in a sorted set read in ascending order: after the
// member Member with score Score (Redis orders equal scores by member).
// The zero ZCursor is before the first entry.
type ZCursor struct {
	Score  int64
	Member string
}

// String encodes the cursor as "<score>:<member>".
func (c ZCursor) String() string { return strconv.FormatInt(c.Score, 10) + ":" + c.Member }

// ParseZCursor reads a cursor String wrote.
func ParseZCursor(s string) (ZCursor, bool) {
	score, member, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(score, 10, 64)
	if !ok || err != nil || member == "" {
		return ZCursor{}, false
	}
	return ZCursor{Score: n, Member: member}, true
}

// ZAfter reads up to n entries of a sorted set of integer scores in
// ascending order: those after the cursor (a higher score, or the same
// score and a greater member) with a score of at least min. It reads in
// batches of about n, so its memory is bounded by n whatever the set's
// size; exports walk a whole index with it a page at a time.
func ZAfter(ctx context.Context, rdb redis.UniversalClient, key string, after *ZCursor, min int64, n int) ([]redis.Z, error) {
	lo := min
	if after != nil && after.Score > lo {
		lo = after.Score
	}
	var out []redis.Z
	for offset := int64(0); len(out) < n; {
		batch := int64(n - len(out) + 16)
		zs, err := rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
			Min: strconv.FormatInt(lo, 10), Max: "+inf", Offset: offset, Count: batch,
		}).Result()
		if err != nil {
			return nil, Unavailable(err)
		}
		for _, z := range zs {
			if after != nil && int64(z.Score) == after.Score && z.Member.(string) <= after.Member {
				continue // at the cursor's score, not past it yet
			}
			out = append(out, z)
			if len(out) == n {
				break
			}
		}
		if int64(len(zs)) < batch {
			break
		}
		offset += batch
	}
	return out, nil
}
