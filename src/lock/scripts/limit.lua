-- Clear a semaphore's stored N that no holder keeps any more: its holders crashed or were
-- broken, and their places are gone (a place's key is its holder's lease).
-- KEYS: 1 stored limit, then the lock key of each of its N places.  ARGV: 1 N.
-- Returns 1 when cleared, 0 when the stored N is another or a place is still held.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return 0
  end
end
redis.call('DEL', KEYS[1])
return 1
