"""Every process the harness starts, so that each is stopped by its PID at the end, whatever
happens (a failed check, an exception, Ctrl-C), and never signalled once it is reaped (PIDs
are reused): `Child.signal` and `Child.poll` share one lock per process."""

import os
import signal
import subprocess
import threading
import time

_started = []
_started_lock = threading.Lock()
_closed = False  # set once the harness is stopping for good: no process may start after


class Child:
    """A process of ours: signalled only while it is not reaped."""

    def __init__(self, argv, **popen):
        self._lock = threading.Lock()
        # Under the list's lock: a loop thread cannot start a process that stop_everything
        # would miss.
        with _started_lock:
            if _closed:
                raise RuntimeError("the harness is stopping")
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **popen)
            self.pid = self.popen.pid
            _started.append(self)

    def poll(self):
        with self._lock:
            return self.popen.poll()

    def signal(self, sig):
        """Sends `sig` if the process is still ours (not reaped); whether it was sent."""
        with self._lock:
            if self.popen.poll() is not None:
                return False
            os.kill(self.pid, sig)
            return True

    def wait(self, timeout=None):
        """Its status once it exits (None if still running after `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return self.status()

    def status(self):
        """The exit status as a shell gives it: the code, else 128 + the signal."""
        code = self.popen.returncode
        if code is None:
            return None
        return code if code >= 0 else 128 - code

    def kill(self):
        """SIGKILL (which also ends a stopped process), and reap it."""
        self.signal(signal.SIGKILL)
        self.popen.wait()


def stop_everything(final=False):
    """Kills every process the harness started that is still running, and reaps it; `final`:
    and lets none start after."""
    global _closed
    with _started_lock:
        _closed = _closed or final
        children = list(_started)
        _started.clear()
    for child in children:
        try:
            child.signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
    for child in children:
        child.popen.wait()


def forget_finished():
    """Drops reaped processes from the list (a long campaign starts thousands)."""
    with _started_lock:
        _started[:] = [c for c in _started if c.popen.returncode is None]
