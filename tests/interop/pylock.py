"""redis-py's Lock, for tests/sharing.rs: the application's side of a key shared with
`redlock run --key`. One line on stdout per step, flushed.

    pylock.py PORT KEY TTL_S try      acquire(blocking=False): prints acquired (then releases) or busy
    pylock.py PORT KEY TTL_S hold     acquires (blocking), prints held, releases on a line on stdin,
                                      prints released BEFORE AFTER (ns: just before and just after the release)
    pylock.py PORT KEY TTL_S once LOG [GAP_MS]
                                      holds it once as a critical section: appends to LOG
                                      `try pyPID NS` (the time before the SET that took it), then
                                      start, three life-signs GAP_MS apart (5) and end
                                      (tests/sharing.rs checks them)
"""

import os
import sys
import time

import redis


def mark(log, word, ns=None):
    with open(log, "a") as f:
        f.write(f"{word} py{os.getpid()} {ns or time.time_ns()}\n")


def main():
    port, key, ttl, mode = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
    client = redis.Redis(port=port)
    lock = client.lock(key, timeout=ttl)
    if mode == "try":
        if lock.acquire(blocking=False):
            print("acquired", flush=True)
            lock.release()
        else:
            print("busy", flush=True)
    elif mode == "hold":
        lock.acquire(blocking=True, blocking_timeout=60)
        print("held", flush=True)
        sys.stdin.readline()
        releasing = time.time_ns()
        lock.release()
        print(f"released {releasing} {time.time_ns()}", flush=True)
    elif mode == "once":
        log = sys.argv[5]
        gap = float(sys.argv[6]) / 1000 if len(sys.argv) > 6 else 0.005
        # Each attempt is one SET NX: the time before the one that succeeds is no later than
        # the server's, so the key expires no sooner than TTL after it.
        while True:
            before = time.time_ns()
            if lock.acquire(blocking=False):
                break
            time.sleep(0.005)
        mark(log, "try", before)
        mark(log, "start")
        for _ in range(3):
            time.sleep(gap)
            mark(log, "alive")
        mark(log, "end")
        lock.release()
    else:
        sys.exit(f"pylock.py: unknown mode {mode}")


if __name__ == "__main__":
    main()
