-- Extend the lease only if it is still ours; never re-create a missing key.
-- KEYS: 1 lock, 2 holder details, 3 stored limit.  ARGV: 1 token, 2 ttl in ms, 3 '1' once the
-- holder is stopping its command because `release --force` asked it to: it says so in its
-- details, which is how `release --force` knows it was heard; 4 a semaphore's N ('' for a
-- plain lock), kept stored as long as any of its holders lives.
-- Returns 1 when extended, 0 when the lock is gone or held by another token.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'stopping', '1')
end
if ARGV[4] ~= '' and redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[2])
end
return 1
