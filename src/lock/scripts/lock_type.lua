-- `must_be_lock`: a lock's key holds a token (a string), or is absent. Any other type (a hash,
-- a list: an application's key given to --key by mistake) is named with its type in the error,
-- before the script writes anything.
local function must_be_lock(key)
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'none' and kind ~= 'string' then
    error({err = 'WRONGTYPE ' .. key .. ' is a ' .. kind .. ', not a lock'})
  end
end
