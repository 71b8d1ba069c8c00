-- Replaces a session record with a changed one if it is still the record
-- read (compare and swap), keeping its TTL. Every changed record carries a
-- new random revision, so finding the changed record already there means
-- this swap was applied (a batch resent after a lost reply), not that
-- another change wrote the same bytes.
-- KEYS: the session record. ARGV: the record read, the changed record.
-- Returns 1 when the changed record is stored, 0 when the record changed
-- meanwhile (or is gone): read it again.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[2] then
  return 1
end
if cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
