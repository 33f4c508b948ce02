"""B11 (issue 15): round trips behind a proxy that adds latency (bench/proxy.rs, built here
with rustc). `run -- true` in hyperfine rounds behind 1 ms each way, in front of 1, 3 and 5
servers and 5 with one far away; and the round trips each phase of a run takes (connect,
acquire, first extension, release), read from the proxy's log of what the client sent."""

import hashlib
import os
import socket
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "src" / "lock" / "scripts"

# The run that lives past its first extension: the heartbeat is due after 100 ms, the command
# takes 350 ms.
LONG = ["--ttl", "3s", "--heartbeat", "100ms", "--", "sleep", "0.35"]


def build_proxy():
    """bench/proxy.rs, compiled into the target directory (CARGO_TARGET_DIR's, else target/)
    unless the binary there is newer than the source: the path of the binary."""
    source = ROOT / "bench" / "proxy.rs"
    binary = ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "bench" / "proxy"
    if binary.exists() and binary.stat().st_mtime > source.stat().st_mtime:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    # Built beside it and renamed: two runs at once never run a half-written binary.
    partial = binary.with_name(f"proxy.{os.getpid()}")
    subprocess.run(["rustc", "-O", "--edition", "2021", str(source), "-o", str(partial)],
                   check=True)
    os.replace(partial, binary)
    return binary


class Proxy:
    """One proxy process in front of several servers: `upstreams` is a list of (port, one way
    ms). Its listening ports are `ports`, in the same order. Stopped by PID."""

    def __init__(self, binary, upstreams, log=None):
        pairs = [f"0:{port}:{ms:g}" for port, ms in upstreams]
        self.process = subprocess.Popen([str(binary), "0", log or "-", *pairs],
                                        stdout=subprocess.PIPE, text=True)
        ready = self.process.stdout.readline().split()
        assert ready[:1] == ["ready"], f"the proxy said {ready}"
        self.ports = [int(p) for p in ready[1:]]

    def stop(self):
        self.process.kill()
        self.process.wait()


def b11_round_trips(servers, make_server, redlock, hyperfine, runs, rounds, workdir,
                    one_way_ms=1.0, slow_ms=50.0):
    """`run -- true` behind the proxy (`one_way_ms` each way, so a round trip of twice that) in
    front of 1, 3 and 5 servers, and 5 with one of them `slow_ms` each way instead; and without
    the proxy, for the run's own time. The issue's target: at most 3 round trips + 1.5 ms,
    whatever the number of servers, as long as a majority is near. Then the round trips of each
    phase (`phases`)."""
    binary = build_proxy()
    near = [(s.port, one_way_ms) for s in servers[:5]]
    proxy = Proxy(binary, near + [(servers[4].port, slow_ms)])
    try:
        ports = proxy.ports

        def run(ports, name):
            urls = " ".join(f"--redis redis://127.0.0.1:{p}" for p in ports)
            return f"{redlock} run {urls} -n {name} -- true"

        names = ["1 server, no proxy", "1 server", "3 servers", "5 servers",
                 f"5 servers, one at {slow_ms:g} ms"]
        medians = hyperfine([run([servers[0].port], "b11a"), run(ports[:1], "b11b"),
                             run(ports[:3], "b11c"), run(ports[:5], "b11d"),
                             run(ports[:4] + ports[5:], "b11e")], runs, rounds)
        ping = ping_ms(ports[0], 10 * runs)
    finally:
        proxy.stop()
    rtt = 2 * one_way_ms
    result = dict(zip(names, (round(m, 2) for m in medians)))
    own = medians[0]
    result["round trips (1, 3, 5, 5 with one slow)"] = [round((m - own) / rtt, 2)
                                                        for m in medians[1:]]
    result["target_ms"] = round(3 * rtt + 1.5, 2)
    # What a round trip through the proxy really takes: its own cost on top of the delays.
    result["PING through the proxy, median ms"] = round(ping, 3)
    result["phases"] = phases(make_server, binary, redlock, one_way_ms, workdir)
    return result


