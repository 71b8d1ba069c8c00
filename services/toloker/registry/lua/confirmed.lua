-- confirmed: a started session was stored. Records its session.started
-- event once (while its snapshot is marked pending), and returns the
-- Toloker's restrictions as they are now: a ban made while the session was
-- being stored may have looked for it before it existed, and the landing
-- ends it then.
--
-- KEYS[1] the tenant's session snapshots
-- KEYS[2] the tenant's event log
-- KEYS[3] the tenant's recorded event ids
-- KEYS[4] the Toloker's restrictions (hash: ban id -> restriction)
-- ARGV[1] session id
-- ARGV[2] session.started event id
-- ARGV[3] session.started event (protobuf)
-- ARGV[4] event retention (ms)
--
-- Returns {recorded (0|1), restriction fields and values...}.
local out = {0}
if redis.call('HDEL', KEYS[1], 'p:' .. ARGV[1]) == 1 then
  crowdgate_append_event(KEYS[2], KEYS[3], ARGV[2], ARGV[3], ARGV[4])
  out[1] = 1
end
local rs = redis.call('HGETALL', KEYS[4])
for i = 1, #rs do
  out[#out + 1] = rs[i]
end
return out
