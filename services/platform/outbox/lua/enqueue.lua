-- enqueue: write an item's record and its stream entry, once.
--
-- KEYS[1] the item's record (hash)
-- KEYS[2] stream of the shard
-- KEYS[3] retry schedule of the shard
-- KEYS[4] the item's journal (list)
--
-- ARGV[1] tenant
-- ARGV[2] item id
-- ARGV[3] "again:<token>", the token new to the call: a settled record
--         (done or dead) is queued again, and so is one waiting in the
--         schedule for a retry (queued, without a live entry: it gets an
--         entry now), its run's attempt count (ratt) starting at 0 (an
--         operator's redelivery), and keeps ARGV[3] as qt, so the call sent
--         again (go-redis resends a command whose reply was lost) answers
--         "requeued" as the first time; "" leaves an existing record alone
--         (idempotent)
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
-- A queued record with a live entry is in the stream or in a worker's
-- hands: it is attempted soon, whatever this call does.
local waiting = st == '1' and (not r[3] or r[3] == '')
if st and not (again and (st ~= '1' or waiting)) then
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
  redis.call('HSET', KEYS[1], unpack(f))
  return {'requeued', eid}
end
f[#f + 1] = 'att'
f[#f + 1] = '0'
redis.call('HSET', KEYS[1], unpack(f))
return {'new', eid}
