-- expired: the expiry sweep ends a session whose deadline has passed (the
-- Toloker walked away). Only while it is still listed live, so exactly one
-- sweep (of however many replicas) or end records it: its session.ended
-- event with reason EXPIRED, after session.started when that is pending.
--
-- KEYS[1] the Toloker's record (hash)
-- KEYS[2] the tenant's deadlines
-- KEYS[3] the tenant's session snapshots
-- KEYS[4] the tenant's event log
-- KEYS[5] the tenant's recorded event ids
-- ARGV[1] session id
-- ARGV[2] user id
-- ARGV[3] now (ms)
-- ARGV[4] session.started event id
-- ARGV[5] session.started event (protobuf)
-- ARGV[6] session.ended event id
-- ARGV[7] session.ended event (protobuf)
-- ARGV[8] event retention (ms)
--
-- Returns 1 when it recorded the expiry, 0 otherwise.
local member = ARGV[2] .. '\t' .. ARGV[1]
local due = redis.call('ZSCORE', KEYS[2], member)
if not due or tonumber(due) > tonumber(ARGV[3]) then
  return 0
end
redis.call('ZREM', KEYS[2], member)
local listed = redis.call('HDEL', KEYS[1], 's:' .. ARGV[1]) == 1
local pending = redis.call('HDEL', KEYS[3], 'p:' .. ARGV[1]) == 1
redis.call('HDEL', KEYS[3], ARGV[1])
if not listed then
  return 0
end
if pending then
  crowdgate_append_event(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[8])
end
crowdgate_append_event(KEYS[4], KEYS[5], ARGV[6], ARGV[7], ARGV[8])
return 1
