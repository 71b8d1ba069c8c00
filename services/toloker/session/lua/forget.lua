-- Drops a cached answer about an assignment if it is still the one read.
-- KEYS: cached answer. ARGV: the answer read.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
