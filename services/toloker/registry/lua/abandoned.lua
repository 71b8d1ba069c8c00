-- abandoned: a session started was not stored after all. Takes back its
-- count, once (only while it is listed).
--
-- KEYS[1] the Toloker's record (hash)
-- ARGV[1] session id
if redis.call('HDEL', KEYS[1], 's:' .. ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'n', -1)
  return 1
end
return 0
