"""The application's side of the `key` campaign: redis-py's Lock on the key redlock locks with
`--key`, running the same critical section as the redlock runs (critical.py), unfenced.
Run with tests/interop/venv/bin/python (tests/interop/setup installs redis-py there).

    keyholder.py PORT KEY TTL_S WAIT_S LOGDIR RUNID HOLD_MS

Exits 0 after a hold, 75 when the key stayed busy for WAIT_S, 69 when the server could not be
reached by then. redis-py's lock has no heartbeat: the hold is kept well inside the lock's
timeout, counted from before the SET that took it (a reply delayed by a paused server would
otherwise leave a hold running past the key's expiry: the application's fault, not redlock's).
"""

import os
import sys
import time

import redis

sys.dont_write_bytecode = True  # no __pycache__ left in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from critical import hold  # noqa: E402


def main():
    port, key, ttl, wait = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    logdir, run_id, hold_s = sys.argv[5], sys.argv[6], int(sys.argv[7]) / 1000
    client = redis.Redis(port=port, socket_timeout=ttl / 4, socket_connect_timeout=ttl / 4)
    lock = client.lock(key, timeout=ttl)
    deadline = time.monotonic() + wait
    status = 75
    while time.monotonic() < deadline:
        before = time.monotonic()
        try:
            if lock.acquire(blocking=False):
                break
            status = 75
        except redis.exceptions.ConnectionError:  # TimeoutError is one too
            status = 69
        time.sleep(0.05)
    else:
        sys.exit(status)
    left = ttl - (time.monotonic() - before) - ttl / 4
    if left > 0:
        hold(logdir, run_id, min(hold_s, left), None, 0)
    try:
        lock.release()
    except (redis.exceptions.LockError, redis.exceptions.ConnectionError):
        pass  # expired meanwhile, or the server is paused: it expires on its own


if __name__ == "__main__":
    main()
