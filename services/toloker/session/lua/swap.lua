-- Replaces a session record with a changed one if it is still the record
-- read (compare and swap), keeping its TTL. Every change adds a new random
-- revision to the record, which keeps its last few: finding this change's
-- revision in the record means this swap was applied already (a batch
-- resent after a lost reply, maybe after other changes), not that it
-- should be applied again.
-- KEYS: the session record. ARGV: the record read, the changed record,
-- the change's revision.
-- KEYS[2], when given: the set of what the session counted (the
-- submissions in its totals), and ARGV[4] the change's member of it: a
-- change whose member is there already is not made again, however long
-- after (a submit counted once), and one made adds it, in this step.
-- Returns 1 when the change is in the stored record, 0 when the record
-- changed meanwhile (or is gone): read it again; 2 when the change's
-- member was counted already (nothing changed).
local cur = redis.call('GET', KEYS[1])
if cur and string.find(cur, ARGV[3], 1, true) then
  return 1
end
if cur ~= ARGV[1] then
  return 0
end
if KEYS[2] then
  if redis.call('SADD', KEYS[2], ARGV[4]) == 0 then
    return 2
  end
  -- It lives as long as the session (30 days when the session has no
  -- expiry).
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    ttl = 2592000000
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
