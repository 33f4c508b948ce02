-- The run history, prepended to the scripts that record a run (acquire.lua for a busy run that
-- does not wait, leave.lua for a waiter that gave up, release.lua for the end of a run and for
-- a run that found too few servers): recording adds no request of its own.
-- `entry` is the run as JSON, written by redlock ('' when --history is 0); the server adds
-- when it recorded it (end_ms, its clock) and, from release.lua, whether it still held the
-- run's token (held). Newest first, at most `cap` entries.
local function record(history, entry, cap, held)
  if entry == '' then
    return
  end
  -- A key of another type there is not ours to replace, and must not fail the run.
  local kind = redis.call('TYPE', history).ok
  if kind ~= 'none' and kind ~= 'list' then
    return
  end
  local now = redis.call('TIME')
  local run = cjson.decode(entry)
  run.end_ms = now[1] * 1000 + math.floor(now[2] / 1000)
  if held ~= nil then
    run.held = held
    -- With one server, a run whose token was gone at release lost its lock (76), whatever it
    -- thought; with several, `redlock history` decides by the majority.
    if not held and run.servers == 1 and (run.outcome == 'ran' or run.outcome == 'timeout'
        or run.outcome == 'replaced') then
      run.outcome = 'lost'
      run.exit = 76
    end
  end
  redis.call('LPUSH', history, cjson.encode(run))
  redis.call('LTRIM', history, 0, tonumber(cap) - 1)
end

