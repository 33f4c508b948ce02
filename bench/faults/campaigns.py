"""The campaigns: for each, the servers it runs against, the flags of its runs and the faults
it injects (bench/faults/README.md says what each one tests). `deploy` starts the servers."""

import os
from dataclasses import dataclass, field

import faults as f
import servers
from proxy import Proxy
from servers import Cluster, Sentinels, Server


@dataclass
class Campaign:
    name: str
    servers: str  # one, three, sentinel, cluster, proxied-one, proxied-three
    faults: list  # (weight, fault)
    flags: object = lambda loop: []  # the extra flags of loop number `loop`'s runs
    loops: int = 4
    limit: int = 1
    key: bool = False  # --key KEY instead of --name NAME
    py_loops: int = 0  # how many of the loops are redis-py's (the last ones), when it is set up
    acl: bool = False  # the runs log in as the least-privilege user of docs/security.md
    standin: bool = False  # the stand-in's interface is enough for it (the control)
    steps: bool = False  # each run is steps.py: acquire, extend, a bounded stage, release
    several: bool = False  # each run takes two locks at once, its loop's pair (run's SETS)
    gap: float = 0.1  # the most a loop sleeps between two runs, in seconds
    calm: tuple = (0.2, 1.0)  # seconds between two faults (from the end of one), at random
    about: str = ""


SINGLE = [(3, f.pause_servers), (2, f.kill_holder), (2, f.freeze_holder), (2, f.release_force)]
SENTINEL = [(1, f.sentinel_kill_primary), (1, f.sentinel_failover)]
CLUSTER = [(1, f.cluster_kill_owner), (1, f.cluster_freeze_owner)]
WAIT_REPLICAS = ["--wait-replicas", "1"]
REPLACING = ["--replace", "-v", "--log-format", "json"]
# A failover and the resync after it take seconds: faults in a row would leave no time with a
# working primary (every run 69) and run the sentinels into their failover retry delay.
FAILOVER_CALM = (1.0, 3.0)

CAMPAIGNS = {c.name: c for c in [
    Campaign("single", "one", SINGLE, standin=True,
             about="one server: pauses, the holder killed or frozen, release --force"),
    Campaign("three", "three",
             [(2, f.pause_servers), (1, f.pause_two), (2, f.crash_restart), (1, f.kill_holder),
              (1, f.freeze_holder)],
             flags=lambda loop: ["--jitter", "100ms"] if loop == 0 else [],
             about="three servers: pauses of one or two, one killed and restarted empty; one "
                   "loop with --jitter"),
    Campaign("sentinel", "sentinel", SENTINEL, calm=FAILOVER_CALM,
             about="Sentinel: the primary killed, SENTINEL FAILOVER; default flags"),
    # Every replica of the set: with one of two, the replica that confirmed a write may not be
    # the one promoted (docs/safety.md measures it).
    Campaign("sentinel-replicas", "sentinel", SENTINEL, calm=FAILOVER_CALM,
             flags=lambda loop: ["--wait-replicas", "2"],
             about="the same with --wait-replicas 2 (every replica)"),
    Campaign("cluster", "cluster", CLUSTER, calm=FAILOVER_CALM,
             about="Cluster 3+3: the lock's primary killed or frozen; default flags"),
    Campaign("cluster-replicas", "cluster", CLUSTER, calm=FAILOVER_CALM,
             flags=lambda loop: WAIT_REPLICAS, about="the same with --wait-replicas 1"),
    Campaign("partition", "proxied-one", [(1, f.drop), (1, f.blackhole)], standin=True,
             about="the only server behind a proxy that drops or blackholes"),
    Campaign("partition-three", "proxied-three", [(1, f.drop), (1, f.blackhole)],
             about="three servers, each behind a proxy; one (or two) cut at a time"),
    # As the least-privilege user docs/security.md gives (its password on the command line,
    # hidden from ps), with a --label: every path of a semaphore, the operators' breaks too.
    Campaign("limit3", "one", SINGLE, flags=lambda loop: ["--limit", "3", "--label", "limit3"],
             loops=6, limit=3, acl=True,
             about="--limit 3 (six loops) under single-server faults, as the ACL user"),
    # The semaphore under the other deployments' faults too.
    Campaign("limit3-three", "three",
             [(2, f.pause_servers), (1, f.pause_two), (2, f.crash_restart), (1, f.kill_holder),
              (1, f.freeze_holder)],
             flags=lambda loop: ["--limit", "3"], loops=6, limit=3,
             about="--limit 3 over three servers: pauses, one restarted empty"),
    Campaign("limit3-sentinel", "sentinel", SENTINEL, calm=FAILOVER_CALM,
             flags=lambda loop: ["--limit", "3"], loops=6, limit=3,
             about="--limit 3 through Sentinel: failovers, the primary killed"),
    Campaign("limit3-cluster", "cluster", CLUSTER, calm=FAILOVER_CALM,
             flags=lambda loop: ["--limit", "3"], loops=6, limit=3,
             about="--limit 3 on a Cluster 3+3: the lock's primary killed or frozen"),
    Campaign("limit3-partition", "proxied-three", [(1, f.drop), (1, f.blackhole)],
             flags=lambda loop: ["--limit", "3"], loops=6, limit=3,
             about="--limit 3 over three servers behind proxies: cuts"),
    # The replacing runs say which holder they asked (-v, JSON): the checker counts a run
    # stopped by a --replace that had not asked it (a queued waiter started only to be stopped).
    Campaign("replace", "one", SINGLE[:3],
             flags=lambda loop: REPLACING if loop < 2 else [],
             about="two loops of four with --replace, under single-server faults"),
    # Gaps between runs leave the key free at times: redlock's waiters queue and take over
    # within a millisecond, where redis-py polls, so without them redis-py would never hold it.
    # One loop of redlock's replaces the key's holder: a redlock run, or redis-py's (which
    # cannot hear the request, and is waited out).
    Campaign("key", "one", SINGLE, key=True, gap=1.0, py_loops=2,
             flags=lambda loop: REPLACING if loop == 1 else [],
             about="--key, one loop of four with --replace, two redis-py's, under "
                   "single-server faults"),
    # Shared holders and exclusive ones on one lock: no exclusive run beside anyone, the
    # shared ones together (counted), and a shared holder never reads a store that a later
    # exclusive run wrote to.
    Campaign("shared", "one", SINGLE, flags=lambda loop: ["--shared"] if loop < 2 else [],
             about="two loops of four with --shared, under single-server faults"),
    Campaign("shared-three", "three",
             [(2, f.pause_servers), (1, f.pause_two), (2, f.crash_restart), (1, f.kill_holder),
              (1, f.freeze_holder)],
             flags=lambda loop: ["--shared"] if loop < 2 else [],
             about="the same over three servers: pauses of one or two, one restarted empty"),
    # A lock held across steps: nothing stops a stage when its lease ends, so `release --force`
    # (which deletes a lock nobody answers for) is left out: it would let a waiter start beside
    # the stage, as docs/design.md says. A killed pipeline leaves its lock for a TTL.
    Campaign("steps", "one", SINGLE[:3], steps=True,
             about="acquire --jitter, extend, a stage bounded inside the lease, release "
                   "--token; single-server faults but release --force"),
    # Several locks at once: loops ask for overlapping pairs in opposite orders; each lock has
    # its own store and fences, and no two commands may hold one lock at once. The lock the
    # faults aim at (release --force, the fence) is one of each pair's but the third loop's.
    Campaign("several", "three",
             [(2, f.pause_servers), (1, f.pause_two), (1, f.crash_restart), (3, f.kill_holder),
              (3, f.freeze_holder), (1, f.release_force)],
             several=True, standin=True,
             about="--name a --name b: four loops of overlapping pairs in opposite orders "
                   "over three servers, pauses of one or two, one restarted empty"),
    Campaign("timeout", "one", [(3, f.pause_servers), (3, f.kill_holder)],
             flags=lambda loop: ["--timeout", "1s"],
             about="--timeout 1s (three commands in ten hold 2.5 s or more) under kills "
                   "and pauses"),
]}


