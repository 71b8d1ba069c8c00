-- bar: bars a Toloker from a pool after a session of theirs there ended
-- revoked, restricted or filtered out, unless a later session's landing
-- lifted the bar (lift.lua leaves "lifted:<ms>:<session id>"): an
-- earlier session's end seen again later (a late delivery of its submit,
-- a resent End) does not bar the Toloker's newer session. The session that
-- lifted the bar is always barred by its own end, and the landings
-- compared are minutes apart, so replicas' clocks need not agree to the
-- millisecond. (An end whose bar was lost to a failure and that is seen
-- again only after a later landing bars that later session's submits by
-- pool and user until the next landing.)
--
-- KEYS[1] the Toloker's bar in the pool
-- ARGV[1] the reason (an EndReason name)
-- ARGV[2] the ending session's create time (its landing; unix ms)
-- ARGV[3] the ending session's id
-- ARGV[4] how long the bar lasts (ms)
--
-- Returns 1 when the bar was written, 0 when a later session had lifted it.
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 7) == 'lifted:' then
  local at, sid = string.match(v, '^lifted:(%d+):(.*)$')
  if at and sid ~= ARGV[3] and tonumber(at) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return 1
