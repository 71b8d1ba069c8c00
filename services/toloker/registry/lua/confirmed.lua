-- confirmed: a started session was stored. Records its session.started
-- event once (while its snapshot is marked pending).
--
-- KEYS[1] the tenant's session snapshots
-- KEYS[2] the tenant's event log
-- KEYS[3] the tenant's recorded event ids
-- ARGV[1] session id
-- ARGV[2] session.started event id
-- ARGV[3] session.started event (protobuf)
-- ARGV[4] event retention (ms)
if redis.call('HDEL', KEYS[1], 'p:' .. ARGV[1]) == 1 then
  crowdgate_append_event(KEYS[2], KEYS[3], ARGV[2], ARGV[3], ARGV[4])
  return 1
end
return 0
