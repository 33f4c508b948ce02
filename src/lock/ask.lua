-- Ask the live holder of a lock to stop its command and release the lock (release --force).
-- KEYS: 1 lock, 2 holder details.  ARGV: 1 control channel, 2 the token it must hold ('' for
-- any).
-- Returns {token, kill_after_ms, listeners}: the token it holds ('' when there is no lock),
-- the holder's --kill-after (-1 when unknown) and how many listeners the request reached (0:
-- no live holder heard it, or the lock holds another token than ARGV[2] and nobody was asked).
local current = redis.call('GET', KEYS[1])
if not current then
  return {'', -1, 0}
end
if ARGV[2] ~= '' and current ~= ARGV[2] then
  return {current, -1, 0}
end
local kill_after = -1
if redis.call('TYPE', KEYS[2]).ok == 'hash' and redis.call('HGET', KEYS[2], 'token') == current then
  kill_after = tonumber(redis.call('HGET', KEYS[2], 'kill_after')) or -1
end
return {current, kill_after, redis.call('PUBLISH', ARGV[1], 'stop ' .. current)}
