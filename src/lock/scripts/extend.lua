-- Extend the lease only if it is still ours; never re-create a missing key.
-- KEYS: 1 lock, 2 holder details, 3 stored limit, 4 shared holders, 5 their details
-- (readers.lua).  ARGV: 1 token, 2 ttl in ms, 3 '1' once the holder is stopping its command
-- because `release --force` asked it to: it says so in its details, which is how `release
-- --force` knows it was heard; 4 a semaphore's N ('' for a plain lock), kept stored as long as
-- any of its holders lives; 5 '1' for a shared holder.
-- Returns 1 when extended, 0 when the lock is gone or held by another token.
if ARGV[5] == '1' then
  local now = redis.call('TIME')
  local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
  local until_ms = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[1]))
  if not until_ms or until_ms <= now_ms then
    return 0
  end
  redis.call('ZADD', KEYS[4], 'XX', now_ms + tonumber(ARGV[2]), ARGV[1])
  keep_readers(KEYS[4], KEYS[5])
  if ARGV[3] == '1' then
    local d = reader_details(KEYS[5], ARGV[1])
    d.stopping = 1
    redis.call('HSET', KEYS[5], ARGV[1], cjson.encode(d))
  end
  return 1
end
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
