-- Lists an active session under its pool until it expires, dropping
-- entries that expired, and keeps the index alive as long as its longest
-- session.
-- KEYS: the pool's live index. ARGV: session id, expiry (ms), now (ms).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
