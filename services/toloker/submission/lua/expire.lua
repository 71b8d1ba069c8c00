-- expire: delete delivered submissions whose retention has passed, each
-- with its index entries and idempotency key, in one step, so that a reader
-- never finds an idempotency key without its record. Every key is in the
-- shard's slot.
--
-- For each submission i (0-based), KEYS[4i+1..4i+4]:
--   record, pool index, assignment index, idempotency key
-- and ARGV[3i+1..3i+3]:
--   submission id;
--   the delivery time the sweep read (dt, ms; "" for an index entry it
--   found without a record);
--   "1" when the idempotency key is the submission's (a retry_id was given).
--
-- A submission is deleted only if it is still DELIVERED at that time (the
-- sweep judged its retention from it). An index entry without a record
-- (another replica's sweep deleted both since this one read the index) is
-- removed. Returns how many records were deleted.
local n = 0
for i = 0, #ARGV / 3 - 1 do
  local k, a = 4 * i, 3 * i
  local id, delivered, idem = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local r = redis.call('HMGET', KEYS[k + 1], 'st', 'dt')
  local ok
  if delivered == '' then
    ok = not r[1]
  else
    ok = r[1] == '2' and r[2] == delivered
  end
  if ok then
    if r[1] then
      redis.call('DEL', KEYS[k + 1])
      n = n + 1
    end
    redis.call('ZREM', KEYS[k + 2], id)
    redis.call('ZREM', KEYS[k + 3], id)
    if idem == '1' and redis.call('GET', KEYS[k + 4]) == id then
      redis.call('DEL', KEYS[k + 4])
    end
  end
end
return n
