-- Releases the key of a ban in force if it still names this ban.
-- KEYS: the ban's key (user, scope, target -> ban id). ARGV: ban id.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
