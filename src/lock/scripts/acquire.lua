-- Take a place of the lock if one is free, in one round trip. A plain lock has one place; a
-- semaphore (--limit N) has N, each a lock of its own (keys.rs).
-- KEYS: 1 fencing counter, 2 waiters, 3 stored limit, 4 history, 5 shared holders, 6 their
-- details, 7 the exclusive waiters (readers.lua), then each place's lock and holder details (8
-- and 9 for place 0, 10 and 11 for place 1, ...): N = (#KEYS - 7) / 2.
-- ARGV: 1 token, 2 ttl in ms, 3 host, 4 pid, 5 user, 6 command line, 7 '1' to queue when busy,
-- 8 the holder's --kill-after in ms, 9 its --timeout in ms ('' for none), 10 the place to take
-- if it is free ('' for the first free one), 11 '1' to take that place or none (several servers
-- that disagreed are asked for a place most of them have free), 12 the run as history.lua
-- records it, if it ends busy here ('' when it would wait, or keeps no history), 13 the cap,
-- 14 the caller's entry in the queue (the channel it listens on while it waits, `Keys::wake`),
-- 15 '1' for a shared hold (`run --shared`, a plain lock only), 16 what the waiters' channels
-- start with (`Keys::wake("")`), then each place's control channel (17 for place 0, 18 for
-- place 1, ...).
-- Shared: taken when no one holds the lock alone and no exclusive waiter that came before
-- listens (readers.lua's `writer_ahead`), with the current fence (not raised: the next
-- exclusive holder's exceeds it); the next waiter is woken if it is shared too, so that the
-- shared waiters come in together. Exclusive: taken only when no shared holder is alive.
-- Returns {1, fence, place, free} when acquired (or already ours), free listing the places
-- that were free before (empty when already ours); {2, limit} when the lock is held with
-- another --limit (stored while anyone holds it); else 0 and, for each place, its holder
-- as view.lua reads it, the same fields in the same order (one decoder, `Holder::decode`):
-- {0, token, pttl, fence, now_ms, start, host, pid, user, cmd, ended, limit, readers, ...}
-- ('' where unknown; limit: when the holder's --timeout ends, about; readers: how many shared
-- holders, '' for a holder alone, 0 when none holds it but an exclusive waiter goes first);
-- held shared, one holder: the shared holder whose lease ends last.
-- A caller that will wait joins the waiters, in the order they came (the release script
-- wakes the first of them, notify.lua's `wake`); it leaves when it gets the lock.
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local places = (#KEYS - 7) / 2
local function lock(place) return KEYS[8 + 2 * place] end
local function details(place) return KEYS[9 + 2 * place] end
local function control(place) return ARGV[17 + place] end
local shared = ARGV[15] == '1'
local readers, reader_keys, writers = KEYS[5], KEYS[6], KEYS[7]
-- Out of the queue (and of the exclusive waiters, if it was one of them).
local function leave_queue()
  if redis.call('ZREM', KEYS[2], ARGV[14]) == 1 and not shared then
    redis.call('ZREM', writers, ARGV[14])
  end
end
-- A semaphore's N outlives its holders' leases: PTTL -2 (none) and -1 (no expiry) are renewed.
local function keep_limit()
  if places > 1 and redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then
    redis.call('SET', KEYS[3], places, 'PX', ARGV[2])
  end
end

-- Each place's token (false: free), read once.
local held = {}
for place = 0, places - 1 do
  local token, wrong = read_lock(lock(place))
  if wrong then
    return wrong
  end
  held[place] = token
end
-- Place `p`'s holder, for a busy reply.
local function holder_fields(p)
  local current = held[p]
  local h = redis.call('HMGET', details(p), 'token', 'start', 'host', 'pid', 'user', 'cmd',
    'ended', 'fence', 'limit')
  if h[1] ~= current then
    -- Details of an older holder, or none at all: do not attribute the lock to them.
    h = {false, false, false, false, false, false, false, false, false}
  end
  -- The fence is the holder's own: nobody reads it from here, so the counter is left alone.
  return {current, redis.call('PTTL', lock(p)), h[8] or '', now_ms, h[2] or '', h[3] or '',
    h[4] or '', h[5] or '', h[6] or '', h[7] or '', h[9] or '', ''}
end
local stored = redis.call('GET', KEYS[3])
for place = 0, places - 1 do
  if held[place] == ARGV[1] then
    -- A retry reached a server that had already executed our SET: keep it, but count it as a
    -- new grant, so that the fence of this attempt exceeds any given since on this server.
    leave_queue()
    local fence = redis.call('INCR', KEYS[1])
    redis.call('PEXPIRE', lock(place), ARGV[2])
    redis.call('HSET', details(place), 'fence', fence)
    redis.call('PEXPIRE', details(place), ARGV[2])
    keep_limit()
    return {1, fence, place, {}}
  end
end
if stored and tonumber(stored) ~= places then
  return {2, stored}
end
if not stored and places > 1 and held[0] then
  -- Held as a plain lock.
  return {2, 1}
end

-- A busy reply: 0, then the holders (see above).
local function busy(holders)
  if ARGV[7] == '1' then
    -- A waiter keeps its place; the queue outlives the waits that refresh it by an hour.
    local joined = redis.call('ZADD', KEYS[2], 'NX', now_ms, ARGV[14])
    redis.call('PEXPIRE', KEYS[2], 3600000)
    if joined == 1 and not shared then
      redis.call('ZADD', writers, now_ms, ARGV[14])
      redis.call('PEXPIRE', writers, 3600000)
    end
  end
  record(KEYS[4], ARGV[12], ARGV[13])
  local reply = {0}
  for _, holder in ipairs(holders) do
    for _, field in ipairs(holder) do
      reply[#reply + 1] = field
    end
  end
  return reply
end

local count = live_readers(readers, reader_keys, now_ms)
if shared then
  local queued = redis.call('ZSCORE', KEYS[2], ARGV[14])
  local until_ms = redis.call('ZSCORE', readers, ARGV[1])
  if until_ms then
    -- Already ours (a retry): kept, with the current fence.
    redis.call('ZREM', KEYS[2], ARGV[14])
    redis.call('ZADD', readers, now_ms + tonumber(ARGV[2]), ARGV[1])
    keep_readers(readers, reader_keys)
    return {1, tonumber(redis.call('GET', KEYS[1])) or 0, 0, {}}
  end
  if held[0] then
    return busy({holder_fields(0)})
  end
  local writer = writer_ahead(KEYS[2], writers, queued and tonumber(queued))
  if writer then
    if count > 0 then
      return busy({last_reader(readers, reader_keys, now_ms, count)})
    end
    -- Free, but an exclusive waiter comes first: it is woken (it may have been told only that
    -- the lock went to another), and takes the lock in a moment.
    notify(writer, '')
    return busy({{writer, 100, '', now_ms, '', '', '', '', '', '', '', 0}})
  end
  redis.call('ZREM', KEYS[2], ARGV[14])
  local fence = tonumber(redis.call('GET', KEYS[1])) or 0
  local d = {token = ARGV[1], fence = fence, start = now_ms, host = ARGV[3], pid = ARGV[4],
    user = ARGV[5], cmd = ARGV[6], kill_after = ARGV[8]}
  if ARGV[9] ~= '' then
    d.limit = now_ms + tonumber(ARGV[9])
  end
  redis.call('HSET', reader_keys, ARGV[1], cjson.encode(d))
  redis.call('ZADD', readers, now_ms + tonumber(ARGV[2]), ARGV[1])
  keep_readers(readers, reader_keys)
  if count == 0 then
    -- The first shared holder: a holder alone whose key went behind its back learns at once
    -- that it is taken (as below), and stops its command.
    notify(control(0), 'taken ' .. ARGV[1])
  end
  -- The shared waiters come in together: the next is woken if it is shared (it wakes the one
  -- after it when it comes in, and so on up to an exclusive one).
  wake(KEYS[2], ARGV[16], writers, true)
  return {1, fence, 0, {}}
end

local free = {}
for p = 0, places - 1 do
  if not held[p] then
    free[#free + 1] = p
  end
end
local place = tonumber(ARGV[10])
if place and (place >= places or held[place]) then
  place = nil
end
if not place and ARGV[11] ~= '1' then
  place = free[1]
end
if count > 0 then
  -- Held shared: the exclusive run waits for the last of them.
  return busy({last_reader(readers, reader_keys, now_ms, count)})
end
if not place then
  local holders = {}
  for p = 0, places - 1 do
    holders[#holders + 1] = holder_fields(p)
  end
  return busy(holders)
end
-- The steps that can fail (on a key of another type, or refused by an ACL) come before the
-- lock is written: a script that fails half-way keeps what it wrote.
leave_queue()
-- A holder that is still alive (its key was deleted behind its back, or its server lost it)
-- learns at once that it has been taken over, and stops its command (it checks its key once
-- this script has run).
notify(control(place), 'taken ' .. ARGV[1])
local fence = redis.call('INCR', KEYS[1])
redis.call('SET', lock(place), ARGV[1], 'PX', ARGV[2])
redis.call('DEL', details(place))
local fields = {'token', ARGV[1], 'fence', fence, 'start', now_ms, 'host', ARGV[3], 'pid',
  ARGV[4], 'user', ARGV[5], 'cmd', ARGV[6], 'kill_after', ARGV[8]}
if ARGV[9] ~= '' then
  -- The command starts a moment after this: its --timeout ends about then.
  fields[#fields + 1] = 'limit'
  fields[#fields + 1] = now_ms + tonumber(ARGV[9])
end
redis.call('HSET', details(place), unpack(fields))
redis.call('PEXPIRE', details(place), ARGV[2])
keep_limit()
return {1, fence, place, free}
