"""B8, the herd (issue 15): N processes started together on one name, each running
`sleep 0.02` once under the lock (`redlock run --wait`) or under `flock -w`. Per run: the
scripts Redis ran (EVAL/EVALSHA: what redlock sent to take, extend or release the lock), every
command it ran (INFO commandstats, the scripts' own calls included), and its CPU time
(commandstats usec); the hand-over gap between one holder's last write and the next one's
first, redlock's against flock's with the same N, in the same round; and what the waiting
costs the waiters: each process's CPU time and context switches (its rusage from wait4, which
counts what it reaped: its command, the same for both tools), and the notices Redis published
(commandstats) and delivered to them (`Spy`, and `delivered`)."""

import os
import socket
import statistics
import subprocess
import threading


def commandstats(redis):
    """(scripts, commands, usec, notices published) the server has run so far; PUBSUB left out
    (what `Spy` asks: redlock never sends it). The notices are the calls of SPUBLISH and
    PUBLISH, which count those the scripts published."""
    scripts = commands = usec = published = 0
    for line in redis.cli("INFO", "commandstats").splitlines():
        if not line.startswith("cmdstat_") or line.startswith("cmdstat_pubsub"):
            continue
        name, fields = line.split(":", 1)
        values = dict(field.split("=") for field in fields.split(","))
        calls = int(values["calls"])
        commands += calls
        usec += int(values["usec"])
        if name in ("cmdstat_eval", "cmdstat_evalsha"):
            scripts += calls
        if name in ("cmdstat_spublish", "cmdstat_publish"):
            published += calls
    return scripts, commands, usec, published


def resp(*args):
    return b"".join([f"*{len(args)}\r\n".encode()] +
                    [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args])


class Spy:
    """A subscriber of our own to a lock's shared release and control channels (sharded: the
    Redis 7 servers bench/run starts), which counts the notices Redis delivers on them: on each
    one it receives, the channel's subscribers then (PUBSUB SHARDNUMSUB, itself left out). A
    waiter that takes the lock may leave between a notice and the count: it can be one short a
    notice. A channel of one waiter's own (`released:TOKEN`) cannot be subscribed to before the
    waiter names it: `delivered` counts its notices."""

    def __init__(self, port, channels):
        self.notices = self.delivered = 0
        self.channels = channels
        self.listen = socket.create_connection(("127.0.0.1", port))
        self.ask = socket.create_connection(("127.0.0.1", port))
        self.ask_reader = self.ask.makefile("rb")
        self.listen.sendall(resp("SSUBSCRIBE", *channels))
        self.reader = self.listen.makefile("rb")
        for _ in channels:
            reply(self.reader)  # the subscriptions confirmed
        self.thread = threading.Thread(target=self.count)
        self.thread.start()

    def count(self):
        while True:
            kind, channel, *_ = reply(self.reader)
            if kind == b"sunsubscribe":
                return
            self.notices += 1
            self.ask.sendall(resp("PUBSUB", "SHARDNUMSUB", channel.decode()))
            self.delivered += reply(self.ask_reader)[1] - 1

    def stop(self):
        """(notices published, notices delivered to the others) since it subscribed."""
        # Its replies come after every notice published before it.
        self.listen.sendall(resp("SUNSUBSCRIBE", *self.channels))
        self.thread.join()
        self.listen.close()
        self.ask.close()
        return self.notices, self.delivered


def reply(reader):
    """One RESP2 reply."""
    line = reader.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"*":
        return [reply(reader) for _ in range(int(rest))]
    if kind == b"$":
        return reader.read(int(rest) + 2)[:-2]
    if kind == b":":
        return int(rest)
    raise RuntimeError(line)


