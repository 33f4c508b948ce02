-- Break a lock on an operator's order, and tell waiters at once.
-- KEYS: 1 lock, 2 holder details, 3 waiters, 4 shared holders, 5 their details, 6 the
-- exclusive waiters (readers.lua).
-- ARGV: 1 the token it must hold ('' for any), 2 control channel, 3 what the waiters' channels
-- start with.
-- Held shared: the shared holder ARGV[1] (every one, for '') is dropped; the last to go wakes
-- the first waiter.
-- Returns 1 when deleted, 0 when there was no lock, -1 when another token holds it.
local current = redis.call('GET', KEYS[1])
if not current then
  local now = redis.call('TIME')
  local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
  local count = live_readers(KEYS[4], KEYS[5], now_ms)
  if count == 0 then
    return 0
  end
  if ARGV[1] ~= '' and not redis.call('ZSCORE', KEYS[4], ARGV[1]) then
    return -1
  end
  if ARGV[1] == '' or count == 1 then
    wake(KEYS[3], ARGV[3], KEYS[6])
  end
  notify(ARGV[2], 'broken')
  if ARGV[1] == '' then
    redis.call('DEL', KEYS[4], KEYS[5])
  else
    redis.call('ZREM', KEYS[4], ARGV[1])
    redis.call('HDEL', KEYS[5], ARGV[1])
  end
  return 1
end
if ARGV[1] ~= '' and current ~= ARGV[1] then
  return -1
end
-- The notices first: one an ACL refuses fails the break before it deleted anything. (The
-- script is atomic: the holder checks its key after the DEL.) The first waiter is woken, as
-- by a release.
wake(KEYS[3], ARGV[3], KEYS[6])
-- And the holder, if it still runs: it stops its command at once.
notify(ARGV[2], 'broken')
redis.call('DEL', KEYS[1], KEYS[2])
return 1
