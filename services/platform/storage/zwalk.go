package storage

import (
	"context"
	"strconv"
	"strings"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
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
// score and a greater member) with a score of at least min and at most
// max (a ZRANGEBYSCORE bound: "+inf", "(123" or "123"). It reads in
// batches of about n, so its memory is bounded by n whatever the set's
// size; exports walk a whole index with it a page at a time.
func ZAfter(ctx context.Context, rdb redis.UniversalClient, key string, after *ZCursor, min int64, max string, n int) ([]redis.Z, error) {
	lo := min
	if after != nil && after.Score > lo {
		lo = after.Score
	}
	var out []redis.Z
	for offset := int64(0); len(out) < n; {
		batch := int64(n - len(out) + 16)
		zs, err := rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
			Min: strconv.FormatInt(lo, 10), Max: max, Offset: offset, Count: batch,
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

// CursorOf is the cursor of entry z (String of its ZCursor): a walk resumed
// from it continues after z.
func CursorOf(z redis.Z) string {
	return ZCursor{Score: int64(z.Score), Member: z.Member.(string)}.String()
}

// WalkZ walks a sorted set of integer scores in ascending order, after the
// cursor after ("" from the first entry; one String did not write is
// INVALID_ARGUMENT naming cursor), in pages of up to n entries whose score
// is at least min() (read before each page), calling page with each until
// the set is exhausted, ctx ends or page fails. It holds one page at a
// time: exports walk whole indexes with it.
func WalkZ(ctx context.Context, rdb redis.UniversalClient, key, after string, min func() int64, n int, page func(zs []redis.Z) error) error {
	var cur *ZCursor
	if after != "" {
		c, ok := ParseZCursor(after)
		if !ok {
			return serviceerror.NewInvalidArgument("cursor", "is not a cursor of this export")
		}
		cur = &c
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		zs, err := ZAfter(ctx, rdb, key, cur, min(), "+inf", n)
		if err != nil {
			return err
		}
		if err := page(zs); err != nil {
			return err
		}
		if len(zs) < n {
			return nil
		}
		last := zs[len(zs)-1]
		cur = &ZCursor{Score: int64(last.Score), Member: last.Member.(string)}
	}
}
