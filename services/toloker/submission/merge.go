package submission

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// indexMerge reads one index (a pool's submissions, its dead letters) that
// every shard holds a part of, as one sorted sequence of submission ids: a
// k-way merge of the shards' sorted parts. Ids begin with their creation
// time, so the order is creation order (newest first with rev). It holds
// at most batch ids of each shard at a time, whatever the index's size,
// and reads the shards whose buffers ran dry together, in one pipeline.
type indexMerge struct {
	rdb   redis.UniversalClient
	keys  []string // the index's key in each shard
	rev   bool     // newest first
	batch int

	// lo and hi are each shard's remaining bounds (ZRANGEBYLEX syntax):
	// the next read starts after the last id read.
	lo, hi []string
	bufs   [][]string
	done   []bool // the shard's part is read to its end
}

// newIndexMerge merges keys between lo and hi ("-", "+", "[id" or "(id"),
// reading batch ids of a shard at a time.
func newIndexMerge(rdb redis.UniversalClient, keys []string, lo, hi string, rev bool, batch int) *indexMerge {
	m := &indexMerge{rdb: rdb, keys: keys, rev: rev, batch: max(batch, 1),
		lo: make([]string, len(keys)), hi: make([]string, len(keys)),
		bufs: make([][]string, len(keys)), done: make([]bool, len(keys))}
	for i := range keys {
		m.lo[i], m.hi[i] = lo, hi
	}
	return m
}

// next returns up to n more ids in order; fewer only when the index is
// exhausted.
func (m *indexMerge) next(ctx context.Context, n int) ([]string, error) {
	var out []string
	for len(out) < n {
		if err := m.fill(ctx); err != nil {
			return out, err
		}
		best := -1
		for i, b := range m.bufs {
			if len(b) == 0 {
				continue // done (fill refilled every other empty one)
			}
			if best < 0 || (!m.rev && b[0] < m.bufs[best][0]) || (m.rev && b[0] > m.bufs[best][0]) {
				best = i
			}
		}
		if best < 0 {
			return out, nil
		}
		out = append(out, m.bufs[best][0])
		m.bufs[best] = m.bufs[best][1:]
	}
	return out, nil
}

// fill reads the next batch of every shard whose buffer is empty and whose
// part is not read to its end, in one pipeline.
func (m *indexMerge) fill(ctx context.Context) error {
	var want []int
	for i := range m.keys {
		if len(m.bufs[i]) == 0 && !m.done[i] {
			want = append(want, i)
		}
	}
	if len(want) == 0 {
		return nil
	}
	cmds := make([]*redis.StringSliceCmd, len(want))
	if _, err := m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, i := range want {
			by := &redis.ZRangeBy{Min: m.lo[i], Max: m.hi[i], Count: int64(m.batch)}
			if m.rev {
				cmds[j] = p.ZRevRangeByLex(ctx, m.keys[i], by)
			} else {
				cmds[j] = p.ZRangeByLex(ctx, m.keys[i], by)
			}
		}
		return nil
	}); err != nil {
		return storage.Unavailable(err)
	}
	for j, i := range want {
		ids := cmds[j].Val()
		m.bufs[i] = ids
		if len(ids) < m.batch {
			m.done[i] = true
		}
		if len(ids) > 0 {
			if m.rev {
				m.hi[i] = "(" + ids[len(ids)-1]
			} else {
				m.lo[i] = "(" + ids[len(ids)-1]
			}
		}
	}
	return nil
}

// exhausted reports whether every id has been returned.
func (m *indexMerge) exhausted() bool {
	for i := range m.keys {
		if len(m.bufs[i]) > 0 || !m.done[i] {
			return false
		}
	}
	return true
}

// shardKeys is key(shard) for shards 0..n-1.
func shardKeys(n int, key func(shard int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = key(i)
	}
	return out
}
