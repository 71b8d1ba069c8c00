-- accept: record a new submission in the outbox, atomically with its
-- idempotency key, its pool's totals and indexes, and its stream entry.
-- Every key shares the shard's hash tag (one Redis Cluster slot).
--
-- KEYS[1] idempotency key (tenant, pool, retry_id) -> submission id
-- KEYS[2] submission record (hash)
-- KEYS[3] pool totals (hash)
-- KEYS[4] pool index (zset, lexicographic by id)
-- KEYS[5] outbox stream of the shard
-- KEYS[6] the submission's delivery lease
-- KEYS[7] the session's set of unsettled submissions
-- KEYS[8] the assignment's submissions (zset by id), for the review queue
-- KEYS[9] the shard's pools with submissions (set of tenant TAB pool), which
--         the retention sweep walks
-- KEYS[10] the arbiter layout's claim key for the retry_id in this shard
--          (layout.go): a claim there naming another shard decides
-- KEYS[11] the Toloker's set of unsettled submissions in the pool (every
--          submit joins it, with a session or without: a close_session
--          waits behind it)
--
-- ARGV[1]  "1" when KEYS[1] is used (the platform gave a retry_id)
-- ARGV[2]  rejection ("" to accept): returned unless this is a replay
-- ARGV[3]  submission id
-- ARGV[4]  tenant id
-- ARGV[5]  record body (protobuf)
-- ARGV[6]  reward in units of 1e-8 USD
-- ARGV[7]  Toloka pool id
-- ARGV[8]  credential id
-- ARGV[9]  request fingerprint
-- ARGV[10] lease token for the accepting replica's inline attempt ("" for none)
-- ARGV[11] lease TTL in milliseconds
-- ARGV[12] "1" when the submission belongs to a session (KEYS[7] is used)
-- ARGV[13] "1" when the submission names its assignment (KEYS[8] is used)
-- ARGV[14] the pool's member of KEYS[9]
-- ARGV[15] the keys holding claims of this retry_id that this submit wrote
--          or followed (layout.go; "" for none), kept as arb for the
--          retention sweep
-- ARGV[16] this shard
-- ARGV[17] "1" when KEYS[10] is used
--
-- Returns {"replay", id} | {"reject", reason} | {"new", id, stream entry id}
-- | {"forward", shard}: the arbiter's claim gives the retry_id to that
-- shard; nothing was written. KEYS[1] holds a submission id or nothing (a
-- legacy claim "fwd:<shard>", written for the version before, counts as
-- nothing: claims decide in their own keys).
--
-- The same call run twice (the client sends its pipeline again when a
-- reply is lost) is answered as its first run was and writes nothing
-- again: a submission id is new to every call, so a record with it is
-- this call's own. (Without this, a second run queued the submission
-- twice in the totals, or answered its own first run as a replay.)
local mine = redis.call('HMGET', KEYS[2], 'st', 'eid')
if mine[1] then
  return {'new', ARGV[3], mine[2] or ''}
end
if ARGV[1] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing and string.sub(existing, 1, 4) ~= 'fwd:' then
    return {'replay', existing}
  end
  if ARGV[17] == '1' then
    local c = redis.call('GET', KEYS[10])
    if c and c ~= 'fwd:' .. ARGV[16] then
      return {'forward', string.sub(c, 5)}
    end
  end
end
if ARGV[2] ~= '' then
  -- A rejected submit writes nothing (a replay of an accepted one was
  -- answered above).
  return {'reject', ARGV[2]}
end
if ARGV[1] == '1' then
  redis.call('SET', KEYS[1], ARGV[3])
end
local eid = redis.call('XADD', KEYS[5], '*', 't', ARGV[4], 's', ARGV[3])
redis.call('HSET', KEYS[2], 'pb', ARGV[5], 'st', '1', 'amt', ARGV[6],
  'tp', ARGV[7], 'cred', ARGV[8], 'fp', ARGV[9], 'eid', eid)
if ARGV[15] ~= '' then
  redis.call('HSET', KEYS[2], 'arb', ARGV[15])
end
-- received is queued + delivered + dead: only the states are counted.
redis.call('HINCRBY', KEYS[3], 'queued', 1)
redis.call('HINCRBY', KEYS[3], 'rq', ARGV[6])
redis.call('ZADD', KEYS[4], 0, ARGV[3])
redis.call('SADD', KEYS[9], ARGV[14])
if ARGV[10] ~= '' then
  local t = redis.call('TIME')
  local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[11])
  redis.call('SET', KEYS[6], ARGV[10] .. '|' .. string.format('%.0f', exp), 'PX', ARGV[11])
end
if ARGV[12] == '1' then
  redis.call('SADD', KEYS[7], ARGV[3])
  redis.call('PEXPIRE', KEYS[7], 2592000000)
end
redis.call('SADD', KEYS[11], ARGV[3])
redis.call('PEXPIRE', KEYS[11], 2592000000)
if ARGV[13] == '1' then
  redis.call('ZADD', KEYS[8], 0, ARGV[3])
end
return {'new', ARGV[3], eid}
