package catalog

import (
	"context"
	"time"

	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/redis/go-redis/v9"
)

// PoolIDs returns the id of every pool of a tenant, archived ones included,
// without reading the pools (the gateway's state gauges visit each).
func (c *Catalog) PoolIDs(ctx context.Context, tenantID string) ([]string, error) {
	return c.pools.IDs(ctx, tenantID, "")
}

// turnScript takes the turn KEYS[1] for ARGV[1] ms unless another taker
// holds it: the value is "<deadline>|<taker's token>", the deadline by
// Redis's clock, so a turn ends on time also where keys are not expired in
// real time (the embedded Redis); the key's own expiry only cleans up. A
// call sent again (go-redis resends a command whose reply was lost) finds
// its own token and still takes the turn.
var turnScript = redis.NewScript(turnLua)

const turnLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('GET', KEYS[1]) or '0'
local sep = string.find(cur, '|', 1, true)
local until_ = tonumber(sep and string.sub(cur, 1, sep - 1) or cur) or 0
if until_ > now then
  if sep and string.sub(cur, sep + 1) == ARGV[2] then
    return 1
  end
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', now + tonumber(ARGV[1])) .. '|' .. ARGV[2], 'PX', ARGV[1])
return 1
`

// TakeTurn reports whether the caller takes the turn named name: the first
// caller does and holds it for ttl, and every caller until then does not
// (jobs that one replica of many should run each interval, such as reading
// a tenant's open pools from Toloka, whose quota every read spends).
func (c *Catalog) TakeTurn(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	n, err := turnScript.Run(ctx, c.rdb, []string{c.prefix + "turn:" + name}, max(ttl.Milliseconds(), 1), storage.NewID("turn")).Int()
	if err != nil {
		return false, storage.Unavailable(err)
	}
	return n == 1, nil
}

// MarkPoolToReread notes that the tenant's stored pool may no longer be
// what Toloka holds (an action Toloka may have carried out whose result
// was not read back): the pool watch reads it from Toloka whatever its
// stored status, until UnmarkPoolToReread. Each mark is new (a token),
// so a mark made while the watch reads the pool outlives that read.
func (c *Catalog) MarkPoolToReread(ctx context.Context, tenantID, poolID string) error {
	if err := c.rdb.HSet(ctx, c.rereadKey(tenantID), poolID, storage.NewID("rr")).Err(); err != nil {
		return storage.Unavailable(err)
	}
	return nil
}

// PoolsToReread returns the tenant's pools MarkPoolToReread marked, each
// with its mark (for UnmarkPoolToReread).
func (c *Catalog) PoolsToReread(ctx context.Context, tenantID string) (map[string]string, error) {
	marks, err := c.rdb.HGetAll(ctx, c.rereadKey(tenantID)).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	return marks, nil
}

// UnmarkPoolToReread clears the pool's mark if it is still mark (the
// pool was read since it was made; a newer mark stays).
func (c *Catalog) UnmarkPoolToReread(ctx context.Context, tenantID, poolID, mark string) error {
	return storage.DelFieldIf(ctx, c.rdb, c.rereadKey(tenantID), poolID, mark)
}

func (c *Catalog) rereadKey(tenantID string) string { return c.prefix + "poolreread:" + tenantID }
