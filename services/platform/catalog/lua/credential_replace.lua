-- Replaces a credential's record and its sealed key together, if the
-- credential exists.
-- KEYS: the credential's record, its sealed key. ARGV: the new record, the
-- new sealed key.
-- Returns 1, or 0 when the credential does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
