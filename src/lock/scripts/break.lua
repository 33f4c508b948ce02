-- Break a lock on an operator's order, and tell waiters at once.
-- KEYS: 1 lock, 2 holder details.  ARGV: 1 release channel, 2 the token it must hold ('' for
-- any), 3 control channel.
-- Returns 1 when deleted, 0 when there was no lock, -1 when another token holds it.
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
if ARGV[2] ~= '' and current ~= ARGV[2] then
  return -1
end
-- The notices first: one an ACL refuses fails the break before it deleted anything. (The
-- script is atomic: the holder checks its key after the DEL.) A notice that names no waiter:
-- all of them try at once.
notify(ARGV[1], '')
-- And the holder, if it still runs: it stops its command at once.
notify(ARGV[3], 'broken')
redis.call('DEL', KEYS[1], KEYS[2])
return 1
