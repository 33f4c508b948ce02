"""Issue 15's cost at scale, beside B8 (waiters.py) and B11 (trips.py): B9, many holders at
once (each redlock's heartbeat kept, its memory, Redis's CPU per extension); B10, `redlock
list` among many other keys against a bare `redis-cli --scan` over the same keys."""

import os
import socket
import statistics
import subprocess
import time

from waiters import commandstats


def rss_kib(pid):
    """A process's resident memory now, from /proc (0 once it is gone)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def b9_many_holders(redis, redlock, holders, seconds):
    """`holders` runs of distinct names at once, each `--ttl 2s --heartbeat 200ms` over a
    `sleep`: every one must keep its lock (exit 0: a missed extension loses it, 76), Redis's CPU
    per extension, and each redlock's resident memory."""
    env = dict(os.environ, REDLOCK_URL=redis.url)
    runs = [subprocess.Popen([str(redlock), "run", "-n", f"many{i}", "--ttl", "2s",
                              "--heartbeat", "200ms", "--", "sleep", str(seconds)], env=env)
            for i in range(holders)]
    deadline = time.monotonic() + 30
    while int(redis.cli("DBSIZE")) < 2 * holders and time.monotonic() < deadline:
        time.sleep(0.05)
    # A window in the middle of the runs: every holder has acquired, none has released.
    window = seconds / 2
    before = commandstats(redis)
    time.sleep(window)
    after = commandstats(redis)
    memory = [rss_kib(run.pid) for run in runs]
    lost = sum(1 for run in runs if run.wait() != 0)
    extensions = after[0] - before[0]
    usec = after[2] - before[2]
    return {
        "holders": holders,
        "lost": lost,
        "extensions": extensions,
        "extensions_per_holder_per_interval": round(extensions / holders / (window / 0.2), 2),
        "redis_usec_per_extension": round(usec / extensions, 1) if extensions else None,
        "rss_kib_median": statistics.median(memory),
        "rss_kib_max": max(memory),
    }


def bare_scan(port, pattern, count):
    """`SCAN 0 MATCH pattern COUNT count` to the end, over one connection, as `redis-cli --scan
    --count` does (Debian's redis-cli 7.0 has no --count): the keys found."""
    connection = socket.create_connection(("127.0.0.1", port))
    reader = connection.makefile("rb")

    def reply():
        line = reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            return [reply() for _ in range(int(rest))]
        if kind == b"$":
            data = reader.read(int(rest) + 2)[:-2]
            return data
        raise RuntimeError(line)

    def command(*args):
        parts = [a.encode() if isinstance(a, str) else a for a in args]
        connection.sendall(b"".join([f"*{len(parts)}\r\n".encode()] +
                                    [f"${len(p)}\r\n".encode() + p + b"\r\n" for p in parts]))
        return reply()

    cursor, keys = b"0", []
    while True:
        cursor, page = command("SCAN", cursor, "MATCH", pattern, "COUNT", str(count))
        keys.extend(page)
        if cursor == b"0":
            connection.close()
            return keys


def b10_list(make_server, redlock, locks, others, workdir):
    """`locks` held locks among `others` other keys, on a server of its own (DEBUG POPULATE
    makes the others): the time and the commands of `redlock list`, against `redis-cli --scan
    --count 1000 --pattern 'redlock:*'` over the same keys (done here, see `bare_scan`)."""
    redis = make_server("--enable-debug-command", "local")
    try:
        return b10_measure(redis, redlock, locks, others, workdir)
    finally:
        redis.stop()


def b10_measure(redis, redlock, locks, others, workdir):
    redis.cli("DEBUG", "POPULATE", str(others), "other")
    script = os.path.join(workdir, "locks.redis")
    with open(script, "w") as out:
        for i in range(locks):
            out.write(f"SET redlock:{{l{i}}} t{i} PX 600000\n")
            out.write(f"HSET redlock:{{l{i}}}:holder token t{i} host bench pid {i} user bench "
                      f"cmd true start 0\n")
            out.write(f"PEXPIRE redlock:{{l{i}}}:holder 600000\n")
    with open(script) as commands:
        subprocess.run(["redis-cli", "-p", str(redis.port)], stdin=commands,
                       stdout=subprocess.DEVNULL, check=True)
    env = dict(os.environ, REDLOCK_URL=redis.url)

    def timed(command):
        before = commandstats(redis)[1]
        started = time.monotonic()
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        took = time.monotonic() - started
        return took, commandstats(redis)[1] - before, out

    rounds = []
    for _ in range(3):
        list_took, list_commands, listed = timed([str(redlock), "list"])
        before = commandstats(redis)[1]
        started = time.monotonic()
        bare_scan(redis.port, "redlock:*", 1000)
        scan_took = time.monotonic() - started
        scan_commands = commandstats(redis)[1] - before
        rounds.append((list_took, scan_took, list_commands, scan_commands))
    assert len(listed.splitlines()) == locks, f"list found {len(listed.splitlines())} of {locks}"
    list_took, scan_took, list_commands, scan_commands = (
        statistics.median(r[i] for r in rounds) for i in range(4))
    return {
        "locks": locks,
        "other_keys": others,
        "list_ms": round(list_took * 1000, 1),
        "scan_ms": round(scan_took * 1000, 1),
        "list_vs_scan": round(list_took / scan_took, 2),
        "list_commands": list_commands,
        "scan_commands": scan_commands,
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
