-- Take the lock if it is free, in one round trip.
-- KEYS: 1 lock, 2 holder details, 3 fencing counter, 4 waiters
-- ARGV: 1 token, 2 ttl in ms, 3 host, 4 pid, 5 user, 6 command line, 7 '1' to queue when busy,
-- 8 the holder's --kill-after in ms, 9 the control channel, 10 its --timeout in ms ('' for none)
-- Returns {1, fence} when acquired (or already ours), else 0 and the holder as view.lua reads
-- it, the same fields in the same order (one decoder, `Holder::decode`):
-- {0, token, pttl, fence, now_ms, start, host, pid, user, cmd, ended, limit} ('' where unknown;
-- limit: when the holder's --timeout ends, about).
-- A caller that will wait joins the waiters, in the order they came (the release script
-- names the first of them); it leaves when it gets the lock.
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  -- A retry reached a server that had already executed our SET: keep it, but count it as a
  -- new grant, so that the fence of this attempt exceeds any given since on this server.
  redis.call('ZREM', KEYS[4], ARGV[1])
  local fence = redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[2], 'fence', fence)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return {1, fence}
end
if current then
  local h = redis.call('HMGET', KEYS[2], 'token', 'start', 'host', 'pid', 'user', 'cmd', 'ended',
    'fence', 'limit')
  if h[1] ~= current then
    -- Details of an older holder, or none at all: do not attribute the lock to them.
    h = {false, false, false, false, false, false, false, false, false}
  end
  if ARGV[7] == '1' then
    -- A waiter keeps its place; the queue outlives the waits that refresh it by an hour.
    redis.call('ZADD', KEYS[4], 'NX', now_ms, ARGV[1])
    redis.call('PEXPIRE', KEYS[4], 3600000)
  end
  -- The fence is the holder's own: nobody reads it from here, so the counter is left alone.
  return {0, current, redis.call('PTTL', KEYS[1]), h[8] or '', now_ms,
    h[2] or '', h[3] or '', h[4] or '', h[5] or '', h[6] or '', h[7] or '', h[9] or ''}
end
-- The steps that can fail on a key of another type come before the lock is written: a script
-- that fails half-way keeps what it wrote.
redis.call('ZREM', KEYS[4], ARGV[1])
local fence = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'token', ARGV[1], 'fence', fence, 'start', now_ms,
  'host', ARGV[3], 'pid', ARGV[4], 'user', ARGV[5], 'cmd', ARGV[6], 'kill_after', ARGV[8])
if ARGV[10] and ARGV[10] ~= '' then
  -- The command starts a moment after this: its --timeout ends about then.
  redis.call('HSET', KEYS[2], 'limit', now_ms + tonumber(ARGV[10]))
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
-- A holder that is still alive (its key was deleted behind its back, or its server lost it)
-- learns at once that it has been taken over, and stops its command.
-- Sharded pub/sub (Redis 7+) reaches the subscribers of the node that owns the lock's slot;
-- an older server has only PUBLISH (the subscribers fall back the same way).
if not pcall(redis.call, 'SPUBLISH', ARGV[9], 'taken ' .. ARGV[1]) then
  redis.call('PUBLISH', ARGV[9], 'taken ' .. ARGV[1])
end
return {1, fence}
