-- Release the lock only if it is still ours, and tell waiters at once.
-- KEYS: 1 lock, 2 holder details, 3 waiters.  ARGV: 1 token, 2 ms to keep it (--min-hold),
-- 3 channel.
-- Returns 1 when deleted, 2 when left to expire after ARGV[2] ms, 0 when it was not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local keep = tonumber(ARGV[2])
if keep > 0 then
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[2], 'ended', now[1] * 1000 + math.floor(now[2] / 1000))
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[2], keep)
  return 2
end
-- The notice names the first waiter, which tries at once; the others try a moment later, in
-- case it cannot (stopped, or gone): so they do not all rush the server at each release. It
-- leaves the queue here, so that one that is gone is named only once. (Before the DEL: on a
-- key of another type this fails, and the lock is not half released.)
local first = redis.call('ZPOPMIN', KEYS[3])
redis.call('DEL', KEYS[1], KEYS[2])
-- Sharded pub/sub where the server has it (Redis 7+), as acquire.lua.
if not pcall(redis.call, 'SPUBLISH', ARGV[3], first[1] or '') then
  redis.call('PUBLISH', ARGV[3], first[1] or '')
end
return 1
