"""B11 (issue 15): round trips behind a proxy that adds latency (bench/proxy.rs, built here
with rustc). `run -- true` in hyperfine rounds behind 1 ms each way, in front of 1, 3 and 5
servers and 5 with one far away."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def b11_round_trips(servers, redlock, hyperfine, runs, rounds, one_way_ms=1.0, slow_ms=50.0):
    """`run -- true` behind the proxy (`one_way_ms` each way, so a round trip of twice that) in
    front of 1, 3 and 5 servers, and 5 with one of them `slow_ms` each way instead; and without
    the proxy, for the run's own time. The issue's target: at most 3 round trips + 1.5 ms,
    whatever the number of servers, as long as a majority is near."""
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
    finally:
        proxy.stop()
    rtt = 2 * one_way_ms
    result = dict(zip(names, (round(m, 2) for m in medians)))
    own = medians[0]
    result["round trips (1, 3, 5, 5 with one slow)"] = [round((m - own) / rtt, 2)
                                                        for m in medians[1:]]
    result["target_ms"] = round(3 * rtt + 1.5, 2)
    return result
