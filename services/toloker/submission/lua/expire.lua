-- expire: delete settled submissions whose retention has passed, each with
-- its index entries and idempotency key, in one step, so that a reader
-- never finds an idempotency key without its record. Every key is in the
-- shard's slot.
--
-- For each submission i (0-based), KEYS[5i+1..5i+5]:
--   record, pool index, pool dead letters, assignment index, idempotency key
-- and ARGV[4i+1..4i+4]:
--   submission id;
--   the state the sweep read ("2" delivered, "3" dead; "" for an index
--   entry without a record);
--   the settle time it read (dt of a delivered one, lat of a dead one);
--   "1" when the idempotency key is the submission's (a retry_id was given).
--
-- A submission is deleted only if it is still in the state, with the settle
-- time, the sweep judged: one that was requeued (or settled again) since is
-- left for a later sweep. An index entry without a record (another
-- replica's sweep deleted both since this one read the index) is removed.
-- Returns how many records were deleted.
local n = 0
for i = 0, #ARGV / 4 - 1 do
  local k, a = 5 * i, 4 * i
  local id, want, settled, idem = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local r = redis.call('HMGET', KEYS[k + 1], 'st', 'dt', 'lat')
  local st = r[1]
  local ok
  if want == '' then
    ok = not st
  elseif st == want then
    local at = r[3]
    if st == '2' then
      at = r[2]
    end
    ok = at == settled
  end
  if ok then
    if st then
      redis.call('DEL', KEYS[k + 1])
      n = n + 1
    end
    redis.call('ZREM', KEYS[k + 2], id)
    redis.call('ZREM', KEYS[k + 3], id)
    redis.call('ZREM', KEYS[k + 4], id)
    if idem == '1' and redis.call('GET', KEYS[k + 5]) == id then
      redis.call('DEL', KEYS[k + 5])
    end
  end
end
return n
