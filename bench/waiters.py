"""B8, the herd (issue 15): N processes started together on one name, each running
`sleep 0.02` once under the lock (`redlock run --wait`) or under `flock -w`. Per run: the
scripts Redis ran (EVAL/EVALSHA: what redlock sent to take, extend or release the lock), every
command it ran (INFO commandstats, the scripts' own calls included), and its CPU time
(commandstats usec); and the hand-over gap between one holder's last write and the next one's
first, redlock's against flock's with the same N, in the same round."""

import os
import statistics
import subprocess
import time


def commandstats(redis):
    """(scripts, commands, usec) the server has run so far."""
    scripts = commands = usec = 0
    for line in redis.cli("INFO", "commandstats").splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, fields = line.split(":", 1)
        values = dict(field.split("=") for field in fields.split(","))
        calls = int(values["calls"])
        commands += calls
        usec += int(values["usec"])
        if name in ("cmdstat_eval", "cmdstat_evalsha"):
            scripts += calls
    return scripts, commands, usec


def herd(tool, n, redis, redlock, workdir):
    """N processes at once; each critical section logs its start and end in nanoseconds.
    Returns the gaps (ms), the overlaps, and what Redis ran (for redlock)."""
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
    before = commandstats(redis)
    processes = [subprocess.Popen(command, env=env) for _ in range(n)]
    failed = sum(1 for p in processes if p.wait() != 0)
    after = commandstats(redis)
    events = [line.split() for line in open(log)]
    gaps, overlaps = [], failed
    for a, b in zip(events, events[1:]):
        if a[0] == b[0]:
            overlaps += 1
        elif a[0] == "e":
            gaps.append((int(b[1]) - int(a[1])) / 1e6)
    ran = [(y - x) / n for x, y in zip(before, after)]
    return gaps, overlaps, ran


def b8_waiters(make_server, redlock, ns, rounds, workdir):
    """For each N: redlock and flock in turn, `rounds` times, each round on a fresh server."""
    results = {}
    for n in ns:
        gaps = {"redlock": [], "flock": []}
        overlaps = 0
        per_run = []
        for _ in range(rounds):
            redis = make_server()
            try:
                for tool in ("redlock", "flock"):
                    more, overlapping, ran = herd(tool, n, redis, redlock, workdir)
                    gaps[tool].append(statistics.median(more) if more else 0.0)
                    overlaps += overlapping
                    if tool == "redlock":
                        per_run.append(ran)
            finally:
                redis.stop()
        scripts, commands, usec = (statistics.median(r[i] for r in per_run) for i in range(3))
        redlock_gap = statistics.median(gaps["redlock"])
        flock_gap = statistics.median(gaps["flock"])
        results[str(n)] = {
            "scripts_per_run": round(scripts, 2),
            "commands_per_run": round(commands, 1),
            "redis_usec_per_run": round(usec, 1),
            "gap_median_ms": round(redlock_gap, 2),
            "flock_gap_median_ms": round(flock_gap, 2),
            "gap_vs_flock": round(redlock_gap / flock_gap, 2) if flock_gap else None,
            "overlaps": overlaps,
        }
    return results
