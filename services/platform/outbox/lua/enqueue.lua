-- enqueue: write an item's record and its stream entry, once.
--
-- KEYS[1] the item's record (hash)
-- KEYS[2] stream of the shard
-- KEYS[3] retry schedule of the shard
-- KEYS[4] the item's journal (list)
--
-- ARGV[1] tenant
-- ARGV[2] item id
-- ARGV[3] "again:<token>", the token new to the call: an existing record
--         starts a new run (an operator's redelivery), whatever its state:
--         settled (done or dead), waiting in the schedule for a retry, or
--         queued with a live entry (in the stream, or in a worker's hands:
--         that attempt still happens, but its settlement no longer
--         decides the item, since the item's entry is the new one). Its
--         run's attempt count (ratt) starts at 0, a lease held is dropped
--         (the new entry is attempted at once; an attempt in flight may
--         reach the endpoint beside it, as at-least-once allows), and it
--         keeps ARGV[3] as qt, so the call sent again (go-redis resends a
--         command whose reply was lost) answers "requeued" as the first
--         time; "" leaves an existing record alone (idempotent)
-- ARGV[4] n: the next n values (name, value pairs) are written with a new
--         record only (a requeued one keeps its own: when it was first
--         queued, say)
-- ARGV[5..] those pairs, then field, value pairs written with a new record
--         or a requeued one
--
-- Returns {"new", entry} | {"requeued", entry} | {"exists", state}.
local again = string.sub(ARGV[3], 1, 6) == 'again:'
local r = redis.call('HMGET', KEYS[1], 'st', 'qt', 'eid')
local st = r[1]
-- (Whatever its state now: a worker may have settled the item since.)
if again and r[2] == ARGV[3] then
  return {'requeued', r[3]}
end
if st and not again then
  return {'exists', st}
end
local eid = redis.call('XADD', KEYS[2], '*', 't', ARGV[1], 's', ARGV[2])
-- One HSET of every field (each command a script runs costs Redis time).
local f = {'st', '1', 'eid', eid, 'ratt', '0'}
local firstOnly = tonumber(ARGV[4])
for i = 5 + (st and firstOnly or 0), #ARGV do
  f[#f + 1] = ARGV[i]
end
if st then
  -- Queued again: no retry of its earlier run may come back, and the
  -- record and its attempts are kept until it settles again.
  redis.call('ZREM', KEYS[3], ARGV[1] .. '\t' .. ARGV[2])
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[4])
  f[#f + 1] = 'qt'
  f[#f + 1] = ARGV[3]
  f[#f + 1] = 'ls'
  f[#f + 1] = ''
  redis.call('HSET', KEYS[1], unpack(f))
  return {'requeued', eid}
end
f[#f + 1] = 'att'
f[#f + 1] = '0'
redis.call('HSET', KEYS[1], unpack(f))
return {'new', eid}
