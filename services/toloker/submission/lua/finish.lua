-- finish: record the outcome of one delivery attempt, atomically with the
-- pool's totals, and release the lease.
--
-- KEYS[1] submission record
-- KEYS[2] pool totals
-- KEYS[3] pool dead-letter index (zset)
-- KEYS[4] outbox stream of the shard
-- KEYS[5] retry schedule of the shard (zset, score = due time in ms)
-- KEYS[6] the submission's lease
-- KEYS[7] the session's set of unsettled submissions
-- KEYS[8] the Toloker's pay counters in this shard (hash: delivered, dead,
--         rd = reward delivered in units of 1e-8 USD), read by the Toloker
--         registry; changed here, with the state, so counted exactly once
-- KEYS[9] the shard's event intents (stream), relayed to the tenant's
--         event log: written here, with the state change it reports
-- KEYS[10] the Toloker's set of unsettled submissions in the pool
-- KEYS[11] the shard's submissions waiting to be paid after a failed
--          attempt (zset of ARGV[9], score = since when): a retried one
--          joins it (NX, from its creation), a settled one leaves it
--
-- ARGV[1]  outcome: delivered | retry | dead | defer (not attempted: an
--          earlier submission of the session is unsettled; like retry, but
--          it counts no attempt and keeps the last error)
-- ARGV[2]  stream entry id that carried the attempt
-- ARGV[3]  lease token
-- ARGV[4]  consumer group
-- ARGV[5]  attempt time, unix ms (for the record)
-- ARGV[6]  Toloka's error (protobuf TolokaError, "" for none)
-- ARGV[7]  flags: three characters of 0/1 (delivered)
-- ARGV[8]  backoff in ms (retry)
-- ARGV[9]  schedule member (tenant TAB submission id)
-- ARGV[10] submission id
-- ARGV[11] the pay counters' retention in ms
-- ARGV[12] the submission.delivered event (protobuf)
-- ARGV[13] the submission.dead event (protobuf)
-- ARGV[14] the submission's creation time, unix ms (its id's)
--
-- Returns {outcome applied} | {"skip", state} when the submission was
-- already DELIVERED (or DEAD for a retry) | {"gone"}.
-- neg negates a non-negative integer string without going through a Lua
-- number (exact for any size; HINCRBY refuses "-0").
local function neg(n)
  if n == '0' then
    return '0'
  end
  return '-' .. n
end
local cur = redis.call('GET', KEYS[6])
if cur and string.sub(cur, 1, #ARGV[3] + 1) == ARGV[3] .. '|' then
  redis.call('DEL', KEYS[6])
end
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[4], ARGV[4], ARGV[2])
  redis.call('XDEL', KEYS[4], ARGV[2])
end
local r = redis.call('HMGET', KEYS[1], 'st', 'eid', 'amt', 'ft')
local st, eid, amt = r[1], r[2], r[3]
if not st then
  return {'gone'}
end
-- ft is "<lease token>|<answer>" of the last call this script answered:
-- a call sent again (go-redis resends a command whose reply was lost) is
-- answered as the first time, and counts no attempt again. A lease token
-- is new to every claim.
local own = ARGV[3] .. '|'
if r[4] and string.sub(r[4], 1, #own) == own then
  return {string.sub(r[4], #own + 1)}
end
local function answer(a, s)
  redis.call('HSET', KEYS[1], 'ft', own .. a)
  if s then
    return {a, s}
  end
  return {a}
end
-- A settled submission leaves the sets a close_session waits behind.
local function unpend()
  redis.call('SREM', KEYS[7], ARGV[10])
  redis.call('SREM', KEYS[10], ARGV[10])
end
-- A settled submission drops its next attempt time and leaves the unpaid
-- set, which only one that waited can be in (a retry, a defer or an
-- operator's retry set its nat): a submit paid at its first attempt costs
-- the set nothing.
local function unwait()
  if redis.call('HDEL', KEYS[1], 'nat') == 1 then
    redis.call('ZREM', KEYS[11], ARGV[9])
  end
end
local defer = ARGV[1] == 'defer'
-- An attempt counts only where its outcome applies: a call that finds the
-- submission moved on (another entry, or settled) is this call sent again
-- after later attempts, or an attempt superseded; it counts nothing.
local function count()
  if not defer then
    redis.call('HINCRBY', KEYS[1], 'att', 1)
    redis.call('HSET', KEYS[1], 'lat', ARGV[5])
  end
end
if ARGV[1] == 'delivered' then
  if st == '2' then
    return answer('skip', st)
  end
  count()
  if eid and eid ~= '' and eid ~= ARGV[2] then
    redis.call('XACK', KEYS[4], ARGV[4], eid)
    redis.call('XDEL', KEYS[4], eid)
  end
  redis.call('ZREM', KEYS[5], ARGV[9])
  redis.call('HSET', KEYS[1], 'st', '2', 'fl', ARGV[7], 'dt', ARGV[5], 'eid', '')
  unwait()
  if st == '1' then
    redis.call('HINCRBY', KEYS[2], 'queued', -1)
    redis.call('HINCRBY', KEYS[2], 'rq', neg(amt))
  else
    redis.call('HINCRBY', KEYS[2], 'dead', -1)
    redis.call('ZREM', KEYS[3], ARGV[10])
  end
  redis.call('HINCRBY', KEYS[2], 'delivered', 1)
  redis.call('HINCRBY', KEYS[2], 'rd', amt)
  if st ~= '1' then
    redis.call('HINCRBY', KEYS[8], 'dead', -1)
  end
  redis.call('HINCRBY', KEYS[8], 'delivered', 1)
  redis.call('HINCRBY', KEYS[8], 'rd', amt)
  redis.call('PEXPIRE', KEYS[8], ARGV[11])
  unpend()
  redis.call('XADD', KEYS[9], '*', 'e', ARGV[12])
  return answer('delivered')
end
if st ~= '1' or eid ~= ARGV[2] then
  -- Delivered or dead already, or another attempt has moved it on.
  return answer('skip', st)
end
count()
if defer then
  redis.call('HSET', KEYS[1], 'eid', '')
else
  redis.call('HSET', KEYS[1], 'err', ARGV[6], 'eid', '')
end
if ARGV[1] == 'retry' or defer then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[5], string.format('%.0f', now + tonumber(ARGV[8])), ARGV[9])
  redis.call('HSET', KEYS[1], 'nat', string.format('%.0f', tonumber(ARGV[5]) + tonumber(ARGV[8])))
  -- The sets a close_session waits behind live while it waits: their 30
  -- days run from its latest attempt, not from the last submit that
  -- joined them (a pool stopped for over a month lost them).
  redis.call('PEXPIRE', KEYS[7], 2592000000)
  redis.call('PEXPIRE', KEYS[10], 2592000000)
  -- NX: one queued again by an operator keeps the time of that retry.
  redis.call('ZADD', KEYS[11], 'NX', ARGV[14], ARGV[9])
  return answer(ARGV[1])
end
redis.call('HSET', KEYS[1], 'st', '3')
unwait()
redis.call('HINCRBY', KEYS[2], 'queued', -1)
redis.call('HINCRBY', KEYS[2], 'rq', neg(amt))
redis.call('HINCRBY', KEYS[2], 'dead', 1)
redis.call('HINCRBY', KEYS[8], 'dead', 1)
redis.call('PEXPIRE', KEYS[8], ARGV[11])
redis.call('ZADD', KEYS[3], 0, ARGV[10])
unpend()
redis.call('XADD', KEYS[9], '*', 'e', ARGV[13])
return answer('dead')
