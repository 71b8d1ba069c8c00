-- abandoned: a session started was not stored after all. Takes back its
-- count, once (only while it is listed), and its deadline and snapshot: it
-- raises no event.
--
-- KEYS[1] the Toloker's record (hash)
-- KEYS[2] the tenant's deadlines
-- KEYS[3] the tenant's session snapshots
-- ARGV[1] session id
-- ARGV[2] user id
if redis.call('HDEL', KEYS[1], 's:' .. ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'n', -1)
  redis.call('ZREM', KEYS[2], ARGV[2] .. '\t' .. ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1], 'p:' .. ARGV[1])
  return 1
end
return 0
