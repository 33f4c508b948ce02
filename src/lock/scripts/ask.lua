-- Ask the live holder of a lock to stop its command and release the lock (release --force, or
-- run --replace). KEYS: 1 lock, 2 holder details, 3 waiters, 4 shared holders, 5 their
-- details (readers.lua): a shared holder is asked by its token (for 'replace', every one of
-- them is asked).  ARGV: 1 control channel, 2 the
-- token it must hold ('' for any), 3 what is asked: 'stop' (release --force) or 'replace' (run
-- --replace), 4 the replacing run's entry in the queue ('' for none): a waiter, moved to the front of the
-- queue when the holder is asked, so that the holder's release wakes it, and the waiters that
-- came before it are not handed a lock only to be replaced (they keep their order after it).
-- Returns {token, kill_after_ms, listeners, age_ms, state}: the token it holds ('' when there is
-- no lock), the holder's --kill-after (-1 when unknown), how many listeners the request reached
-- (0: nobody heard it, or the lock holds another token than ARGV[2] and nobody was asked; a
-- listener may be another run: only the holder's answer counts), how long ago the holder took
-- the lock (-1 when unknown), and 'stopping' once the holder said it stops its command on this
-- request (extend.lua), 'ended' when its command has ended (--min-hold keeps the lock), else ''.
-- Moves the replacing run to the front of the queue. After the request (the script is atomic:
-- the holder cannot release in between), so that a queue of another type fails the move, not
-- the request.
local function to_front()
  if ARGV[4] ~= '' then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    if first[1] and first[1] ~= ARGV[4] then
      -- XX: a run that has left the queue is not put back.
      redis.call('ZADD', KEYS[3], 'XX', tonumber(first[2]) - 1, ARGV[4])
    end
  end
end

local current = redis.call('GET', KEYS[1])
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
if not current and ARGV[2] ~= '' then
  local until_ms = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[2]))
  if until_ms and until_ms > now_ms then
    local d = reader_details(KEYS[5], ARGV[2])
    local state = (d.ended and 'ended') or (d.stopping and 'stopping') or ''
    local age = tonumber(d.start) and now_ms - tonumber(d.start) or -1
    local listeners = notify(ARGV[1], ARGV[3] .. ' ' .. ARGV[2])
    local kill_after = tonumber(d.kill_after) or -1
    if ARGV[3] == 'replace' then
      -- Taking over from shared holders is taking over from all of them: each is asked.
      for _, other in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. now_ms, '+inf')) do
        if other ~= ARGV[2] then
          notify(ARGV[1], 'replace ' .. other)
          kill_after = math.max(kill_after, tonumber(reader_details(KEYS[5], other).kill_after) or -1)
        end
      end
    end
    to_front()
    return {ARGV[2], kill_after, listeners, age, state}
  end
end
if not current then
  -- Held shared, but not by ARGV[2]: a shared holder's token, so that the lock reads as held
  -- by another.
  local other = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. now_ms, '+inf', 'LIMIT', 0, 1)[1]
  return {other or '', -1, 0, -1, ''}
end
if ARGV[2] ~= '' and current ~= ARGV[2] then
  return {current, -1, 0, -1, ''}
end
local kill_after, age, state = -1, -1, ''
-- One call a line: a refusal (an ACL) names the line, and redlock the command on it.
local details = redis.call('TYPE', KEYS[2]).ok == 'hash'
if details and redis.call('HGET', KEYS[2], 'token') == current then
  local h = redis.call('HMGET', KEYS[2], 'kill_after', 'start', 'stopping', 'ended')
  kill_after = tonumber(h[1]) or -1
  if tonumber(h[2]) then
    age = now_ms - tonumber(h[2])
  end
  if h[4] then
    state = 'ended'
  elseif h[3] then
    state = 'stopping'
  end
end
local listeners = notify(ARGV[1], ARGV[3] .. ' ' .. current)
to_front()
return {current, kill_after, listeners, age, state}
