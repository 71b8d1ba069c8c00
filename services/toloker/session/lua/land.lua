-- A first landing's read: the session if one exists {1, record}; else a
-- cached final answer {2, answer}; else it takes the resolve lock {3}, or
-- reports that another landing holds it {4}.
-- KEYS: session, cached answer, resolve lock. ARGV: lock TTL (ms), lock token.
local s = redis.call('GET', KEYS[1])
if s then
  return {1, s}
end
local n = redis.call('GET', KEYS[2])
if n then
  return {2, n}
end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) then
  return {3}
end
return {4}
