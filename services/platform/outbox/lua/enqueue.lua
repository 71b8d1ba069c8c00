-- enqueue: write an item's record and its stream entry, once.
--
-- KEYS[1] the item's record (hash)
-- KEYS[2] stream of the shard
-- KEYS[3] retry schedule of the shard
--
-- ARGV[1] tenant
-- ARGV[2] item id
-- ARGV[3] "again:<token>", the token new to the call: a settled record
--         (done or dead) is queued again, its run's attempt count (ratt)
--         starting at 0 (an operator's redelivery), and keeps ARGV[3] as
--         qt, so the call sent again (go-redis resends a command whose
--         reply was lost) answers "requeued" as the first time; ""
--         leaves an existing record alone (idempotent)
-- ARGV[4..] field, value pairs written with a new record (or a requeued
--         one)
--
-- Returns {"new", entry} | {"requeued", entry} | {"exists", state}.
local again = string.sub(ARGV[3], 1, 6) == 'again:'
local r = redis.call('HMGET', KEYS[1], 'st', 'qt', 'eid')
local st = r[1]
-- (Whatever its state now: a worker may have settled the item since.)
if again and r[2] == ARGV[3] then
  return {'requeued', r[3]}
end
if st and (not again or st == '1') then
  return {'exists', st}
end
local eid = redis.call('XADD', KEYS[2], '*', 't', ARGV[1], 's', ARGV[2])
-- One HSET of every field (each command a script runs costs Redis time).
local f = {'st', '1', 'eid', eid, 'ratt', '0'}
for i = 4, #ARGV do
  f[#f + 1] = ARGV[i]
end
if st then
  -- A settled record queued again: no retry of its earlier run may come
  -- back. (A new record has no schedule member: a member lives only while
  -- its record is queued, and queued records never expire.)
  redis.call('ZREM', KEYS[3], ARGV[1] .. '\t' .. ARGV[2])
  redis.call('PERSIST', KEYS[1])
  f[#f + 1] = 'qt'
  f[#f + 1] = ARGV[3]
  redis.call('HSET', KEYS[1], unpack(f))
  return {'requeued', eid}
end
f[#f + 1] = 'att'
f[#f + 1] = '0'
redis.call('HSET', KEYS[1], unpack(f))
return {'new', eid}
