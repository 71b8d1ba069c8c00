-- Replaces a session record with a changed one if it is still the record
-- read (compare and swap), keeping its TTL. Every change adds a new random
-- revision to the record, which keeps its last few: finding this change's
-- revision in the record means this swap was applied already (a batch
-- resent after a lost reply, maybe after other changes), not that it
-- should be applied again.
-- KEYS: the session record. ARGV: the record read, the changed record,
-- the change's revision.
-- Returns 1 when the change is in the stored record, 0 when the record
-- changed meanwhile (or is gone): read it again.
local cur = redis.call('GET', KEYS[1])
if cur and string.find(cur, ARGV[3], 1, true) then
  return 1
end
if cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
