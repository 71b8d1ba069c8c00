-- bar: bars a Toloker from a pool after a session of theirs there ended
-- revoked, restricted or filtered out, unless a landing made after that
-- end lifted the bar (live_add.lua leaves "lifted:<ms>"): the end of an
-- earlier session seen again later (a late delivery of its submit, a
-- resent End) does not bar the Toloker's newer session, while an end whose
-- bar was lost to a failure still bars when it is seen again.
--
-- KEYS[1] the Toloker's bar in the pool
-- ARGV[1] the reason (an EndReason name)
-- ARGV[2] the session's end time (unix ms)
-- ARGV[3] how long the bar lasts (ms)
--
-- Returns 1 when the bar was written, 0 when a later landing had lifted it.
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 7) == 'lifted:' and tonumber(string.sub(v, 8)) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
