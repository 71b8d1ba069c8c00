-- claim: take the lease of the item a stream entry carries.
--
-- KEYS[1] the item's record
-- KEYS[2] stream of the shard
--
-- ARGV[1] stream entry id
-- ARGV[2] lease token
-- ARGV[3] lease TTL in milliseconds
-- ARGV[4] consumer group
--
-- The lease is the record's ls field, "<token>|<expiry in unix ms>": a
-- field of the record read and written by the record's one HMGET and one
-- HSET, rather than a key of its own made and deleted with every attempt.
--
-- Returns {"ok", attempts, run attempts, pb} when the caller holds the lease
-- and must attempt; {"stale"} when the entry is not the item's current one
-- or the item is no longer queued (the entry is acknowledged and deleted);
-- {"busy"} when another holder's lease is live (the entry stays pending,
-- to be reclaimed later).
local r = redis.call('HMGET', KEYS[1], 'st', 'eid', 'att', 'ratt', 'pb', 'ls')
if not r[1] or r[1] ~= '1' or r[2] ~= ARGV[1] then
  redis.call('XACK', KEYS[2], ARGV[4], ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
  return {'stale'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = r[6]
if cur and cur ~= '' then
  local sep = string.find(cur, '|', 1, true)
  if sep and string.sub(cur, 1, sep - 1) ~= ARGV[2] and tonumber(string.sub(cur, sep + 1)) > now then
    return {'busy'}
  end
end
redis.call('HSET', KEYS[1], 'ls', ARGV[2] .. '|' .. string.format('%.0f', now + tonumber(ARGV[3])))
return {'ok', r[3] or '0', r[4] or '0', r[5] or ''}
