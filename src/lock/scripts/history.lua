-- The run history, prepended to the scripts that record a run (acquire.lua for a busy run that
-- does not wait, leave.lua for a waiter that gave up, release.lua for the end of a run and for
-- a run that found too few servers): recording adds no request of its own.
-- `entry` is the run as a JSON object, written by redlock ('' when --history is 0), ending in
-- its `servers` field; the server adds when it recorded it (end_ms, its clock) and, from
-- release.lua, whether it still held the run's token (held). The text is extended, not decoded
-- and encoded again: Redis's cjson keeps 14 digits, and would turn a large fence into a float.
-- Newest first, at most `cap` entries.
local function record(history, entry, cap, held)
  if entry == '' then
    return
  end
  local now = redis.call('TIME')
  local added = ',"end_ms":' .. now[1] .. string.format('%03d', math.floor(now[2] / 1000))
  -- A fact, not a verdict: whether the run lost its lock is decided in Rust, by the majority
  -- of the servers' records (`redlock history`, `status`).
  if held ~= nil then
    added = added .. ',"held":' .. tostring(held)
  end
  entry = string.sub(entry, 1, -2) .. added .. '}'
  -- A key of another type there is not ours to replace, and must not fail the run: LPUSH
  -- tells (WRONGTYPE). Anything else (an ACL) is raised by a second LPUSH, where it happens.
  local length = redis.pcall('LPUSH', history, entry)
  if type(length) == 'table' then
    if string.find(length.err, 'WRONGTYPE', 1, true) then
      return
    end
    length = redis.call('LPUSH', history, entry)
  end
  if length > tonumber(cap) then
    redis.call('LTRIM', history, 0, tonumber(cap) - 1)
  end
end

