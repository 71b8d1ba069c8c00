-- crowdgate_append_event appends one event to a tenant's log, once: an id
-- already recorded within the dedupe window (the retention, at most 24
-- hours: repeats come from retries within minutes) appends nothing. Scripts of other
-- packages that run in the tenant's slot (the Toloker registry) prepend
-- this function to their text, so their state change and its event are one
-- atomic step.
--
-- log   the tenant's event stream
-- seen  the tenant's recorded ids (zset: id -> Redis time in ms)
-- id    the event id
-- body  the event (protobuf, without its cursor)
-- keep  the retention in ms
--
-- Returns the entry id (the event's cursor), or false for a repeat.
--
-- The id is marked seen only once the event is in the log: an append that
-- fails (Redis refuses its XADD) leaves nothing behind, and a retry of the
-- event appends it. The trim point is never before the epoch (a retention
-- longer than the time since 1970 keeps everything; Redis refuses a
-- negative MINID).
local function crowdgate_append_event(log, seen, id, body, keep)
  if redis.call('ZSCORE', seen, id) then
    return false
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local min = string.format('%.0f', math.max(0, now - tonumber(keep)))
  local eid = redis.call('XADD', log, 'MINID', '~', min, '*', 'e', body)
  redis.call('ZADD', seen, string.format('%.0f', now), id)
  local window = math.min(tonumber(keep), 86400000)
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. string.format('%.0f', now - window))
  redis.call('PEXPIRE', seen, window)
  return eid
end
