-- Stores a final answer about the assignment (when ARGV[2] is not empty)
-- and releases the resolve lock if this landing holds it.
-- KEYS: resolve lock, cached answer. ARGV: lock token, answer, answer TTL (ms).
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
