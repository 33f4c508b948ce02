-- `view`: a lock as it is, in one reply (view.lua; views.lua for several at once): its token
-- and TTL, its holder's details (only if they belong to the current token), the fencing
-- counter, the server's clock, a semaphore's N, the last run that got past busy in the
-- history, and its shared holders (`run --shared`).
-- Its keys: the lock, its holder details, the fencing counter, the stored limit, the history,
-- the shared holders and their details (readers.lua).
-- Returns {token or '', pttl, fence or '', now_ms, start, host, pid, user, cmd, ended, limit,
-- readers, N, last run, then each shared holder's first twelve} ('' where unknown; pttl -1
-- when the key has no expiry, -2 when there is no lock; readers: how many shared holders, ''
-- for none; N '' when no semaphore's N is stored; the last run as history.lua wrote it, or
-- ''): the first twelve are the layout acquire.lua's busy reply shares, read by
-- `Holder::decode`. Held shared, they describe the shared holder whose lease ends last.
local function view(lock, holder, counter, limit, history, readers, reader_keys)
  local now = redis.call('TIME')
  local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
  local token, wrong = read_lock(lock)
  if wrong then
    return wrong
  end
  local fence = redis.call('GET', counter)
  local h = {false, false, false, false, false, false, false, false, false}
  -- Details someone else wrote with another type are ignored rather than fatal.
  if token and redis.call('TYPE', holder).ok == 'hash' then
    h = redis.call('HMGET', holder, 'token', 'start', 'host', 'pid', 'user', 'cmd', 'ended',
      'fence', 'limit')
  end
  if token and h[1] ~= token then
    -- Held by another client (a lock library, or by hand): the counter is not its fence.
    h = {false, false, false, false, false, false, false, false, false}
    fence = false
  end
  local places = ''
  if redis.call('TYPE', limit).ok == 'string' then
    places = redis.call('GET', limit)
  end
  -- The newest of the last hundred entries that is a run of redlock's, not a skipped (busy) one.
  local last = ''
  if redis.call('TYPE', history).ok == 'list' then
    for _, entry in ipairs(redis.call('LRANGE', history, 0, 99)) do
      if string.find(entry, '"outcome":"', 1, true)
          and not string.find(entry, '"outcome":"busy"', 1, true) then
        last = entry
        break
      end
    end
  end
  local reply = {token or '', token and redis.call('PTTL', lock) or -2, h[8] or fence or '',
    now_ms, h[2] or '', h[3] or '', h[4] or '', h[5] or '', h[6] or '', h[7] or '', h[9] or '',
    '', places, last}
  -- Read only: the shared holders whose lease ended are left for a writer to drop.
  if not token and redis.call('TYPE', readers).ok == 'zset' then
    local live = redis.call('ZRANGEBYSCORE', readers, '(' .. now_ms, '+inf', 'WITHSCORES')
    local count = #live / 2
    for i = 1, #live, 2 do
      local fields = reader_fields(reader_keys, live[i], tonumber(live[i + 1]), now_ms, count)
      if i == #live - 1 then
        for f = 1, 12 do
          reply[f] = fields[f]
        end
      end
      for _, field in ipairs(fields) do
        reply[#reply + 1] = field
      end
    end
  end
  return reply
end

