-- A first landing's step: the session if one exists {1, record}; else,
-- when the assignment's landing limit is given, a slot in it, or {5, wait
-- (µs), limit} when it has no room now; else a cached final answer {2,
-- answer}; else it takes the resolve lock {3}, or reports that another
-- landing holds it {4}. The text starts with ratelimit's crowdgate_reserve.
-- KEYS: session, cached answer, resolve lock[, the assignment's limits].
-- ARGV: lock TTL (ms), lock token[, crowdgate_reserve's arguments].
local s = redis.call('GET', KEYS[1])
if s then
  return {1, s}
end
-- The lock held with this landing's own token: this step sent again after
-- its reply was lost (go-redis resends it), which took the lock (and spent
-- the limit) the first time.
if redis.call('GET', KEYS[3]) == ARGV[2] then
  return {3}
end
if #KEYS > 3 then
  local r = crowdgate_reserve({unpack(KEYS, 4)}, ARGV, 3)
  if r[1] ~= 1 then
    return {5, r[2], r[3]}
  end
end
local n = redis.call('GET', KEYS[2])
if n then
  return {2, n}
end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) then
  return {3}
end
return {4}
