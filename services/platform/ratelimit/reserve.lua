-- crowdgate_reserve reserves one slot in every limit, all or nothing. The
-- Limiter runs it alone (ReserveLua + "return crowdgate_reserve(KEYS, ARGV,
-- 1)"); a script of another package prepends it to its own text to reserve
-- in the same atomic step as its own work (Limiter.Prepare).
--
-- keys[i]            the key of limit i (all keys share one {hash tag})
-- args[from]         now in microseconds since the epoch, or -1 to use the
--                    server clock
-- args[from+1]       the longest wait, in microseconds, for which a slot is
--                    reserved
-- args[from+2]       a random member name for sliding-window entries
-- args[from+3+4(i-1) ...] for limit i: kind ("w" sliding window, "g" GCRA),
--                    rate, period in microseconds, burst
--
-- Returns {granted (1 or 0), wait in microseconds, index of the limit that
-- decided the wait (0 when none had to)}. Numbers passed to redis.call are
-- formatted explicitly: Lua's default conversion keeps only 14 digits, too
-- few for microsecond timestamps. When granted, the slot is reserved
-- at now+wait; the caller sleeps until then. When not granted nothing changed
-- except that expired window entries were dropped.
local function crowdgate_reserve(keys, args, from)
  local now = tonumber(args[from])
  if now < 0 then
    -- Reading the clock makes the script non-deterministic; replicate its
    -- effects, not the script (a no-op since Redis 7, needed before).
    if redis.replicate_commands then
      pcall(redis.replicate_commands)
    end
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  local maxwait = tonumber(args[from + 1])
  local member = args[from + 2]

  -- The same reservation run again (its reply was lost and the client
  -- sent the script again): a sliding window holds its member, put there
  -- with every other limit's slot by the first run. It is granted as it
  -- was, spending nothing more. (A GCRA limit keeps no member: there a
  -- resend alone spends one more interval.)
  for i = 1, #keys do
    if args[from + 3 + (i - 1) * 4] == 'w' then
      local prior = redis.call('ZSCORE', keys[i], member)
      if prior then
        local wait = tonumber(prior) - now
        if wait < 0 then
          wait = 0
        end
        return {1, math.ceil(wait), 0}
      end
    end
  end

  local at = now
  local worst = 0
  local state = {}

  for i = 1, #keys do
    local base = from + 2 + (i - 1) * 4
    local kind = args[base + 1]
    local rate = tonumber(args[base + 2])
    local per = tonumber(args[base + 3])
    local burst = tonumber(args[base + 4])
    local earliest = now
    if kind == 'g' then
      -- GCRA: a reservation at t is allowed when t >= tat - tau.
      local interval = per / rate
      local tau = (burst - 1) * interval
      local tat = tonumber(redis.call('GET', keys[i])) or now
      if tat < now then
        tat = now
      end
      if tat - tau > earliest then
        earliest = tat - tau
      end
      state[i] = {kind = kind, interval = interval, tat = tat, tau = tau}
    else
      -- Sliding window: entries are reservation times. Entries at or before
      -- now-per are outside every window that can contain a new reservation.
      redis.call('ZREMRANGEBYSCORE', keys[i], '-inf', string.format('%.0f', now - per))
      local n = redis.call('ZCARD', keys[i])
      if n >= rate then
        -- Reserve after every existing entry, and at least per after the
        -- rate-th newest, so no window of length per holds more than rate.
        local last = tonumber(redis.call('ZRANGE', keys[i], -1, -1, 'WITHSCORES')[2])
        local kth = tonumber(redis.call('ZRANGE', keys[i], n - rate, n - rate, 'WITHSCORES')[2])
        if last > earliest then
          earliest = last
        end
        if kth + per > earliest then
          earliest = kth + per
        end
      end
      state[i] = {kind = kind, per = per}
    end
    if earliest > at then
      at = earliest
      worst = i
    end
  end

  local wait = at - now
  if wait > maxwait then
    return {0, math.ceil(wait), worst}
  end

  for i = 1, #keys do
    local s = state[i]
    if s.kind == 'g' then
      local tat = s.tat
      if at > tat then
        tat = at
      end
      tat = tat + s.interval
      local ttl = math.ceil((tat - now) / 1000) + 1000
      redis.call('SET', keys[i], string.format('%.3f', tat), 'PX', ttl)
    else
      redis.call('ZADD', keys[i], string.format('%.0f', math.ceil(at)), member)
      local last = tonumber(redis.call('ZRANGE', keys[i], -1, -1, 'WITHSCORES')[2])
      local ttl = math.ceil((last - now + s.per) / 1000) + 1000
      redis.call('PEXPIRE', keys[i], ttl)
    end
  end

  return {1, math.ceil(wait), worst}
end
