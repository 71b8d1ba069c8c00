-- Rewrites a credential's record and sealed key together, only if neither
-- changed since they were read (a replacement or deletion meanwhile wins).
-- KEYS: the credential's record, its sealed key.
-- ARGV: the record read, the new record, the sealed key read, the new
-- sealed key.
-- Returns 1, or 0 when either changed.
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[4])
return 1
