-- Deletes a credential and its sealed key unless a project uses it.
-- KEYS: the credential's record, its sealed key, its users.
-- Returns {'missing'}, {'in_use', project ids...} or {'deleted'}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local users = redis.call('SMEMBERS', KEYS[3])
if #users > 0 then
  table.insert(users, 1, 'in_use')
  return users
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {'deleted'}