@dataclass
class Deployment:
    servers: list = field(default_factory=list)  # the data servers (to pause or kill)
    urls: list = field(default_factory=list)  # the --redis URLs of the runs
    sentinels: Sentinels = None
    cluster: Cluster = None
    proxies: list = field(default_factory=list)

    def close(self):
        for proxy in self.proxies:
            proxy.close()


def deploy(kind, root):
    d = Deployment()
    if kind in ("one", "three", "proxied-one", "proxied-three"):
        d.servers = [Server(root) for _ in range(3 if kind.endswith("three") else 1)]
        if kind.startswith("proxied"):
            d.proxies = [Proxy(s.port) for s in d.servers]
            d.urls = [p.url for p in d.proxies]
        else:
            d.urls = [s.url for s in d.servers]
    elif kind == "sentinel":
        d.sentinels = Sentinels(root)
        d.servers = d.sentinels.nodes
        d.urls = [d.sentinels.url]
    elif kind == "cluster":
        d.cluster = Cluster(root)
        d.servers = d.cluster.nodes
        d.urls = [d.cluster.url]
    else:
        raise ValueError(kind)
    return d


ACL_PASSWORD = "faults-acl"


def least_privilege(d):
    """Makes docs/security.md's user on every server, and has the runs log in as it."""
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                       "security.md")
    with open(doc) as f:
        line = next(line for line in f if line.startswith("ACL SETUSER redlock "))
    rule = [f">{ACL_PASSWORD}" if w == ">CHANGE-ME" else w for w in line.split()[3:]]
    for server in d.servers:
        servers.cmd(server.port, "ACL", "SETUSER", "redlock", *rule)
    d.urls = [url.replace("redis://", f"redis://redlock:{ACL_PASSWORD}@", 1) for url in d.urls]


def described(kind, d):
    ports = " ".join(str(s.port) for s in d.servers)
    if kind == "sentinel":
        sentinels = " ".join(str(s.port) for s in d.sentinels.sentinels)
        return f"primary and replicas on {ports}, sentinels on {sentinels}"
    if d.proxies:
        return f"servers on {ports} behind proxies on " + " ".join(
            str(p.port) for p in d.proxies)
    return f"servers on {ports}"


PYTHON_REDIS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                            "interop", "venv", "bin", "python")
