#!/usr/bin/env python3
"""The negative control: a naive lock wrapper, with the interface subset of `redlock run` the
campaigns use, that the checker must catch. If the campaigns find no overlap with it, they
cannot be trusted to find one with redlock.

    standin.py --name NAME [--name NAME...] --redis URL --ttl DURATION --wait DURATION -- COMMAND...

What it does, as many hand-written wrappers do:

- takes the lock with a plain `SET standin:{NAME} TOKEN NX PX TTL`, polling every 50 ms for
  --wait (75 when the time is up, 69 when the server cannot be reached by then); several
  names one after another, sorted (so that two of them cannot deadlock), holding those it has
  while it polls for the next, and keeping them when it gives up;
- gives the command REDLOCK_FENCE from `INCR standin:{NAME}:fence`, so the fenced store works;
- keeps the lease with a heartbeat thread that blindly PEXPIREs the key (whoever holds it);
- never stops its command when the lease is lost (a paused server, a frozen or killed wrapper:
  the command runs on, and a second holder starts beside it);
- releases with a plain DEL (possibly someone else's lock), and exits with the command's status.

Only the first --redis is used.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True  # no __pycache__ left in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import cmd  # noqa: E402  (the harness's tiny RESP client)

TIMEOUT = 5.0  # seconds for each request: a common client default, not tied to the lease


def seconds(text):
    """30s, 1m30s, 250ms, 2h or plain seconds, as redlock reads them."""
    if re.fullmatch(r"[0-9.]+", text):
        return float(text)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"([0-9.]+)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        sys.exit(f"standin: bad duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def main():
    parser = argparse.ArgumentParser(prog="standin.py")
    parser.add_argument("--name", required=True, action="append")
    parser.add_argument("--redis", action="append", default=[])
    parser.add_argument("--ttl", type=seconds, default=30.0)
    parser.add_argument("--wait", type=seconds, default=0.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit(64)
    url = (args.redis or ["redis://127.0.0.1:6379"])[0]
    port = int(re.fullmatch(r"redis://[^:/]+:(\d+)/?", url).group(1))
    args.name = sorted(set(args.name))
    keys, ttl_ms = [f"standin:{{{name}}}" for name in args.name], int(args.ttl * 1000)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + args.wait
    fences = {}
    for name, key in zip(args.name, keys):
        while True:
            try:
                if cmd(port, "SET", key, token, "NX", "PX", ttl_ms, timeout=TIMEOUT) == "OK":
                    break
                status = 75
            except OSError:
                status = 69
            if time.monotonic() >= deadline:
                sys.exit(status)
            time.sleep(0.05)
        fences[name] = cmd(port, "INCR", key + ":fence", timeout=TIMEOUT)
    one = len(args.name) == 1
    env = dict(os.environ, REDLOCK_NAME=args.name[0] if one else "", REDLOCK_TOKEN=token,
               REDLOCK_FENCE=str(fences[args.name[0]]) if one else "",
               REDLOCK_FENCES=json.dumps(fences, separators=(",", ":")), REDLOCK_SLOT="0")
    child = subprocess.Popen(command, env=env)
    done = threading.Event()

    def heartbeat():
        while not done.wait(args.ttl / 3):
            for key in keys:
                try:
                    cmd(port, "PEXPIRE", key, ttl_ms, timeout=TIMEOUT)  # whoever holds it
                except OSError:
                    pass

    threading.Thread(target=heartbeat, daemon=True).start()
    code = child.wait()
    done.set()
    for key in keys:
        try:
            cmd(port, "DEL", key, timeout=TIMEOUT)  # whoever holds it
        except OSError:
            pass
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
