-- Marks a one-time code used and returns its session's record: nil when
-- the code was used before, '' when the session is gone.
-- KEYS: the code's used-marker, session. ARGV: marker TTL (ms).
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return false
end
return redis.call('GET', KEYS[2]) or ''
