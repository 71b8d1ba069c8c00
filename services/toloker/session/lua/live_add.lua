-- A session was started: lists it under its pool until it expires,
-- dropping entries that expired, keeps the index alive as long as its
-- longest session, and lifts the Toloker's bar from an earlier revoked
-- session in the pool (a fresh landing, with an assignment Toloka gave
-- them, lifts it). Both keys are in the pool's slot.
-- KEYS: the pool's live index, the Toloker's bar in the pool.
-- ARGV: session id, expiry (ms), now (ms).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
-- A bar lifted leaves which session lifted it and when it landed
-- ("lifted:<ms>:<session id>", for the bar's remaining time), so that an
-- earlier session's end seen again later (a late delivery of its submit,
-- a resent End) does not bar the Toloker's new session (bar.lua).
local bar = redis.call('GET', KEYS[2])
if bar and string.sub(bar, 1, 7) ~= 'lifted:' then
  redis.call('SET', KEYS[2], 'lifted:' .. ARGV[3] .. ':' .. ARGV[1], 'KEEPTTL')
end
return 1
