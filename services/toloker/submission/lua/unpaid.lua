-- unpaid: since when the shard's oldest submission waiting to be paid has
-- waited.
--
-- KEYS[1] the shard's submissions waiting to be paid (zset of tenant TAB
--         submission id, score = since when, unix ms)
--
-- ARGV[1] the shard's record key prefix (a record is <prefix><tenant>:<id>)
-- ARGV[2] most members to look at
--
-- A member whose record is not QUEUED (settled by a replica from before
-- the set, which did not take it out, or gone) is removed, so it cannot
-- read as unpaid for ever; the check and the removal are one step, so an
-- operator's retry of that submission, which adds it again, is not lost.
--
-- Returns {member, score} of the oldest QUEUED member; -1 when the first
-- ARGV[2] members were all removed and more remain (call again); false
-- when the set is empty.
local head = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
for i = 1, #head, 2 do
  local tab = string.find(head[i], '\t', 1, true)
  local st = nil
  if tab then
    st = redis.call('HGET', ARGV[1] .. string.sub(head[i], 1, tab - 1) .. ':' .. string.sub(head[i], tab + 1), 'st')
  end
  if st == '1' then
    return {head[i], head[i + 1]}
  end
  redis.call('ZREM', KEYS[1], head[i])
end
if redis.call('ZCARD', KEYS[1]) > 0 then
  return -1
end
return false
