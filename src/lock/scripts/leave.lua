-- Leave the queue of waiters: a waiter that gave up, or was interrupted.
-- KEYS: 1 waiters.  ARGV: 1 token.  Returns 1 if it was in the queue, else 0.
return redis.call('ZREM', KEYS[1], ARGV[1])
