package storage

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// ZAfter walks a sorted set page by page, each entry once, in order, also
// through runs of equal scores longer than a page, and from any cursor.
func TestZAfterWalksEveryEntryOnceFromAnyCursor(t *testing.T) {
	r := redistest.New(t)
	ctx := context.Background()
	key := r.Prefix + "z"
	var want []string
	for i := range 100 {
		score := float64(1000 + i/40) // runs of 40 equal scores
		if i >= 90 {
			score = float64(500 + i) // below min: left out
		} else {
			want = append(want, fmt.Sprintf("m%03d", i))
		}
		if err := r.Client.ZAdd(ctx, key, redis.Z{Score: score, Member: fmt.Sprintf("m%03d", i)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, start := range []int{-1, 0, 39, 40, 85, 89} {
		var cur *ZCursor
		exp := want
		if start >= 0 {
			cur = &ZCursor{Score: int64(1000 + start/40), Member: want[start]}
			exp = want[start+1:]
		}
		var got []string
		for {
			zs, err := ZAfter(ctx, r.Client, key, cur, 1000, "+inf", 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, z := range zs {
				got = append(got, z.Member.(string))
			}
			if len(zs) < 7 {
				break
			}
			last := zs[len(zs)-1]
			c, ok := ParseZCursor(ZCursor{Score: int64(last.Score), Member: last.Member.(string)}.String())
			if !ok {
				t.Fatal("cursor does not round-trip")
			}
			cur = &c
		}
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("from %d: %v, want %v", start, got, exp)
		}
	}
	for _, bad := range []string{"", "12", "x:m", "12:"} {
		if _, ok := ParseZCursor(bad); ok {
			t.Errorf("ParseZCursor(%q) ok", bad)
		}
	}
}
