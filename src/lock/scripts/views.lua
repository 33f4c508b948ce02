-- Several locks as `view` reads each (view_fn.lua, prepended), in one reply: `redlock list`
-- reads a page of locks per round trip. Their keys must share a server, and on a Redis
-- Cluster a slot (the server answers CROSSSLOT otherwise).
-- KEYS: the seven keys of view.lua for each lock, one lock after the other.
-- Returns one reply of view.lua's layout for each lock, in their order.
local replies = {}
for i = 0, #KEYS / 7 - 1 do
  local k = 7 * i
  local reply = view(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
    KEYS[k + 6], KEYS[k + 7])
  if reply.err then
    -- A lock's key of another type fails the whole read, as it fails view.lua.
    return reply
  end
  replies[#replies + 1] = reply
end
return replies
