-- Rewrites one signing key's record, only if it did not change since it
-- was read (a key retired meanwhile stays retired).
-- KEYS: the hash of signing keys. ARGV: the kid, the record read, the new
-- record.
-- Returns 1, or 0 when the record changed or is gone.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