def reap(process):
    """Waits for `process` with wait4: (CPU seconds, voluntary and involuntary context
    switches) of the process and of the children it reaped."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, usage.ru_nvcsw, usage.ru_nivcsw


def herd(tool, n, redis, redlock, workdir):
    """N processes at once; each critical section logs its start and end in nanoseconds.
    Returns the gaps (ms), the overlaps, what Redis ran (for redlock: scripts, commands, usec,
    notices published), and per run: CPU ms, context switches, notices delivered on the shared
    channels and in all (for redlock)."""
    log = os.path.join(workdir, f"herd-{tool}-{n}.log")
    if os.path.exists(log):
        os.remove(log)
    critical = f"echo s $(date +%s%N) >> {log}; sleep 0.02; echo e $(date +%s%N) >> {log}"
    if tool == "redlock":
        command = [str(redlock), "run", "-n", f"herd{n}", "--wait", "300s", "--", "sh", "-c",
                   critical]
    else:
        command = ["flock", "-w", "300", f"{log}.lock", "sh", "-c", critical]
    env = dict(os.environ, REDLOCK_URL=redis.url)
    spy = None
    if tool == "redlock":
        spy = Spy(redis.port, [f"redlock:{{herd{n}}}:released", f"redlock:{{herd{n}}}:control"])
    before = commandstats(redis)
    processes = [subprocess.Popen(command, env=env) for _ in range(n)]
    usage = [reap(p) for p in processes]
    failed = sum(1 for p in processes if p.returncode != 0)
    after = commandstats(redis)
    seen, shared = spy.stop() if spy else (0, 0)
    events = [line.split() for line in open(log)]
    gaps, overlaps = [], failed
    for a, b in zip(events, events[1:]):
        if a[0] == b[0]:
            overlaps += 1
        elif a[0] == "e":
            gaps.append((int(b[1]) - int(a[1])) / 1e6)
    ran = [(y - x) / n for x, y in zip(before, after)]
    published = after[3] - before[3]
    cost = [sum(u[0] for u in usage) * 1000 / n, sum(u[1] for u in usage) / n,
            sum(u[2] for u in usage) / n, shared / n, delivered(published, seen, shared) / n]
    return gaps, overlaps, ran, cost


def delivered(published, seen, shared):
    """The notices Redis delivered: `shared`, those the spy counted on the shared channels
    (`seen` of them published there), and one for each of the others. Those went to a channel
    of one waiter's own (`released:TOKEN`), which has one subscriber at most, the waiter that
    named it (none once it has gone): that part is an upper bound."""
    return shared + (published - seen)


def b8_waiters(make_server, redlock, ns, rounds, workdir):
    """For each N: redlock and flock in turn, `rounds` times, each round on a fresh server; the
    gap against flock's is the median of the rounds' ratios, with their least and greatest."""
    results = {}
    for n in ns:
        gaps = {"redlock": [], "flock": []}
        costs = {"redlock": [], "flock": []}
        overlaps = 0
        per_run = []
        for _ in range(rounds):
            redis = make_server()
            try:
                for tool in ("redlock", "flock"):
                    more, overlapping, ran, cost = herd(tool, n, redis, redlock, workdir)
                    gaps[tool].append(statistics.median(more) if more else 0.0)
                    costs[tool].append(cost)
                    overlaps += overlapping
                    if tool == "redlock":
                        per_run.append(ran)
            finally:
                redis.stop()
        scripts, commands, usec, published = (statistics.median(r[i] for r in per_run)
                                              for i in range(4))
        (cpu, voluntary, involuntary, shared, everywhere), flock = (
            [statistics.median(c[i] for c in costs[tool]) for i in range(5)]
            for tool in ("redlock", "flock"))
        redlock_gap = statistics.median(gaps["redlock"])
        flock_gap = statistics.median(gaps["flock"])
        ratios = sorted(r / f for r, f in zip(gaps["redlock"], gaps["flock"]) if f)
        results[str(n)] = {
            "scripts_per_run": round(scripts, 2),
            "commands_per_run": round(commands, 1),
            "redis_usec_per_run": round(usec, 1),
            "gap_median_ms": round(redlock_gap, 2),
            "flock_gap_median_ms": round(flock_gap, 2),
            "gap_vs_flock": [round(statistics.median(ratios), 2), round(ratios[0], 2),
                             round(ratios[-1], 2)] if ratios else None,
            "overlaps": overlaps,
            "cpu_ms_per_run": round(cpu, 2),
            "flock_cpu_ms_per_run": round(flock[0], 2),
            "voluntary_switches_per_run": round(voluntary, 1),
            "flock_voluntary_switches_per_run": round(flock[1], 1),
            "involuntary_switches_per_run": round(involuntary, 1),
            "flock_involuntary_switches_per_run": round(flock[2], 1),
            "notices_published_per_run": round(published, 2),
            "notices_delivered_per_run": round(everywhere, 2),
            "notices_delivered_on_shared_channels_per_run": round(shared, 2),
        }
    return results
