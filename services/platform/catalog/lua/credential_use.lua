-- Adds a project to a credential's users if the credential exists.
-- KEYS: the credential's record, its users. ARGV: project id.
-- Returns 1, or 0 when the credential does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
