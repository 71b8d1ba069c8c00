-- Stores a new session unless one exists, releases the resolve lock if
-- this landing holds it, and returns {created, record} of whichever
-- session is stored ({0, ''} when none is).
-- KEYS: session, resolve lock. ARGV: record, TTL (ms), lock token.
local created = 0
local s = ARGV[1]
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  created = 1
else
  s = redis.call('GET', KEYS[1])
end
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
if not s then
  return {0, ''}
end
return {created, s}
