-- An archive that did not archive a pool lets go of its fence (fence.lua):
-- only its own (another archive's, or "archived", stays). The fence is
-- lifted, unless the archive may have been made in Toloka: ARGV[2] =
-- "unsettled" (this archive did not hear Toloka's answer), or the fence was
-- taken over from an unsettled one; then it stays "unsettled" for ARGV[3]
-- ms (or its remaining time, when ARGV[3] is 0).
-- KEYS: the pool's fence. ARGV: holder token, "" or "unsettled", TTL (ms).
local cur = redis.call('GET', KEYS[1])
local inherited = ARGV[1] .. '|unsettled'
if cur ~= ARGV[1] and cur ~= inherited then
  return 0
end
if ARGV[2] ~= 'unsettled' and cur ~= inherited then
  return redis.call('DEL', KEYS[1])
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], 'unsettled', 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], 'unsettled', 'KEEPTTL')
end
return 1
