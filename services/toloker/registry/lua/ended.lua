-- ended: a session ended. Counts the end once: only while the session is
-- still listed live (a repeated end, or the end of a session that expired
-- first, counts nothing), records the activity and, in the same step, the
-- session.ended event (after session.started when that is still pending).
--
-- KEYS[1] the Toloker's record (hash)
-- KEYS[2] the tenant's activity index
-- KEYS[3] the pool's activity index
-- KEYS[4] the tenant's deadlines
-- KEYS[5] the tenant's session snapshots
-- KEYS[6] the tenant's event log
-- KEYS[7] the tenant's recorded event ids
--
-- ARGV[1] session id
-- ARGV[2] the end's counter field (e:closed, e:revoked, ...)
-- ARGV[3] now (ms)
-- ARGV[4] retention (ms)
-- ARGV[5] user id
-- ARGV[6] session.started event id
-- ARGV[7] session.started event (protobuf)
-- ARGV[8] session.ended event id
-- ARGV[9] session.ended event (protobuf)
-- ARGV[10] event retention (ms)
--
-- Returns 1 when the end was counted, 0 otherwise.
if redis.call('HDEL', KEYS[1], 's:' .. ARGV[1]) == 0 then
  return 0
end
redis.call('ZREM', KEYS[4], ARGV[5] .. '\t' .. ARGV[1])
if redis.call('HDEL', KEYS[5], 'p:' .. ARGV[1]) == 1 then
  crowdgate_append_event(KEYS[6], KEYS[7], ARGV[6], ARGV[7], ARGV[10])
end
redis.call('HDEL', KEYS[5], ARGV[1])
crowdgate_append_event(KEYS[6], KEYS[7], ARGV[8], ARGV[9], ARGV[10])
local now = tonumber(ARGV[3])
local retention = tonumber(ARGV[4])
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
local cur = redis.call('HGET', KEYS[1], 'a')
if not cur or tonumber(cur) < now then
  redis.call('HSET', KEYS[1], 'a', ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], retention)
for _, k in ipairs({KEYS[2], KEYS[3]}) do
  local s = redis.call('ZSCORE', k, ARGV[5])
  if not s or tonumber(s) < now then
    redis.call('ZADD', k, ARGV[3], ARGV[5])
  end
  if redis.call('PTTL', k) < retention then
    redis.call('PEXPIRE', k, retention)
  end
end
return 1
