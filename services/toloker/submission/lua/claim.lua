-- claim: take the delivery lease of the submission a stream entry carries.
--
-- KEYS[1] submission record
-- KEYS[2] the submission's lease
-- KEYS[3] outbox stream of the shard
--
-- ARGV[1] stream entry id
-- ARGV[2] lease token
-- ARGV[3] lease TTL in milliseconds
-- ARGV[4] consumer group
--
-- Returns {"ok", pb, attempts, toloka pool id, credential id, attempts
-- when an operator last requeued it (0: never)} when the
-- caller holds the lease and must deliver; {"stale"} when the entry is not
-- the submission's current one or the submission is no longer QUEUED (the
-- entry is acknowledged and deleted); {"busy"} when another holder's lease
-- is live (the entry stays pending, to be reclaimed later).
local function drop()
  redis.call('XACK', KEYS[3], ARGV[4], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
end
local r = redis.call('HMGET', KEYS[1], 'st', 'eid', 'pb', 'att', 'tp', 'cred', 'rqa')
if not r[1] or r[1] ~= '1' or r[2] ~= ARGV[1] then
  drop()
  return {'stale'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('GET', KEYS[2])
if cur then
  local sep = string.find(cur, '|', 1, true)
  if sep and string.sub(cur, 1, sep - 1) ~= ARGV[2] and tonumber(string.sub(cur, sep + 1)) > now then
    return {'busy'}
  end
end
redis.call('SET', KEYS[2], ARGV[2] .. '|' .. string.format('%.0f', now + tonumber(ARGV[3])), 'PX', ARGV[3])
return {'ok', r[3], r[4], r[5], r[6], r[7] or '0'}
