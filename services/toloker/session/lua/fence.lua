-- An archive fences a pool and counts its live sessions in one step: a
-- session listed before is counted, and none is listed after (enlist.lua
-- refuses), so none starts that the archive did not see.
--
-- The fence's values:
--   <token>            an archive checking or archiving the pool
--   <token>|unsettled  the same, having taken over an unsettled fence
--   unsettled          an archive that did not hear whether Toloka
--                      archived the pool left it (unfence.lua); the next
--                      archive may take it
--   archived           the pool is archived (a plain SET, no expiry)
-- Fencing again with the same token renews the fence for ARGV[2] ms.
--
-- A submit by pool and user (no session: the side door) is listed in the
-- pool's side-door index while it is accepted (sidedoor: enlist.lua on that
-- index), and counted with the sessions: one listed before the fence is
-- counted, and none is listed after, so a submit the archive did not see
-- is either refused or queued before the archive counts queued submits.
--
-- KEYS: the pool's fence, its live index, its side-door index.
-- ARGV: holder token, TTL (ms), now (ms).
-- Returns the count of sessions and side-door submits live after now, or
-- -1 when another archive holds the fence (nothing changed).
local cur = redis.call('GET', KEYS[1])
local inherited = ARGV[1] .. '|unsettled'
if cur == 'archived' then
  -- stays
elseif not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif cur == 'unsettled' or cur == inherited then
  redis.call('SET', KEYS[1], inherited, 'PX', ARGV[2])
else
  return -1
end
return redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[3], '+inf') + redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[3], '+inf')