def ping_ms(port, count):
    """The median time of `count` PINGs, one after the other over one connection."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            connection.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += connection.recv(64)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def phases(make_server, binary, redlock, one_way_ms, workdir):
    """The round trips of each phase of runs made one after the other behind the proxy, in
    front of fresh servers: twice `run -- true` (the first on a server that has never run the
    acquire script: it answers NOSCRIPT to its hash), then twice a run that lives past its first
    extension (the first on a server that has never run the extend script); then twice `run --
    true` on
    3 servers whose fencing counters disagree, which the acquire settles before the command
    runs (fence.lua). The URLs have a user and a password (the default user has none, so any
    is accepted) and a database, so that AUTH and SELECT are sent: the log shows whether they
    wait for a round trip of their own."""
    log = os.path.join(workdir, "proxy.log")
    servers = [make_server() for _ in range(3)]
    proxy = Proxy(binary, [(s.port, one_way_ms) for s in servers], log)
    urls = [a for port in proxy.ports
            for a in ("--redis", f"redis://default:bench@127.0.0.1:{port}/1")]
    long = " ".join(LONG)
    runs = {"run -- true, on a fresh server": (1, ["--", "true"]),
            "run -- true": (1, ["--", "true"]),
            f"run {long}, on a fresh server": (1, LONG),
            f"run {long}, again": (1, LONG),
            "run -- true, 3 servers whose fences disagree, on fresh servers": (3, ["--", "true"]),
            "run -- true, 3 servers whose fences disagree, again": (3, ["--", "true"])}
    conns = []
    try:
        for i, (count, args) in enumerate(runs.values()):
            name = f"b11p{i}"
            if count == 3:
                # Servers that granted runs the others did not see (they were down): 0, 10
                # and 20, so that whichever two answer first, they disagree.
                for server, fence in zip(servers[1:], ("10", "20")):
                    server.cli("-n", "1", "SET", f"redlock:{{{name}}}:fence", fence)
            subprocess.run([str(redlock), "run", *urls[:2 * count], "-n", name, *args],
                           check=True)
            conns.append(settled(log, conns[-1][1] if conns else 0))
    finally:
        proxy.stop()
        for server in servers:
            server.stop()
    events, scripts = read_log(log)
    return {name: phases_of(events, scripts, range(first + 1, last + 1))
            for name, (first, last) in zip(runs, conns)}


def settled(log, after):
    """Waits until every connection the proxy logged after connection `after` has closed:
    (after, the last one)."""
    deadline = time.monotonic() + 5
    while True:
        opened, closed = set(), set()
        for line in open(log):
            word = line.split()
            if word[0] in ("conn", "close") and int(word[1]) > after:
                (opened if word[0] == "conn" else closed).add(int(word[1]))
        if opened and opened == closed or time.monotonic() > deadline:
            return after, max(opened, default=after)
        time.sleep(0.02)


def read_log(path):
    """The proxy's log: the events (kind, connection, time, words), and each script seen in
    full (EVAL), by its SHA1, named after the file in src/lock/scripts it ends with."""
    events, scripts = [], {}
    for line in open(path):
        word = line.split()
        if word[0] == "script":
            body = bytes.fromhex(word[2])
            # The proxy's SHA1 is what names the EVALSHA requests: it must be Redis's.
            assert hashlib.sha1(body).hexdigest() == word[1], f"the proxy's SHA1 of {body[:40]}"
            scripts[word[1]] = script_name(body.decode())
        else:
            events.append((word[0], int(word[1]), word[2], word[3:]))
    return events, scripts


def script_name(body):
    """The script a body runs: the file of src/lock/scripts whose code the body ends with (the
    longest, as build.rs puts history.lua or view_fn.lua before some). build.rs leaves a
    script's comment lines out."""
    best, name = 0, "?"
    for path in SCRIPTS.glob("*.lua"):
        code = "\n".join(line for line in path.read_text().splitlines()
                         if not line.strip().startswith("--"))
        if body.endswith(code) and len(code) > best:
            best, name = len(code), path.stem
    return name


def phases_of(events, scripts, conns):
    """The round trips of one run's phases, from the turns on its connections (a turn: a write
    of the client's after a reply reached it, see bench/proxy.rs). A phase's round trips are
    its first request's turn and the turns that sent it again after NOSCRIPT. With several
    servers (they go in parallel), what the run waits for: a majority's answers, so the
    round trips of the servers' connections, the majority-th fewest (a server that still owed
    the previous answer is not sent a phase's request: fewer may have it)."""
    turns = {}  # connection -> [[commands, what the server answered], ...]
    for kind, conn, _, words in events:
        if conn not in conns:
            continue
        if kind == "turn":
            turns.setdefault(conn, []).append([named(words, scripts), []])
        elif kind == "more" and conn in turns:
            turns[conn][-1][0].extend(named(words, scripts))
        elif kind == "reply" and conn in turns:
            turns[conn][-1][1].extend(words)
    mains = [c for c in turns if any("acquire" in t[0] for t in turns[c])]
    each = [main_phases(turns[c], set(scripts.values())) for c in mains]
    majority = len(mains) // 2 + 1
    result = {"connections": len(turns), "servers": len(mains)}
    for key in dict.fromkeys(k for e in each for k in e):
        values = [e[key] for e in each if key in e]
        if key == "noscript":
            # Each script that came back NOSCRIPT, and on how many servers.
            result[key] = {s: sum(s in v for v in values) for s in sorted(set(sum(values, [])))}
        elif key.startswith("AUTH"):
            result[key] = all(values)
        else:
            result[key] = sorted(values)[min(majority, len(values)) - 1]
    result["other connections"] = sorted({" ".join(turns[c][0][0]) + f" ({len(turns[c])} turn(s))"
                                          for c in turns if c not in mains})
    return result


def main_phases(mine, names):
    """The phases on one server's connection, from its turns."""
    first = next(i for i, t in enumerate(mine)
                 if any(c in names or c.startswith("EVALSHA:") for c in t[0]))
    result = {"connect": first,
              "AUTH and SELECT with the first request": {"AUTH", "SELECT"} <= set(mine[first][0]),
              "noscript": []}
    for phase, script in (("acquire", "acquire"), ("fence raise", "fence"),
                          ("first extension", "extend"), ("release", "release")):
        at = next((i for i, t in enumerate(mine) if script in t[0]), None)
        if at is None:
            continue
        trips = 1
        while "NOSCRIPT" in mine[at][1] and at + 1 < len(mine) and script in mine[at + 1][0]:
            result["noscript"].append(script)
            trips, at = trips + 1, at + 1
        result[phase] = trips
    result["turns"] = len(mine)
    return result


def named(words, scripts):
    """A turn's commands, a script by its name (EVALSHA: the name its body had when seen
    in full; a script never seen in full keeps its hash)."""
    out = []
    for word in words:
        kind, _, sha = word.partition(":")
        out.append(scripts.get(sha, word) if kind in ("EVAL", "EVALSHA") else word)
    return out
