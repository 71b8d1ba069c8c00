-- promote: move due retries from a shard's schedule to its stream.
--
-- KEYS[1] retry schedule of the shard (zset of "tenant TAB item")
-- KEYS[2] stream of the shard
--
-- ARGV[1] most entries to move
-- ARGV[2] key prefix of records in this shard (a record's key is
--         prefix .. tenant .. ":" .. item; same hash tag)
--
-- Only a record still queued (st "1") and without a live entry (eid "")
-- gets a new entry, so a retry is never doubled. Returns how many moved.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now), 'LIMIT', 0, tonumber(ARGV[1]))
local moved = 0
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local sep = string.find(m, '\t', 1, true)
  if sep then
    local tenant = string.sub(m, 1, sep - 1)
    local id = string.sub(m, sep + 1)
    local rk = ARGV[2] .. tenant .. ':' .. id
    local r = redis.call('HMGET', rk, 'st', 'eid')
    if r[1] == '1' and (not r[2] or r[2] == '') then
      local eid = redis.call('XADD', KEYS[2], '*', 't', tenant, 's', id)
      redis.call('HSET', rk, 'eid', eid)
      moved = moved + 1
    end
  end
end
return moved
