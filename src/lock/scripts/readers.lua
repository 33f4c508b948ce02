-- `readers`, prepended to the scripts that meet a lock's shared holders (`run --shared`): a
-- sorted set of their tokens, each scored by when its lease ends (the server's clock, in ms),
-- and a hash of their details (token -> JSON). A shared holder whose lease has ended is gone:
-- it is dropped where it is found. Both keys live as long as the longest lease in them.

-- How many shared holders are alive at `now_ms`, the ones whose lease ended dropped.
local function live_readers(readers, details, now_ms)
  if redis.call('EXISTS', readers) == 0 then
    return 0
  end
  local gone = redis.call('ZRANGEBYSCORE', readers, '-inf', now_ms)
  -- In pieces: Lua unpacks a few thousand values at most.
  for first = 1, #gone, 1000 do
    local last = math.min(first + 999, #gone)
    redis.call('ZREM', readers, unpack(gone, first, last))
    redis.call('HDEL', details, unpack(gone, first, last))
  end
  return redis.call('ZCARD', readers)
end

-- Keeps both keys until the last lease in them ends.
local function keep_readers(readers, details)
  local last = redis.call('ZRANGE', readers, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', readers, last[2])
    redis.call('PEXPIREAT', details, last[2])
  end
end

-- The shared holder `token`'s details, decoded (an empty table when unreadable).
local function reader_details(details, token)
  local text = redis.call('HGET', details, token)
  local ok, decoded = pcall(cjson.decode, text or '')
  if ok and type(decoded) == 'table' then
    return decoded
  end
  return {}
end

-- A shared holder as acquire.lua's busy reply and view.lua describe a holder (`Holder::decode`):
-- {token, pttl, fence, now_ms, start, host, pid, user, cmd, ended, limit, readers}, `readers`
-- the number of shared holders.
local function reader_fields(details, token, until_ms, now_ms, count)
  local d = reader_details(details, token)
  local text = function(v) return v and tostring(v) or '' end
  return {token, until_ms - now_ms, text(d.fence), now_ms, text(d.start), text(d.host),
    text(d.pid), text(d.user), text(d.cmd), text(d.ended), text(d.limit), count}
end

-- The shared holder whose lease ends last (the one an exclusive run waits for), as
-- `reader_fields`; nil when there is none.
local function last_reader(readers, details, now_ms, count)
  local last = redis.call('ZRANGE', readers, -1, -1, 'WITHSCORES')
  if not last[1] then
    return nil
  end
  return reader_fields(details, last[1], tonumber(last[2]), now_ms, count)
end

-- Whether anyone listens on `channel`, a waiter's own (`Keys::wake`): sharded on Redis 7+ (which
-- tells its scripts its version), where the waiters subscribe sharded; plain on Redis 6.2, which
-- has no SHARDNUMSUB (on a 6.2 Cluster this counts the node's own subscribers only).
local function listening(channel)
  if redis.REDIS_VERSION then
    return redis.call('PUBSUB', 'SHARDNUMSUB', channel)[2] > 0
  end
  return redis.call('PUBSUB', 'NUMSUB', channel)[2] > 0
end

-- A run waiting for the lock alone (queued in `waiters` and in `writers`, which lists the
-- exclusive waiters) that came before `before` (a score in `waiters`; nil: before anyone new)
-- and still listens: new shared holders let it go first, so that a stream of them cannot starve
-- it. One that has left the queue (it took the lock, gave up, or was woken) is dropped from
-- `writers`; one nobody hears (gone, or not subscribed yet) does not count.
local function writer_ahead(waiters, writers, before)
  if redis.call('EXISTS', writers) == 0 then
    return nil
  end
  for _, writer in ipairs(redis.call('ZRANGE', writers, 0, -1)) do
    local queued = redis.call('ZSCORE', waiters, writer)
    if not queued then
      redis.call('ZREM', writers, writer)
    elseif (not before or tonumber(queued) < before) and listening(writer) then
      return writer
    end
  end
  return nil
end
