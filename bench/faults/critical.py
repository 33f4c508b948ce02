#!/usr/bin/env python3
"""The command every contender runs under the lock: a critical section that leaves a trace.

    critical.py LOGDIR RUNID HOLD_MS

It appends to LOGDIR/runs/RUNID.log, one line per event, each with CLOCK_MONOTONIC in
nanoseconds (every process is on this machine, so all the logs share that clock):

    start NS fence=F slot=S token=T pid=P [shared=1]   (S: a name, for several locks)
    alive NS                                  every 50 ms while it holds
    read NS counter=C max=M                   its fenced read-modify-writes of the store,
    write NS accepted|rejected fence=F read=C every 100 to 250 ms
    end NS done|sigterm                       at the end of HOLD_MS, or on SIGTERM (exit 143)

A shared holder (REDLOCK_SHARED=1, `run --shared`) only reads the store: its read's `max`, the
largest fence the store has taken, must not exceed its own fence (a writer that came after it
while it still held the lock), which the checker calls a stale read.

The store is a file guarded by flock(2) (LOGDIR/store-SLOT.*): the flock makes each read and
each write atomic, and nothing more; it is not the mutual exclusion under test. Between the
read and the write the command sleeps, so that a second holder can interleave. The store takes
`counter + 1` only from a fence at least as large as the largest it has seen, and journals every
write (accepted or rejected) in LOGDIR/store-SLOT.journal, in the order it took them.

keyholder.py (the redis-py contender of the `key` campaign) imports `hold` to run the same
critical section.
"""

import fcntl
import json
import os
import random
import signal
import sys
import time

ALIVE_EVERY = 0.05


class Log:
    def __init__(self, logdir, run_id):
        self.fd = os.open(os.path.join(logdir, "runs", f"{run_id}.log"),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def mark(self, word, *fields):
        # One write(2) per line on an O_APPEND file: lines never tear.
        os.write(self.fd, " ".join([word, str(time.monotonic_ns()), *fields]).encode() + b"\n")


class Store:
    """A counter and the largest fence seen, in a file, each access under flock."""

    def __init__(self, logdir, slot):
        base = os.path.join(logdir, f"store-{slot}")
        self.path = base + ".json"
        self.journal = base + ".journal"
        self.lock_fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT, 0o644)

    def _load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"counter": 0, "max_fence": 0}

    def read(self):
        """The counter and the largest fence the store has taken."""
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            state = self._load()
            return state["counter"], state["max_fence"]
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def write(self, run_id, fence, read):
        """counter := read + 1 if `fence` is not older than the newest seen (None: an unfenced
        writer, the redis-py contender, always taken): whether it was accepted."""
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            state = self._load()
            accepted = fence is None or fence >= state["max_fence"]
            line = (f"{time.monotonic_ns()} {'accepted' if accepted else 'rejected'} "
                    f"run={run_id} fence={'-' if fence is None else fence} read={read} "
                    f"current={state['counter']} max={state['max_fence']}\n")
            if accepted:
                state["counter"] = read + 1
                if fence is not None:
                    state["max_fence"] = fence
                with open(self.path + ".new", "w") as f:
                    json.dump(state, f)
                os.replace(self.path + ".new", self.path)
            with open(self.journal, "a") as f:
                f.write(line)
            return accepted
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)


def hold(logdir, run_id, seconds, fence, slot, token="", shared=False):
    """The critical section: life signs and fenced read-modify-writes (reads only, when
    `shared`) for `seconds`."""
    log = Log(logdir, run_id)

    def stopped(signum, frame):
        log.mark("end", "sigterm")
        os._exit(143)

    signal.signal(signal.SIGTERM, stopped)
    store = Store(logdir, slot)
    rng = random.Random()
    log.mark("start", f"fence={'-' if fence is None else fence}", f"slot={slot}",
             f"token={token or '-'}", f"pid={os.getpid()}", *(["shared=1"] if shared else []))
    until = time.monotonic() + seconds
    next_write = time.monotonic()
    while time.monotonic() < until:
        log.mark("alive")
        if time.monotonic() >= next_write:
            value, newest = store.read()
            log.mark("read", f"counter={value}", f"max={newest}")
            if shared:
                next_write = time.monotonic() + rng.uniform(0.1, 0.25)
                time.sleep(max(0.0, min(ALIVE_EVERY, until - time.monotonic())))
                continue
            time.sleep(rng.uniform(0.01, 0.04))  # room for another holder to interleave
            # SIGTERM waits while the store is written: a torn file would be the harness's
            # fault, not the lock's.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            accepted = store.write(run_id, fence, value)
            log.mark("write", "accepted" if accepted else "rejected",
                     f"fence={'-' if fence is None else fence}", f"read={value}")
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            next_write = time.monotonic() + rng.uniform(0.1, 0.25)
        time.sleep(max(0.0, min(ALIVE_EVERY, until - time.monotonic())))
    log.mark("end", "done")


def hold_several(logdir, run_id, seconds, fences, token):
    """The critical section of a run of several locks (`run --name a --name b`): for each lock,
    a trace of its own (RUNID~NAME, its place being the name) and fenced read-modify-writes of
    its own store, with that lock's fence (REDLOCK_FENCES), so that the checker sees each lock
    as it sees a run of one."""
    logs = {name: Log(logdir, f"{run_id}~{name}") for name in fences}
    stores = {name: Store(logdir, name) for name in fences}

    def stopped(signum, frame):
        for log in logs.values():
            log.mark("end", "sigterm")
        os._exit(143)

    signal.signal(signal.SIGTERM, stopped)
    rng = random.Random()
    for name, log in logs.items():
        log.mark("start", f"fence={fences[name]}", f"slot={name}", f"token={token or '-'}",
                 f"pid={os.getpid()}")
    until = time.monotonic() + seconds
    next_write = time.monotonic()
    while time.monotonic() < until:
        for log in logs.values():
            log.mark("alive")
        if time.monotonic() >= next_write:
            for name, store in stores.items():
                value, _ = store.read()
                time.sleep(rng.uniform(0.005, 0.02))
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
                accepted = store.write(run_id, fences[name], value)
                logs[name].mark("write", "accepted" if accepted else "rejected",
                                f"fence={fences[name]}", f"read={value}")
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            next_write = time.monotonic() + rng.uniform(0.1, 0.25)
        time.sleep(max(0.0, min(ALIVE_EVERY, until - time.monotonic())))
    for log in logs.values():
        log.mark("end", "done")


def main():
    logdir, run_id, hold_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fences = json.loads(os.environ.get("REDLOCK_FENCES") or "{}")
    if len(fences) > 1:
        hold_several(logdir, run_id, hold_ms / 1000, fences, os.environ.get("REDLOCK_TOKEN", ""))
        return
    fence = os.environ.get("REDLOCK_FENCE")
    hold(logdir, run_id, hold_ms / 1000, int(fence) if fence else None,
         int(os.environ.get("REDLOCK_SLOT", "0")), os.environ.get("REDLOCK_TOKEN", ""),
         os.environ.get("REDLOCK_SHARED") == "1")


if __name__ == "__main__":
    main()
