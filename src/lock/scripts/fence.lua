-- Raise the fencing counter to the value a majority agreed on (never lower it), so that the
-- next holder's increment on any majority exceeds it.
-- KEYS: 1 fencing counter, 2 holder details, 3 lock.  ARGV: 1 fence, 2 our token.
if (tonumber(redis.call('GET', KEYS[1])) or 0) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
if redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('HSET', KEYS[2], 'fence', ARGV[1])
end
return 1
