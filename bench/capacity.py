"""B12, capacity (issue 26): how many runs a second one Redis server serves, and a 3-primary
Redis Cluster under the same load. P shell loops of M `redlock run -- true` each, all at once,
every run on a name of its own (the lock is always free), against one server, then against the
cluster, where the names spread over the slots.

On two cores the clients saturate first (each run is a new redlock process), so the runs a
second they achieve say little about Redis. What a run costs Redis does: its main thread's CPU
time per run (INFO cpu), which counts everything it did for the run (accepting the connection,
reading the requests, the scripts, the replies, the close). A core's worth of that is what one
server serves at most: 1e6 / (µs per run) runs a second. A cluster serves as much as its busiest
primary allows, so its capacity is that figure from the busiest node, and its ratio to one
server's is how evenly the load spreads. Beside the CPU, commandstats' usec of what the clients
sent (wall time, so it grows when the server is preempted on a busy machine)."""

import statistics
import subprocess
import time

from scripts import Client, nested, usage


def load(redlock, loops):
    """Runs each loop of `loops` (a list of (url, name) for each run) in a shell loop of its
    own, all at once: (seconds, runs that failed)."""
    scripts = ["failed=0\n" + "".join(f"'{redlock}' run --redis {url} -n {name} -- true "
                                      f"|| failed=$((failed + 1))\n" for url, name in loop)
               + 'exit "$failed"\n' for loop in loops]
    started = time.monotonic()
    shells = [subprocess.Popen(["sh", "-c", script]) for script in scripts]
    failed = sum(shell.wait() for shell in shells)
    return time.monotonic() - started, failed


def owners(nodes):
    """A function that names the node owning a name's slot (CLUSTER KEYSLOT, CLUSTER NODES)."""
    by_port = {node.port: node for node in nodes}
    ask = Client(nodes[0].port)
    ranges = []
    for line in nodes[0].cli("CLUSTER", "NODES").splitlines():
        fields = line.split()
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        for slots in fields[8:]:
            first, _, last = slots.partition("-")
            ranges.append((int(first), int(last or first), by_port[port]))

    def owner(name):
        slot = ask.call("CLUSTER", "KEYSLOT", f"redlock:{{{name}}}")
        return next(node for first, last, node in ranges if first <= slot <= last)
    return owner


def measure(redlock, nodes, urls, p, m, tag):
    """P loops of M runs, on names `tag`-LOOP-RUN, each sent to `urls(name, loop, run)`: runs
    a second, and per run the main-thread CPU µs and the commandstats usec of each node."""
    names = [[f"{tag}-{i}-{j}" for j in range(m)] for i in range(p)]
    loops = [[(urls(name, i, j), name) for j, name in enumerate(loop)]
             for i, loop in enumerate(names)]
    # The usec of what the clients sent: a script's counts the commands it ran, whose own
    # lines are left out; so is INFO's (what this asks).
    inner = nested() | {"info"}

    def sent(stats):
        return sum(usec for command, (_, usec) in stats.items() if command not in inner)
    stats = [Client(node.port) for node in nodes]
    before = [usage(s) for s in stats]
    seconds, failed = load(redlock, loops)
    after = [usage(s) for s in stats]
    for s in stats:
        s.close()
    runs = p * m
    if failed:
        raise RuntimeError(f"B12: {failed} of {runs} runs failed ({tag})")
    cpu = [(a[0] - b[0]) / runs for a, b in zip(after, before)]
    usec = [(sent(a[1]) - sent(b[1])) / runs for a, b in zip(after, before)]
    return {"runs_per_second": runs / seconds, "cpu_us": cpu, "usec": usec}


def summary(rounds):
    """The medians over the rounds: runs a second; CPU µs and usec per run on the busiest node
    (the one with the most CPU), and CPU µs on all nodes together."""
    def median(f):
        return round(statistics.median(f(r) for r in rounds), 1)
    busiest = [max(range(len(r["cpu_us"])), key=lambda i: r["cpu_us"][i]) for r in rounds]
    figures = {
        "runs_per_second": median(lambda r: r["runs_per_second"]),
        "cpu_us_per_run": median(lambda r: max(r["cpu_us"])),
        "usec_per_run": round(statistics.median(
            r["usec"][b] for r, b in zip(rounds, busiest)), 1),
        "runs_per_second_one_core_serves": round(
            statistics.median(1e6 / max(r["cpu_us"]) for r in rounds)),
    }
    if len(rounds[0]["cpu_us"]) > 1:
        figures["cpu_us_per_run_all_nodes"] = median(lambda r: sum(r["cpu_us"]))
        figures["share_of_runs_cpu_per_node"] = [
            round(statistics.median(r["cpu_us"][i] / sum(r["cpu_us"]) for r in rounds), 2)
            for i in range(len(rounds[0]["cpu_us"]))]
    return figures


def b12_capacity(make_server, make_cluster, redlock, p, m, rounds):
    """One server; the cluster, each run sent to the node that owns its name, then to any node
    in turn (two in three are redirected once: what a fleet of clients given one node each
    does); and three standalone servers with the names split as the cluster's slots split
    them, `rounds` times, the four in turn. Per round, each one's capacity over one server's:
    that server's CPU per run over the busiest node's.

    The three standalone servers are the control: a server's CPU per run falls as it gets
    busier (more requests handled per wake-up), and the clients cannot make three servers as
    busy as one; they show what the spread alone gives at the cluster's load per node."""
    singles = [make_server() for _ in range(3)]
    nodes = make_cluster()
    try:
        owner = owners(nodes)
        ways = {
            "one server": ([singles[0]], lambda name, i, j: singles[0].url),
            "cluster, each run through the node that owns its name":
                (nodes, lambda name, i, j: owner(name).url),
            "cluster, each run through any node (2 in 3 redirected)":
                (nodes, lambda name, i, j: nodes[(i + j) % len(nodes)].url),
            "three standalone servers, the names split as the cluster's slots":
                (singles, lambda name, i, j: singles[nodes.index(owner(name))].url),
        }
        figures = {way: [] for way in ways}
        for r in range(rounds):
            for k, (way, (servers, urls)) in enumerate(ways.items()):
                figures[way].append(measure(redlock, servers, urls, p, m, f"cap{r}{k}"))
    finally:
        for server in [*singles, *nodes]:
            server.stop()
    results = {"loops": p, "runs_per_loop": m, "rounds": rounds}
    for way, measured in figures.items():
        results[way] = summary(measured)
        if way != "one server":
            ratios = sorted(s["cpu_us"][0] / max(c["cpu_us"])
                            for s, c in zip(figures["one server"], measured))
            results[way]["vs_one_server"] = [round(statistics.median(ratios), 2),
                                             round(ratios[0], 2), round(ratios[-1], 2)]
    return results
