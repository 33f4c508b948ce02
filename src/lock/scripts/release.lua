-- Release our place of the lock if we still hold it, and tell waiters at once.
-- KEYS: 1 waiters, 2 stored limit, 3 history, 4 shared holders, 5 their details, 6 the
-- exclusive waiters (readers.lua), then each place's lock and holder details (as acquire.lua).
-- ARGV: 1 token, 2 ms to keep it (--min-hold), 3 what the waiters' channels start with, to
-- wake the first ('' for none: an acquire giving back what a minority granted, see
-- acquire.rs), 4 a place not to release ('' for none: used to give back the other places a
-- semaphore's acquire took on a few servers), 5 the run as history.lua records it ('' for
-- none), 6 the cap, 7 '1' for a shared holder: the last of them to leave wakes the first
-- waiter, 8 '1' to release only a hold of `redlock acquire` (its details name no --kill-after:
-- nobody to stop), never a run's.
-- Returns 1 when deleted, 2 when left to expire after ARGV[2] ms, 0 when it was not ours, -1
-- when it is a run's and ARGV[8] is '1'.
if ARGV[7] == '1' then
  local now = redis.call('TIME')
  local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
  local until_ms = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[1]))
  local ours = until_ms ~= nil and until_ms > now_ms
  record(KEYS[3], ARGV[5], ARGV[6], ours)
  if not ours then
    return 0
  end
  local keep = tonumber(ARGV[2])
  if keep > 0 then
    local d = reader_details(KEYS[5], ARGV[1])
    d.ended = now_ms
    redis.call('HSET', KEYS[5], ARGV[1], cjson.encode(d))
    redis.call('ZADD', KEYS[4], 'XX', now_ms + keep, ARGV[1])
    keep_readers(KEYS[4], KEYS[5])
    return 2
  end
  -- The last shared holder wakes the first waiter, before it leaves (as below).
  if ARGV[3] ~= '' and live_readers(KEYS[4], KEYS[5], now_ms) == 1 then
    wake(KEYS[1], ARGV[3], KEYS[6])
  end
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  return 1
end
if ARGV[8] == '1' and redis.call('ZSCORE', KEYS[4], ARGV[1]) then
  return -1
end
local places = (#KEYS - 6) / 2
local keep = tonumber(ARGV[2])
local ours = nil
for place = 0, places - 1 do
  if tostring(place) ~= ARGV[4] and redis.call('GET', KEYS[7 + 2 * place]) == ARGV[1] then
    ours = place
    break
  end
end
record(KEYS[3], ARGV[5], ARGV[6], ours ~= nil)
if not ours then
  return 0
end
local lock, details = KEYS[7 + 2 * ours], KEYS[8 + 2 * ours]
if ARGV[8] == '1' and redis.call('HGET', details, 'kill_after') ~= '' then
  return -1
end
if keep > 0 then
  local now = redis.call('TIME')
  redis.call('HSET', details, 'ended', now[1] * 1000 + math.floor(now[2] / 1000))
  redis.call('PEXPIRE', lock, keep)
  redis.call('PEXPIRE', details, keep)
  if places > 1 and redis.call('PTTL', KEYS[2]) < keep then
    redis.call('PEXPIRE', KEYS[2], keep)
  end
  return 2
end
-- The first waiter is woken (notify.lua's `wake`). Before the DEL: on a queue of another
-- type this fails, and the lock is not half released. (The script is atomic: the waiter tries
-- once it has run.)
if ARGV[3] ~= '' then
  wake(KEYS[1], ARGV[3], KEYS[6])
end
redis.call('DEL', lock, details)
if places > 1 then
  -- The last holder of a semaphore takes its N with it: the next run may choose another.
  local held = false
  for place = 0, places - 1 do
    held = held or redis.call('EXISTS', KEYS[7 + 2 * place]) == 1
  end
  if not held then
    redis.call('DEL', KEYS[2])
  end
end
return 1
