-- settle: record the outcome of one attempt and release the lease.
--
-- KEYS[1] the item's record
-- KEYS[2] stream of the shard
-- KEYS[3] retry schedule of the shard
-- KEYS[4] the item's journal (list of attempts, newest last)
--
-- ARGV[1] outcome: done | retry | dead | drop (dead without an attempt) |
--         defer (retry without an attempt: not counted, nothing journaled)
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
-- moved on (settled, or another entry carries it), or this settlement (its
-- lease token) was recorded already | {"gone"}.
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[2], ARGV[4], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
end
local r = redis.call('HMGET', KEYS[1], 'st', 'eid', 'att', 'ratt', 'lt', 'ls')
local st, eid = r[1], r[2]
if not st then
  return {'gone'}
end
-- lt is the lease token of the last settlement recorded: the same
-- settlement sent again (a client resending a batch) records nothing.
if r[5] == ARGV[3] then
  return {'skip', st}
end
if ARGV[7] ~= '' then
  local max = tonumber(ARGV[8])
  if redis.call('RPUSH', KEYS[4], ARGV[7]) > max then
    redis.call('LTRIM', KEYS[4], -max, -1)
  end
end
-- The settlement's own fields go last, after the caller's: lt, and the
-- lease (the record's ls field) released when it is this settlement's
-- (another holder's is left alone).
local own = {'lt', ARGV[3]}
if r[6] and string.sub(r[6], 1, #ARGV[3] + 1) == ARGV[3] .. '|' then
  own[#own + 1] = 'ls'
  own[#own + 1] = ''
end
if st ~= '1' or eid ~= ARGV[2] then
  redis.call('HSET', KEYS[1], unpack(own))
  return {'skip', st}
end
-- One HSET of every field (each command a script runs costs Redis time):
-- the attempt counted (not for a drop or a defer), the caller's fields,
-- no live entry, the settlement's own, and the new state once settled.
local f = {}
if ARGV[1] ~= 'drop' and ARGV[1] ~= 'defer' then
  f = {'att', tostring((tonumber(r[3]) or 0) + 1), 'ratt', tostring((tonumber(r[4]) or 0) + 1)}
end
for i = 10, #ARGV do
  f[#f + 1] = ARGV[i]
end
f[#f + 1] = 'eid'
f[#f + 1] = ''
for i = 1, #own do
  f[#f + 1] = own[i]
end
if ARGV[1] == 'retry' or ARGV[1] == 'defer' then
  redis.call('HSET', KEYS[1], unpack(f))
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(ARGV[5])), ARGV[6])
  return {ARGV[1]}
end
f[#f + 1] = 'st'
if ARGV[1] == 'done' then
  f[#f + 1] = '2'
else
  f[#f + 1] = '3'
end
redis.call('HSET', KEYS[1], unpack(f))
redis.call('ZREM', KEYS[3], ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[9])
redis.call('PEXPIRE', KEYS[4], ARGV[9])
return {ARGV[1]}
