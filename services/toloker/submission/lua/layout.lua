-- layout: say which layout this replica uses and read every layout in use
-- (see layout.go).
--
-- KEYS[1] the layout hash: f:<layout>, l:<layout> (first and last time a
--         replica said it, unix ms; a first time is later than every other
--         layout's), r:<layout> (when it was retired: no replica had said
--         it for the longest retention), max (the most shards any layout
--         had)
--
-- ARGV[1] this replica's layout
-- ARGV[2] its shard count
-- ARGV[3] now, unix ms
-- ARGV[4] "1" to add the legacy layout (first said at 0) when the hash is new
-- ARGV[5] now minus the longest retention, unix ms: a layout last said
--         before it is retired, one retired before it is dropped
-- ARGV[6] the legacy layout's name
-- ARGV[7] its shard count
--
-- Returns the hash after the change (HGETALL).
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'f:' .. ARGV[6], 0, 'l:' .. ARGV[6], ARGV[3], 'max', ARGV[7])
end
if redis.call('HEXISTS', KEYS[1], 'f:' .. ARGV[1]) == 0 then
  -- A layout said for the first time sorts after every layout known, even
  -- from a replica whose clock is behind: only retiring moves the arbiter.
  local first = tonumber(ARGV[3])
  local known = redis.call('HGETALL', KEYS[1])
  for i = 1, #known, 2 do
    if string.sub(known[i], 1, 2) == 'f:' and tonumber(known[i + 1]) >= first then
      first = tonumber(known[i + 1]) + 1
    end
  end
  redis.call('HSET', KEYS[1], 'f:' .. ARGV[1], string.format('%.0f', first))
end
redis.call('HSET', KEYS[1], 'l:' .. ARGV[1], ARGV[3])
redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1])
local m = tonumber(redis.call('HGET', KEYS[1], 'max')) or 0
if tonumber(ARGV[2]) > m then
  redis.call('HSET', KEYS[1], 'max', ARGV[2])
end
local all = redis.call('HGETALL', KEYS[1])
local before = tonumber(ARGV[5])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'l:' and tonumber(all[i + 1]) < before then
    local name = string.sub(all[i], 3)
    local retired = tonumber(redis.call('HGET', KEYS[1], 'r:' .. name))
    if not retired then
      redis.call('HSET', KEYS[1], 'r:' .. name, ARGV[3])
    elseif retired < before then
      redis.call('HDEL', KEYS[1], 'l:' .. name, 'f:' .. name, 'r:' .. name)
    end
  end
end
return redis.call('HGETALL', KEYS[1])
