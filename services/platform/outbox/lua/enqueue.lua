-- enqueue: write an item's record and its stream entry, once.
--
-- KEYS[1] the item's record (hash)
-- KEYS[2] stream of the shard
-- KEYS[3] retry schedule of the shard
--
-- ARGV[1] tenant
-- ARGV[2] item id
-- ARGV[3] "again": a settled record (done or dead) is queued again, its
--         run's attempt count (ratt) starting at 0 (an operator's
--         redelivery); "" leaves an existing record alone (idempotent)
-- ARGV[4..] field, value pairs written with a new record (or a requeued
--         one)
--
-- Returns {"new", entry} | {"requeued", entry} | {"exists", state}.
local st = redis.call('HGET', KEYS[1], 'st')
if st and (ARGV[3] ~= 'again' or st == '1') then
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
  redis.call('HSET', KEYS[1], unpack(f))
  return {'requeued', eid}
end
f[#f + 1] = 'att'
f[#f + 1] = '0'
redis.call('HSET', KEYS[1], unpack(f))
return {'new', eid}
