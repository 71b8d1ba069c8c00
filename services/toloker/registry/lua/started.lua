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
-- ARGV[9] "1": write nothing when the Toloker has any restriction stored
--         that has not expired (expired ones are dropped) and the
--         session is not listed yet (the caller judges the
--         restrictions and calls again without it). A session already
--         listed (this call sent again after its reply was lost) is
--         answered as without it, so the caller takes back a listing
--         a ban now covers.
--
-- Returns {counted (0|1), restriction fields and values...}, or {-1,
-- restriction fields and values...} when ARGV[9] held it back.
local now = tonumber(ARGV[4])
local nowms = ARGV[4]
local retention = tonumber(ARGV[6])
local horizon = now - retention

-- One read of the record decides every change below, so the record is
-- written with one HDEL and one HSET (a call inside a script costs about
-- as much as the command it runs: a first landing's Redis time is mostly
-- this script's).
local all = redis.call('HGETALL', KEYS[1])
local have, stale = {}, {}
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local kind = string.sub(f, 1, 2)
  local drop = false
  if kind == 's:' then
    -- What has expired: a session with a deadline is ended by the expiry
    -- sweep, which records its event; only a listing without one
    -- (written before deadlines existed) is dropped here.
    local exp = tonumber(string.match(v, '^%d+'))
    drop = (not exp or exp <= now) and not redis.call('ZSCORE', KEYS[5], ARGV[7] .. '\t' .. string.sub(f, 3))
  elseif kind == 'p:' or kind == 'j:' then
    -- Pools and projects past the retention.
    drop = tonumber(v) < horizon
  end
  if drop then
    stale[#stale + 1] = f
  else
    have[f] = v
  end
end
local listing = 's:' .. ARGV[1]
local bans
if ARGV[9] == '1' and not have[listing] then
  -- Expired bans are dropped here (a ban's stored form ends with its
  -- expiry in ms, 0 for never): a Toloker whose bans have all expired is
  -- listed in this step, not held back on every first landing.
  local stored = redis.call('HGETALL', KEYS[4])
  local expired = {}
  bans = {}
  for i = 1, #stored, 2 do
    local exp = tonumber(string.match(stored[i + 1], '\t(%d+)$'))
    if exp and exp > 0 and exp <= now then
      expired[#expired + 1] = stored[i]
    else
      bans[#bans + 1] = stored[i]
      bans[#bans + 1] = stored[i + 1]
    end
  end
  for i = 1, #expired, 1000 do
    redis.call('HDEL', KEYS[4], unpack(expired, i, math.min(i + 999, #expired)))
  end
  if #bans > 0 then
    local out = {-1}
    for i = 1, #bans do
      out[#out + 1] = bans[i]
    end
    return out
  end
end

for i = 1, #stale, 1000 do
  redis.call('HDEL', KEYS[1], unpack(stale, i, math.min(i + 999, #stale)))
end

local counted = 0
if not have[listing] then
  counted = 1
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[7] .. '\t' .. ARGV[1])
  redis.call('HSET', KEYS[6], ARGV[1], ARGV[8], 'p:' .. ARGV[1], '1')
  local set = {listing, ARGV[5] .. '\t' .. ARGV[2], 'n', string.format('%.0f', (tonumber(have['n']) or 0) + 1)}
  if not have['f'] then
    set[#set + 1] = 'f'
    set[#set + 1] = nowms
  end
  -- Last landing, last activity, last worked in the pool and the project:
  -- each only ever moves forward.
  for _, f in ipairs({'l', 'a', 'p:' .. ARGV[2], 'j:' .. ARGV[3]}) do
    local cur = have[f]
    if not cur or tonumber(cur) < now then
      set[#set + 1] = f
      set[#set + 1] = nowms
    end
  end
  redis.call('HSET', KEYS[1], unpack(set))
  for _, k in ipairs({KEYS[2], KEYS[3]}) do
    redis.call('ZADD', k, 'GT', nowms, ARGV[7])
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%.0f', horizon))
    redis.call('PEXPIRE', k, retention) -- entries older are trimmed anyway
  end
end
redis.call('PEXPIRE', KEYS[1], retention)
local out = {counted}
-- Read after the listing (or, held back above, in the same script): a ban
-- writes its restriction before it looks for live sessions to end, so one
-- of the two sees the other.
local rs = bans or redis.call('HGETALL', KEYS[4])
for i = 1, #rs do
  out[#out + 1] = rs[i]
end
return out
