-- `notify`, prepended to the scripts that publish a notice (acquire, ask, break, release): the
-- one place they publish. Sharded pub/sub (SPUBLISH, Redis 7+) reaches the subscribers of the
-- node that owns the lock's slot; a server before 7.0 does not know it, and has PUBLISH (the
-- subscribers fall back the same way). Any other failure, an ACL without SPUBLISH, is raised
-- by a second SPUBLISH where it happens (the error names the line, which redlock reads to name
-- the command): a notice published otherwise would reach none of the sharded subscribers.
-- Returns how many subscribers received it.
local function notify(channel, message)
  local sent, result = pcall(redis.call, 'SPUBLISH', channel, message)
  if sent then
    return result
  end
  local text = type(result) == 'table' and result.err or tostring(result)
  -- Redis 6.2 says "Unknown Redis command called from Lua script".
  if string.find(text, 'Unknown Redis command', 1, true)
      or string.find(text, 'unknown command', 1, true) then
    return redis.call('PUBLISH', channel, message)
  end
  return redis.call('SPUBLISH', channel, message)
end

-- `wake`, after a release or a break: the lock goes to the first waiter of the queue (the
-- sorted set `waiters`), and to no other. Each waiter listens on a channel of its own
-- (`Keys::wake`: `channels` and its token), which is its entry in the queue: a release wakes
-- one waiter however many wait. The first is woken once: one that nobody hears (gone, its
-- subscription closed) is passed over for the next, three at most (a server may count only its
-- own subscribers: Redis 6.2's PUBLISH in a cluster). An entry that is not such a channel (an
-- older redlock's token) is dropped unheard: publishing on a name outside the lock's slot would
-- fail the script on a cluster. The next in the queue is told whom the lock went to: should
-- that one not take it (stopped), it tries after a moment itself. The other waiters sleep on:
-- their turn comes, or their own deadline.
-- An exclusive waiter woken leaves the queue (and `writers`, readers.lua's list of them); a
-- shared one keeps its place until it comes in, so that exclusive waiters behind it stay behind
-- it. `shared_only`: wake a shared waiter only (a shared holder calling in the next one).
local function wake(waiters, channels, writers, shared_only)
  local function a_waiter(entry)
    return entry and string.sub(entry, 1, #channels) == channels
  end
  local tries = 0
  while tries < 3 do
    -- The first, out of the queue (and of `writers`: whether it is exclusive).
    local first, score, exclusive
    if shared_only then
      local head = redis.call('ZRANGE', waiters, 0, 0, 'WITHSCORES')
      first, score = head[1], head[2]
      if not first or redis.call('ZSCORE', writers, first) then
        return
      end
      redis.call('ZREM', waiters, first)
    else
      local head = redis.call('ZPOPMIN', waiters)
      first, score = head[1], head[2]
      if not first then
        return
      end
      exclusive = redis.call('ZREM', writers, first) == 1
    end
    if a_waiter(first) then
      tries = tries + 1
      if notify(first, '') > 0 then
        if not exclusive then
          -- A shared waiter keeps its place until it comes in.
          redis.call('ZADD', waiters, score, first)
        end
        local after = exclusive and 0 or 1
        local next = redis.call('ZRANGE', waiters, after, after)[1]
        if a_waiter(next) then
          notify(next, first)
        end
        return
      end
    end
  end
end
