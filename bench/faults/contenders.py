"""The contending loops: each starts one run after another on the campaign's lock, each run a
wrapper (`redlock run`, the stand-in or a peer) around critical.py, and watches it: a run that
outlives its --wait, its command, its TTL and a generous margin is hung, killed and counted.

The harness's fault thread asks `holders()` which runs hold the lock now (their command has
written its start mark and no end mark) to aim its faults at them."""

import glob
import os
import signal
import subprocess
import sys
import threading
import time

from procs import Child, forget_finished

HERE = os.path.dirname(os.path.abspath(__file__))
# Beyond --wait + the command + the TTL (+ any time the harness kept it stopped): a run still
# alive then is hung. Generous: a loaded 2-core machine must not make a slow run look hung.
MARGIN = 15.0


def short_hold(rng):
    """How long a command holds the lock: mostly briefly, sometimes longer than the TTL (so the
    heartbeat must keep the lease, and a fault has time to bite)."""
    return rng.uniform(2.5, 4.5) if rng.random() < 0.3 else rng.uniform(0.05, 0.6)


class Run:
    def __init__(self, run_id, loop, kind, argv, hold, budget, logdir, env):
        self.id, self.loop, self.kind, self.hold = run_id, loop, kind, hold
        self.log = os.path.join(logdir, "runs", f"{run_id}.log")
        self.frozen = 0.0  # seconds the harness kept it stopped: added to its deadline
        self.hung = False
        self.launched = time.monotonic()
        self.exited = None
        self.deadline = self.launched + budget
        self._start = None
        with open(os.path.join(logdir, "runs", f"{run_id}.err"), "wb") as err:
            self.child = Child(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)

    def _read(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            # A run of several locks traces each lock on its own (RUNID~NAME.log, critical.py),
            # all alike: the first tells when its command started and ended.
            each = sorted(glob.glob(self.log[:-len(".log")] + "~*.log"))
            if each:
                self.log = each[0]
                return self._read()
            return ""

    def started(self):
        """(monotonic seconds at its command's start, its fields), or None before."""
        if self._start is None:
            text = self._read()
            if text.startswith("start "):
                words = text.split("\n", 1)[0].split()
                fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
                self._start = (int(words[1]) / 1e9, fields)
        return self._start

    def holding(self):
        """Its command runs (started, no end mark) and the wrapper is alive."""
        return (self.child.poll() is None and self.started() is not None
                and "\nend " not in self._read())

    def remaining(self):
        """How much longer its command means to hold."""
        start = self.started()
        return 0.0 if start is None else start[0] + self.hold - time.monotonic()

    def summary(self, t0):
        return {"id": self.id, "loop": self.loop, "kind": self.kind,
                "status": self.child.status(), "hung": self.hung,
                "launched_s": round(self.launched - t0, 3),
                "exited_s": None if self.exited is None else round(self.exited - t0, 3),
                "hold_s": round(self.hold, 3), "frozen_s": round(self.frozen, 3)}


class Contenders:
    """`loops` threads; `make(loop, run_id, hold_ms, logdir)` gives a run's (kind, argv, hold)."""

    def __init__(self, logdir, loops, make, rngs, wait_s, ttl_s, gap):
        self.logdir, self.make, self.wait_s, self.ttl_s = logdir, make, wait_s, ttl_s
        self.gap = gap
        os.makedirs(os.path.join(logdir, "runs"), exist_ok=True)
        self.runs = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        # The runs' environment: nothing of the caller's REDLOCK_* may change what they do.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("REDLOCK_")}
        self.threads = [threading.Thread(target=self._loop, args=(i, rngs[i]), daemon=True)
                        for i in range(loops)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def finish(self):
        """Stops starting runs and waits for every run to end (killing the hung ones)."""
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _loop(self, index, rng):
        number = 0
        while not self.stop.is_set():
            hold = short_hold(rng)
            run_id = f"L{index}-{number:04d}"
            number += 1
            kind, argv, hold = self.make(index, run_id, hold)
            budget = self.wait_s + hold + self.ttl_s + MARGIN
            run = Run(run_id, index, kind, argv, hold, budget, self.logdir, self.env)
            with self.lock:
                self.runs.append(run)
            while run.child.poll() is None:
                if time.monotonic() > run.deadline + run.frozen and not run.hung:
                    run.hung = True
                    run.child.signal(signal.SIGCONT)
                    run.child.kill()
                time.sleep(0.02)
            run.exited = time.monotonic()
            forget_finished()  # a long campaign starts thousands of runs
            # Back off a little when the servers cannot be reached: a loop of instant 69s
            # would only eat the CPU the servers and the holder need.
            pause = rng.uniform(0.2, 0.5) if run.child.status() == 69 else rng.uniform(0, self.gap)
            self.stop.wait(pause)

    def holders(self):
        with self.lock:
            runs = list(self.runs)
        return [r for r in runs if r.holding()]

    def all_runs(self):
        with self.lock:
            return list(self.runs)

    def wait_for_commands(self, patience=20.0):
        """Waits until no command of a run is alive (a stand-in's command outlives its killed
        wrapper); kills what is left after `patience` (descendants of ours, by PID)."""
        deadline = time.monotonic() + patience
        for run in self.all_runs():
            start = run.started()
            if start is None:
                continue
            pid = int(start[1].get("pid", 0))
            while pid and _runs_command(pid, run.id):
                if time.monotonic() > deadline:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    break
                time.sleep(0.05)


def _runs_command(pid, run_id):
    """Whether `pid` is still the command of `run_id` (not a reused PID)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return run_id.encode() in f.read().split(b"\0")
    except OSError:
        return False


def critical_argv(logdir, run_id, hold):
    return [sys.executable, os.path.join(HERE, "critical.py"), logdir, run_id,
            str(int(hold * 1000))]
