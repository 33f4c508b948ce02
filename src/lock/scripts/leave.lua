-- Leave the queue of waiters: a waiter that gave up, or was interrupted.
-- KEYS: 1 waiters, 2 history, 3 the exclusive waiters (readers.lua).  ARGV: 1 its entry in
-- the queue (`Keys::wake`), 2 the run as history.lua records it ('' for none: interrupted, or
-- no history kept), 3 the cap.
-- Returns 1 if it was in the queue, else 0.
record(KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
