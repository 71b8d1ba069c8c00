-- A stored session's landing lifts the Toloker's bar from an earlier
-- revoked session in the pool (a fresh landing, with an assignment Toloka
-- gave them, lifts it). It leaves which session lifted it and when it
-- landed ("lifted:<ms>:<session id>", for the bar's remaining time), so
-- that an earlier session's end seen again later (a late delivery of its
-- submit, a resent End) does not bar the Toloker's new session (bar.lua).
-- KEYS: the Toloker's bar in the pool.
-- ARGV: session id, now (ms).
local bar = redis.call('GET', KEYS[1])
if bar and string.sub(bar, 1, 7) ~= 'lifted:' then
  redis.call('SET', KEYS[1], 'lifted:' .. ARGV[2] .. ':' .. ARGV[1], 'KEEPTTL')
end
return 1
