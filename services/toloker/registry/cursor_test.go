package registry

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestAPageTokenResumesWhereItsPageEnded: a ListTolokers cursor reads back
// as written, down or up the list; one from a gateway before the walk up
// (<ms>:<user>, during a rolling upgrade) still pages down, and a new one
// reads there as its position down the list; a malformed one is refused.
func TestAPageTokenResumesWhereItsPageEnded(t *testing.T) {
	for _, c := range []listCursor{
		{since: 1700000000000, after: &redis.Z{Score: 1690000000000, Member: "toloker:1"}},
		{since: 1700000000000, rising: true, ceiling: 1700000000500},
		{since: 1700000000000, rising: true, ceiling: 1700000000500, after: &redis.Z{Score: 1700000000001, Member: "toloker-2"}},
	} {
		got, err := parseListCursor(c.String())
		if err != nil || got.since != c.since || got.rising != c.rising || got.ceiling != c.ceiling || (got.after == nil) != (c.after == nil) ||
			(c.after != nil && (got.after.Score != c.after.Score || got.after.Member != c.after.Member)) {
			t.Errorf("parseListCursor(%q) = %+v, %v; want %+v", c.String(), got, err, c)
		}
	}
	old, err := parseListCursor("1690000000000:toloker-1")
	if err != nil || old.since != 0 || old.rising || old.after == nil || old.after.Member != "toloker-1" {
		t.Errorf("an older gateway's cursor reads as %+v, %v", old, err)
	}
	// An older gateway cut the cursor at the first ':' and read the rest as
	// the user: a new cursor is the position it would page down from.
	ms, rest, _ := strings.Cut(listCursor{since: 1700000000000, after: &redis.Z{Score: 1690000000000, Member: "toloker-1"}}.String(), ":")
	if ms != "1690000000000" || !strings.HasPrefix(rest, "toloker-1\t") {
		t.Errorf("an older gateway reads a new cursor as %s:%q", ms, rest)
	}
	for _, bad := range []string{"1:\td1700000000000", "1:a\t", "1:a\tx1", "1:a\tu", "1:a\tdx", "1:a\tu1700000000000", "1:a\tu1700000000000,1", "1:a\td1700000000000,1700000000001", "x:a\td1", "toloker-1", "1690000000000", "1:"} {
		if _, err := parseListCursor(bad); err == nil {
			t.Errorf("parseListCursor(%q) accepted", bad)
		}
	}
}
