-- Marks a one-time code used and returns its session's record: nil when
-- the code was used before, '' when the session is gone. The marker holds
-- the exchange's own token, so this exchange sent again (go-redis resends
-- a command whose reply was lost) is answered as the first time, not as a
-- code used before.
-- KEYS: the code's used-marker, session. ARGV: marker TTL (ms), token.
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) and redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return false
end
return redis.call('GET', KEYS[2]) or ''
