-- `not_a_lock`: a lock's key holds a token (a string), or is absent. Any other type (a hash,
-- a list: an application's key given to --key by mistake) is named with its type in an error
-- reply, which the caller returns before it writes anything. (A reply, not error(): Redis 6.2
-- cannot raise a table.)
local function not_a_lock(key)
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'none' and kind ~= 'string' then
    return redis.error_reply('WRONGTYPE ' .. key .. ' is a ' .. kind .. ', not a lock')
  end
end

-- `read_lock`: a lock's token, or false when it is free; nil and the error reply when its key
-- is of another type. The GET that reads it tells (WRONGTYPE), and TYPE is asked only then, to
-- name it: a free lock costs one call, not two. Any other failure (an ACL) is raised by a
-- second GET, where it happens (the error names the line, which redlock reads to name the
-- command).
local function read_lock(key)
  local token = redis.pcall('GET', key)
  if type(token) == 'table' and token.err then
    local wrong = not_a_lock(key)
    if wrong then
      return nil, wrong
    end
    return redis.call('GET', key)
  end
  return token
end
