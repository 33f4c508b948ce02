"""The servers of a campaign, all ours, on free loopback ports: one redis-server, three
independent ones, a Sentinel set (a primary, two replicas, three sentinels) or a Cluster (three
primaries, three replicas); and a tiny RESP client to set them up and watch them.

A server is ours when INFO gives the PID we started (another test may take a probed port
first: we try another then), as tests/support/mod.rs checks."""

import os
import signal
import socket
import subprocess
import tempfile
import time

from procs import Child

SERVICE = "mymaster"  # the name the sentinels know the primary by
PATIENCE = 20.0  # seconds, for what normally takes milliseconds


def server_program():
    return os.environ.get("REDLOCK_TEST_REDIS_SERVER", "redis-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReplyError(Exception):
    """An error reply (-ERR ...)."""


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return ReplyError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise ConnectionError(f"not RESP: {line!r}")


def cmd(port, *args, timeout=2.0):
    """One request on a new connection: the reply (an error reply is raised)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_encode(args))
        reply = _reply(s.makefile("rb"))
    if isinstance(reply, ReplyError):
        raise reply
    return reply


def ask(port, *args, timeout=1.0):
    """`cmd`, or None when the server cannot answer (down, paused, an error)."""
    try:
        return cmd(port, *args, timeout=timeout)
    except (OSError, ReplyError, ValueError):
        return None


def info(port, section, timeout=1.0):
    """INFO section as a dict (empty when the server cannot answer)."""
    text = ask(port, "INFO", section, timeout=timeout) or ""
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def wait_until(what, check, patience=PATIENCE):
    deadline = time.monotonic() + patience
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting until {what}")
        time.sleep(0.05)


class Server:
    """A redis-server of ours (or a sentinel: `sentinel_conf`), restartable on its port."""

    def __init__(self, root, extra=lambda directory: [], sentinel_conf=None):
        self.dir = tempfile.mkdtemp(dir=root, prefix="server-")
        self.sentinel_conf = sentinel_conf
        self.paused = False
        for _ in range(10):
            self.port = free_port()
            self.extra = extra(self.dir)  # fixed from here: a restart reuses the bus port
            if self._spawn([]):
                return
        raise RuntimeError(f"could not start {server_program()}; see {self.dir}")

    def _spawn(self, more):
        program = server_program()
        if self.sentinel_conf is not None:
            conf = os.path.join(self.dir, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(self.sentinel_conf(self.port, self.dir))
            argv = [program, conf, "--sentinel"]
        else:
            argv = [program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.dir, "--logfile", "redis.log",
                    # A replica (re)syncs at once, not after the default 5 s wait for others.
                    "--repl-diskless-sync-delay", "0", *self.extra, *more]
        stderr = open(os.path.join(self.dir, "stderr"), "ab")
        # A session of its own: Ctrl-C in the terminal reaches the harness, which stops it.
        self.child = Child(argv, stdout=subprocess.DEVNULL, stderr=stderr,
                           start_new_session=True)
        stderr.close()
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                return False  # could not bind: try another port
            pid = info(self.port, "server", timeout=0.5).get("process_id")
            if pid is not None:
                if int(pid) == self.child.pid:
                    self.paused = False
                    return True
                self.child.kill()
                return False  # someone else's server on this port
            time.sleep(0.01)
        self.child.kill()
        return False

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def pause(self):
        self.paused = self.child.signal(signal.SIGSTOP)

    def resume(self):
        self.child.signal(signal.SIGCONT)
        self.paused = False

    def kill(self):
        self.child.kill()

    def alive(self):
        return self.child.poll() is None

    def restart(self, more=()):
        """Starts it again on the same port, empty (no persistence): whether it came back."""
        for _ in range(20):
            if self._spawn(list(more)):
                return True
            time.sleep(0.2)
        return False


class Sentinels:
    """A primary with two replicas, and three sentinels watching them as SERVICE."""

    def __init__(self, root):
        self.nodes = [Server(root)]
        primary = self.nodes[0].port
        self.nodes += [Server(root, lambda d: ["--replicaof", "127.0.0.1", str(primary)])
                       for _ in range(2)]
        for replica in self.nodes[1:]:
            wait_until("the replica is in sync",
                       lambda: info(replica.port, "replication").get("master_link_status") == "up")

        def conf(port, directory):
            return (f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile sentinel.log\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} 2000\n"
                    # tests/support/sentinel.rs has 20000: a sentinel then waits 40 s before it
                    # tries a failover of an address again, longer than a campaign's runs.
                    f"sentinel failover-timeout {SERVICE} 5000\n")

        self.sentinels = [Server(root, sentinel_conf=conf) for _ in range(3)]
        for sentinel in self.sentinels:
            def knows_all(port=sentinel.port):
                line = info(port, "sentinel").get("master0", "")
                return "slaves=2" in line and "sentinels=3" in line
            wait_until("each sentinel knows the others and both replicas", knows_all)

    @property
    def url(self):
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def primary(self):
        """The node the sentinels name as the primary now (None if they cannot say)."""
        for sentinel in self.sentinels:
            address = ask(sentinel.port, "SENTINEL", "get-master-addr-by-name", SERVICE)
            if address:
                return next((n for n in self.nodes if n.port == int(address[1])), None)
        return None

    def replica_in_sync(self, primary):
        return any(info(n.port, "replication").get("master_link_status") == "up"
                   and info(n.port, "replication").get("master_port") == str(primary.port)
                   for n in self.nodes if n is not primary and n.alive() and not n.paused)


SLOTS = 16384


class Cluster:
    """Primaries sharing the slots evenly and a replica of each, joined with CLUSTER commands
    (as tests/support/cluster.rs does), with a short node timeout so failovers are quick."""

    def __init__(self, root, primaries=3, node_timeout=1000):
        def extra(directory):
            return ["--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                    "--cluster-node-timeout", str(node_timeout),
                    "--cluster-config-file", os.path.join(directory, "nodes.conf")]

        self.nodes = [Server(root, extra) for _ in range(2 * primaries)]
        for i, node in enumerate(self.nodes[:primaries]):
            cmd(node.port, "CLUSTER", "ADDSLOTS",
                *range(i * SLOTS // primaries, (i + 1) * SLOTS // primaries), timeout=10)
        first = self.nodes[0].port
        for node in self.nodes[1:]:
            bus = cmd(node.port, "CONFIG", "GET", "cluster-port")[1]
            cmd(first, "CLUSTER", "MEET", "127.0.0.1", node.port, bus)
        for node in self.nodes:
            wait_until("every node knows every other", lambda: len(
                (ask(node.port, "CLUSTER", "NODES") or "").splitlines()) == len(self.nodes))
        for i, replica in enumerate(self.nodes[primaries:]):
            cmd(replica.port, "CLUSTER", "REPLICATE",
                cmd(self.nodes[i].port, "CLUSTER", "MYID"))
        for node in self.nodes:
            wait_until("the cluster is ready", lambda: "cluster_state:ok" in (
                ask(node.port, "CLUSTER", "INFO") or ""))
        for replica in self.nodes[primaries:]:
            wait_until("the replica is in sync", lambda: info(
                replica.port, "replication").get("master_link_status") == "up")

    @property
    def url(self):
        """One URL naming every node, tried in turn: a killed seed node does not matter."""
        return "redis://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def keyslot(self, key):
        for node in self.nodes:
            slot = ask(node.port, "CLUSTER", "KEYSLOT", key)
            if slot is not None:
                return slot
        raise RuntimeError("no node answers")

    def owner(self, slot):
        """The node that owns `slot` now, as the live nodes say (None if none can say)."""
        for node in self.nodes:
            if not node.alive() or node.paused:
                continue
            for shard in ask(node.port, "CLUSTER", "SLOTS") or []:
                if shard[0] <= slot <= shard[1]:
                    port = shard[2][1]
                    return next((n for n in self.nodes if n.port == port), None)
        return None

    def replica_in_sync(self, primary):
        return any(info(n.port, "replication").get("master_link_status") == "up"
                   and info(n.port, "replication").get("master_port") == str(primary.port)
                   for n in self.nodes if n is not primary and n.alive() and not n.paused)
