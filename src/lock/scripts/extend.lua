-- Extend the lease only if it is still ours; never re-create a missing key.
-- KEYS: 1 lock, 2 holder details, 3 stored limit, 4 shared holders, 5 their details
-- (readers.lua).  ARGV: 1 token, 2 ttl in ms, 3 '1' once the holder is stopping its command
-- because `release --force` asked it to: it says so in its details, which is how `release
-- --force` knows it was heard; 4 a semaphore's N ('' for a plain lock), kept stored as long as
-- any of its holders lives; 5 '1' for a shared holder; 6 '1' to extend only a hold of
-- `redlock acquire` (its details name no --kill-after), never a run's: a run keeps its own
-- lease, and one cut short behind its back would let a waiter in before it stops its command.
-- Returns 1 when extended, 0 when the lock is gone or held by another token, -1 when it is a
-- run's and ARGV[6] is '1'.
if ARGV[6] == '1' then
  if redis.call('ZSCORE', KEYS[4], ARGV[1]) then
    return -1
  end
  if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('HGET', KEYS[2], 'kill_after') ~= '' then
    return -1
  end
end
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
