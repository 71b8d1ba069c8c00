-- Deletes a credential and its sealed key unless a project uses it.
-- KEYS: the credential's record, its sealed key, its users, its deletion
-- mark. ARGV: a token new to the call, the mark's TTL (ms).
-- The mark holds the deleting call's token for a while, so the call sent
-- again (go-redis resends a command whose reply was lost) answers
-- "deleted" as the first time, not "missing".
-- Returns {'missing'}, {'in_use', project ids...} or {'deleted'}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  if redis.call('GET', KEYS[4]) == ARGV[1] then
    return {'deleted'}
  end
  return {'missing'}
end
local users = redis.call('SMEMBERS', KEYS[3])
if #users > 0 then
  table.insert(users, 1, 'in_use')
  return users
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
return {'deleted'}
