-- started: a first landing started a session. Counts it once (a session
-- already listed is not counted again), lists it live until it expires,
-- remembers when and where the Toloker worked, indexes the Toloker by
-- activity (the tenant's and the pool's), drops what has expired or
-- passed the retention, and returns the Toloker's restrictions.
--
-- KEYS[1] the Toloker's record (hash)
-- KEYS[2] the tenant's activity index (zset: user -> last activity ms)
-- KEYS[3] the pool's activity index (zset: user -> last activity in it ms)
-- KEYS[4] the Toloker's restrictions (hash: ban id -> restriction)
-- KEYS[5] the tenant's deadlines (zset: user TAB session -> expiry ms)
-- KEYS[6] the tenant's session snapshots (hash: session -> Session
--         protobuf, p:<session> -> 1 until its started event is recorded)
--
-- ARGV[1] session id
-- ARGV[2] pool id
-- ARGV[3] project id
-- ARGV[4] now (ms)
-- ARGV[5] the session's expiry (ms)
-- ARGV[6] retention (ms)
-- ARGV[7] user id
-- ARGV[8] the session (protobuf), for its events
--
-- Returns {counted (0|1), restriction fields and values...}.
local now = tonumber(ARGV[4])
local retention = tonumber(ARGV[6])
local horizon = now - retention

local function setmax(key, field, v)
  local cur = redis.call('HGET', key, field)
  if not cur or tonumber(cur) < v then
    redis.call('HSET', key, field, string.format('%.0f', v))
  end
end
local function zmax(key, member, v)
  local cur = redis.call('ZSCORE', key, member)
  if not cur or tonumber(cur) < v then
    redis.call('ZADD', key, string.format('%.0f', v), member)
  end
end

-- What has expired (sessions) or passed the retention (pools, projects).
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local kind = string.sub(f, 1, 2)
  if kind == 's:' then
    -- A session with a deadline is ended by the expiry sweep, which
    -- records its event; only a listing without one (written before
    -- deadlines existed) is dropped here.
    local exp = tonumber(string.match(v, '^%d+'))
    if (not exp or exp <= now) and not redis.call('ZSCORE', KEYS[5], ARGV[7] .. '\t' .. string.sub(f, 3)) then
      redis.call('HDEL', KEYS[1], f)
    end
  elseif kind == 'p:' or kind == 'j:' then
    if tonumber(v) < horizon then
      redis.call('HDEL', KEYS[1], f)
    end
  end
end

local counted = 0
if redis.call('HSETNX', KEYS[1], 's:' .. ARGV[1], ARGV[5] .. '\t' .. ARGV[2]) == 1 then
  counted = 1
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[7] .. '\t' .. ARGV[1])
  redis.call('HSET', KEYS[6], ARGV[1], ARGV[8], 'p:' .. ARGV[1], '1')
  redis.call('HINCRBY', KEYS[1], 'n', 1)
  redis.call('HSETNX', KEYS[1], 'f', ARGV[4])
  setmax(KEYS[1], 'l', now)
  setmax(KEYS[1], 'a', now)
  setmax(KEYS[1], 'p:' .. ARGV[2], now)
  setmax(KEYS[1], 'j:' .. ARGV[3], now)
  zmax(KEYS[2], ARGV[7], now)
  zmax(KEYS[3], ARGV[7], now)
  for _, k in ipairs({KEYS[2], KEYS[3]}) do
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%.0f', horizon))
    if redis.call('PTTL', k) < retention then
      redis.call('PEXPIRE', k, retention)
    end
  end
end
redis.call('PEXPIRE', KEYS[1], retention)
local out = {counted}
local rs = redis.call('HGETALL', KEYS[4])
for i = 1, #rs do
  out[#out + 1] = rs[i]
end
return out
