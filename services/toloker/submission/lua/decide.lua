-- decide: one step of a retry_id's walk down the chain of deciding layouts
-- (see layout.go). Both keys are in the shard's slot.
--
-- KEYS[1] the retry_id's idempotency key in this shard (a submission id, or
--         a legacy claim "fwd:<shard>" the version before reads)
-- KEYS[2] the layout's claim key for the retry_id ("fwd:<shard>")
--
-- ARGV[1] the claim to propose, "fwd:<shard>"
-- ARGV[2] "1" to write it (SET NX), "0" only to look (a rejected submit)
-- ARGV[3] "1" to write it in KEYS[1] too when empty (the legacy layout: the
--         version before finds it there and accepts nothing)
-- ARGV[4] the claim's TTL in milliseconds
--
-- Returns {"replay", id}: a submission with this retry_id is in this shard;
-- {"claim", value}: the layout's claim (an earlier one, or none: "");
-- {"claimed"}: ARGV[1] is now the claim.
local k = redis.call('GET', KEYS[1])
if k and string.sub(k, 1, 4) ~= 'fwd:' then
  return {'replay', k}
end
if ARGV[2] ~= '1' then
  return {'claim', redis.call('GET', KEYS[2]) or ''}
end
if ARGV[3] == '1' and not k then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
end
local c = redis.call('GET', KEYS[2])
if c then
  return {'claim', c}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
return {'claimed'}
