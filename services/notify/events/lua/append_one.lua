-- append: one event (Log.Append and the relay of intents).
--
-- KEYS[1] the tenant's event stream
-- KEYS[2] the tenant's recorded ids
-- ARGV[1] event id
-- ARGV[2] event (protobuf)
-- ARGV[3] retention (ms)
return crowdgate_append_event(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
