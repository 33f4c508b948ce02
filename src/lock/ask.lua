-- Ask the live holder of a lock to stop its command and release the lock (release --force).
-- KEYS: 1 lock, 2 holder details.  ARGV: 1 control channel, 2 the token it must hold ('' for
-- any).
-- Returns {token, kill_after_ms, listeners, age_ms}: the token it holds ('' when there is no
-- lock), the holder's --kill-after (-1 when unknown), how many listeners the request reached
-- (0: no live holder heard it, or the lock holds another token than ARGV[2] and nobody was
-- asked) and how long ago the holder took the lock (-1 when unknown).
local current = redis.call('GET', KEYS[1])
if not current then
  return {'', -1, 0, -1}
end
if ARGV[2] ~= '' and current ~= ARGV[2] then
  return {current, -1, 0, -1}
end
local kill_after, age = -1, -1
if redis.call('TYPE', KEYS[2]).ok == 'hash' and redis.call('HGET', KEYS[2], 'token') == current then
  local h = redis.call('HMGET', KEYS[2], 'kill_after', 'start')
  kill_after = tonumber(h[1]) or -1
  local now = redis.call('TIME')
  if tonumber(h[2]) then
    age = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(h[2])
  end
end
return {current, kill_after, redis.call('PUBLISH', ARGV[1], 'stop ' .. current), age}
