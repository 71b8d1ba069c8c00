-- settle: record the outcome of one attempt and release the lease.
--
-- KEYS[1] the item's record
-- KEYS[2] stream of the shard
-- KEYS[3] retry schedule of the shard
-- KEYS[4] the item's lease
-- KEYS[5] the item's journal (list of attempts, newest last)
--
-- ARGV[1] outcome: done | retry | dead | drop (dead without an attempt)
-- ARGV[2] stream entry id that carried the attempt
-- ARGV[3] lease token
-- ARGV[4] consumer group
-- ARGV[5] backoff in ms (retry)
-- ARGV[6] schedule member (tenant TAB item)
-- ARGV[7] journal entry ("" for none)
-- ARGV[8] most journal entries kept
-- ARGV[9] retention in ms of a settled record and its journal
-- ARGV[10..] field, value pairs written to the record
--
-- Returns {outcome applied} | {"skip", state} when the item had already
-- moved on (settled, or another entry carries it) | {"gone"}.
local cur = redis.call('GET', KEYS[4])
if cur and string.sub(cur, 1, #ARGV[3] + 1) == ARGV[3] .. '|' then
  redis.call('DEL', KEYS[4])
end
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[2], ARGV[4], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
end
local r = redis.call('HMGET', KEYS[1], 'st', 'eid')
local st, eid = r[1], r[2]
if not st then
  return {'gone'}
end
if ARGV[7] ~= '' then
  redis.call('RPUSH', KEYS[5], ARGV[7])
  redis.call('LTRIM', KEYS[5], -tonumber(ARGV[8]), -1)
end
if st ~= '1' or eid ~= ARGV[2] then
  return {'skip', st}
end
if ARGV[1] ~= 'drop' then
  redis.call('HINCRBY', KEYS[1], 'att', 1)
  redis.call('HINCRBY', KEYS[1], 'ratt', 1)
end
for i = 10, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'eid', '')
if ARGV[1] == 'retry' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(ARGV[5])), ARGV[6])
  return {'retry'}
end
redis.call('ZREM', KEYS[3], ARGV[6])
if ARGV[1] == 'done' then
  redis.call('HSET', KEYS[1], 'st', '2')
else
  redis.call('HSET', KEYS[1], 'st', '3')
end
redis.call('PEXPIRE', KEYS[1], ARGV[9])
redis.call('PEXPIRE', KEYS[5], ARGV[9])
return {ARGV[1]}
