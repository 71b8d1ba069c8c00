-- requeue: put a DEAD submission back in the outbox (an operator's retry).
--
-- KEYS[1] submission record
-- KEYS[2] pool totals
-- KEYS[3] pool dead-letter index
-- KEYS[4] outbox stream of the shard
-- KEYS[5] the Toloker's pay counters in this shard
-- KEYS[6] the shard's event intents (stream)
-- KEYS[7] the Toloker's set of unsettled submissions in the pool
-- KEYS[8] the session's set of unsettled submissions (when ARGV[6] is "1")
-- KEYS[9] the shard's submissions waiting to be paid (zset, score = since
--         when, unix ms): it joins them from now
--
-- ARGV[1] tenant id
-- ARGV[2] submission id
-- ARGV[3] now, unix ms (next attempt time for the record)
-- ARGV[4] the submission.retried event (protobuf)
-- ARGV[5] a token new to this call, kept as rqt: the call sent again
--         (go-redis resends a command whose reply was lost) finds it and
--         answers as the first time, not that the submission is QUEUED
-- ARGV[6] "1" when the submission has a session (KEYS[8])
--
-- The submission joins its Toloker's and its session's sets of unsettled
-- submissions again (it left them when it died): a close_session queued
-- now waits for it, as for any earlier submit, instead of closing the
-- Toloker's assignment before it and leaving it refused for good.
--
-- Returns {"ok"} | {"state", st} when it is not DEAD | {"gone"}.
local r = redis.call('HMGET', KEYS[1], 'st', 'amt', 'rqt', 'att')
if not r[1] then
  return {'gone'}
end
if r[3] == ARGV[5] then
  return {'ok'}
end
if r[1] ~= '3' then
  return {'state', r[1]}
end
local eid = redis.call('XADD', KEYS[4], '*', 't', ARGV[1], 's', ARGV[2])
-- rqa: the attempts made before this retry, so CROWDGATE_SUBMIT_MAX_ATTEMPTS
-- counts the operator's retry's attempts afresh.
redis.call('HSET', KEYS[1], 'st', '1', 'eid', eid, 'nat', ARGV[3], 'rqt', ARGV[5], 'rqa', r[4] or '0')
redis.call('HINCRBY', KEYS[2], 'dead', -1)
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HINCRBY', KEYS[5], 'dead', -1)
end
redis.call('HINCRBY', KEYS[2], 'queued', 1)
redis.call('HINCRBY', KEYS[2], 'rq', r[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[9], ARGV[3], ARGV[1] .. '\t' .. ARGV[2])
redis.call('SADD', KEYS[7], ARGV[2])
redis.call('PEXPIRE', KEYS[7], 2592000000)
if ARGV[6] == '1' then
  redis.call('SADD', KEYS[8], ARGV[2])
  redis.call('PEXPIRE', KEYS[8], 2592000000)
end
redis.call('XADD', KEYS[6], '*', 'e', ARGV[4])
return {'ok'}
