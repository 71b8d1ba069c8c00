-- A landing lists its session under its pool before it stores the session
-- (a session is stored only once listed), unless the pool is fenced: an
-- archive is checking the pool, or archived it (fence.lua). It drops
-- entries that expired and keeps the index alive as long as its longest
-- session. Both keys are in the pool's slot.
-- KEYS: the pool's live index, its fence.
-- ARGV: session id, expiry (ms), now (ms).
-- Returns 1 when listed; 0 when the pool is archived, -1 when an archive
-- is checking it (nothing listed).
local fence = redis.call('GET', KEYS[2])
if fence == 'archived' then
  return 0
elseif fence then
  return -1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
