"""The faults, each a function of the campaign's context (`ctx`: its seeded RNG, its servers,
its contenders, the wrapper's flags). Each one draws all its random choices first (so that a
seed replays the same choices, whatever the timing), does its damage, always undoes it (resume,
restart, heal), and returns what it did for the count, or None when there was nothing to do.

Holder faults aim at a command that will still hold the lock for at least a TTL after the fault
starts, when one comes within 4 s: a fault at a command about to end proves little."""

import signal
import time

from procs import Child
from servers import SERVICE, ask


def _holder(ctx, want_left, patience=4.0):
    """The run holding the lock with the most of its command left (at least `want_left` s if
    one comes within `patience`), or None."""
    deadline = time.monotonic() + patience
    best = None
    while not ctx.stop.is_set():
        holders = [r for r in ctx.contenders.holders() if r.kind == ctx.holder_kind]
        if holders:
            best = max(holders, key=lambda r: r.remaining())
            if best.remaining() >= want_left or time.monotonic() > deadline:
                return best
        elif time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    return best


def _sleep(ctx, seconds):
    """Sleeps: a fault under way when the campaign ends runs its course."""
    time.sleep(seconds)


def pause_servers(ctx, most=1):
    """SIGSTOP one server (or up to `most` of them) for 0.5 to 3 s, then SIGCONT; aimed at a
    holder whose command outlasts the pause, when one comes within 2 s."""
    count = 1 if most == 1 or ctx.rng.random() < 0.7 else most
    servers = ctx.rng.sample([s for s in ctx.deploy.servers], count)
    seconds = ctx.rng.uniform(0.5, 3.0)
    _holder(ctx, seconds + 0.2, patience=2.0)
    ctx.struck()
    for server in servers:
        server.pause()
    _sleep(ctx, seconds)
    for server in servers:
        server.resume()
    return "pause server" if count == 1 else f"pause {count} servers"


def pause_two(ctx):
    return pause_servers(ctx, most=2)


def kill_holder(ctx):
    """SIGKILL the holder's wrapper (its guard must kill the command at once)."""
    run = _holder(ctx, ctx.holder_left)
    ctx.struck()
    if run is None or not run.child.signal(signal.SIGKILL):
        return None
    return "kill holder"


def freeze_holder(ctx):
    """SIGSTOP the holder's wrapper past its TTL, then SIGCONT (its kernel dead-man switch
    must have killed it, and its guard the command, before the lease ended)."""
    seconds = ctx.ttl_s + ctx.rng.uniform(0.3, 1.2)
    run = _holder(ctx, ctx.holder_left)
    ctx.struck()
    if run is None or not run.child.signal(signal.SIGSTOP):
        return None
    run.frozen += seconds
    _sleep(ctx, seconds)
    run.child.signal(signal.SIGCONT)
    return "freeze holder"


def release_force(ctx):
    """An operator's `redlock release --force` (with `--key`, only while a redlock run holds
    the key, by its token: an application's hold cannot be asked to stop, and breaking it is
    the operator's doing, not a defect)."""
    if not ctx.wrapper_is_redlock:
        return None
    argv = [ctx.binary, "release", "--force", *ctx.lock_flags, *ctx.redis_flags]
    if ctx.campaign.key:
        run = _holder(ctx, 0.5)
        token = run and run.started()[1].get("token")
        if not token:
            return None
        argv += ["--token", token]
    ctx.struck()
    ctx.operators.append(Child(argv, stdout=ctx.devnull, stderr=ctx.devnull,
                               env=ctx.contenders.env))
    return "release --force"


def crash_restart(ctx):
    """SIGKILL a server and start it again empty on its port after at least a TTL (the
    delayed restart docs/safety.md asks for). Only a server whose two peers both hold each
    lock's fencing counter at its highest is chosen, so that a majority always keeps the data
    the fences need (docs/safety.md's assumption); when none qualifies, no fault."""
    order = ctx.rng.sample(range(len(ctx.deploy.servers)), len(ctx.deploy.servers))
    down = ctx.ttl_s + ctx.rng.uniform(0.3, 1.2)
    counters = []
    for key in ctx.fence_keys:
        fences = [ask(s.port, "GET", key) for s in ctx.deploy.servers]
        counters.append([int(f) if f is not None else -1 for f in fences])  # -1: none (yet)
    for i in order:
        if all(v == max(values) for values in counters
               for j, v in enumerate(values) if j != i):
            server = ctx.deploy.servers[i]
            if server.paused or not server.alive():
                continue
            ctx.struck()
            server.kill()
            _sleep(ctx, down)
            server.restart()
            return "kill+restart server"
    return None


def sentinel_kill_primary(ctx):
    """SIGKILL the primary while a replica is in sync; once the sentinels have promoted
    another, start it again as that one's replica (it comes back empty)."""
    sentinels = ctx.deploy.sentinels
    primary = sentinels.primary()
    if primary is None or not sentinels.replica_in_sync(primary):
        return None
    ctx.struck()
    primary.kill()
    deadline = time.monotonic() + 30
    new = primary
    while new is primary and time.monotonic() < deadline:
        time.sleep(0.1)
        new = sentinels.primary() or primary
    if new is primary:
        primary.restart()  # no failover within 30 s: back as it was (empty), and say so
        ctx.notes.append("the sentinels did not fail over within 30 s of the primary's death: "
                         "it was restarted empty as the primary; what follows is outside "
                         "docs/safety.md's assumptions")
    else:
        primary.restart(["--replicaof", "127.0.0.1", str(new.port)])
    return "kill primary"


def sentinel_failover(ctx):
    """SENTINEL FAILOVER, then wait (up to 15 s) until the sentinels name the new primary."""
    sentinels = ctx.deploy.sentinels
    primary = sentinels.primary()
    if primary is None or not sentinels.replica_in_sync(primary):
        return None
    ctx.struck()
    if ask(sentinels.sentinels[0].port, "SENTINEL", "FAILOVER", SERVICE) != "OK":
        return None  # one is under way
    deadline = time.monotonic() + 15
    while sentinels.primary() is primary and time.monotonic() < deadline:
        time.sleep(0.1)
    return "failover"


def cluster_kill_owner(ctx):
    """SIGKILL the primary that owns the lock's slot while its replica is in sync; once the
    replica has taken over, start it again (from its nodes.conf it rejoins as a replica)."""
    cluster = ctx.deploy.cluster
    owner = cluster.owner(ctx.slot)
    if owner is None or not cluster.replica_in_sync(owner):
        return None
    ctx.struck()
    owner.kill()
    deadline = time.monotonic() + 30
    while cluster.owner(ctx.slot) in (owner, None) and time.monotonic() < deadline:
        time.sleep(0.1)
    if cluster.owner(ctx.slot) in (owner, None):
        ctx.notes.append("the cluster did not fail over within 30 s of the primary's death: "
                         "it was restarted empty as the primary; what follows is outside "
                         "docs/safety.md's assumptions")
    owner.restart()
    return "kill primary"


def cluster_freeze_owner(ctx):
    """SIGSTOP the lock's primary for 0.5 to 3 s (past the node timeout, its replica is
    promoted), then SIGCONT."""
    seconds = ctx.rng.uniform(0.5, 3.0)
    owner = ctx.deploy.cluster.owner(ctx.slot)
    if owner is None:
        return None
    ctx.struck()
    owner.pause()
    _sleep(ctx, seconds)
    owner.resume()
    return "freeze primary"


def _cut(ctx, how):
    proxies = ctx.deploy.proxies
    count = 1 if len(proxies) == 1 or ctx.rng.random() < 0.75 else 2
    chosen = ctx.rng.sample(proxies, count)
    seconds = ctx.rng.uniform(0.5, 3.0)
    _holder(ctx, seconds + 0.2, patience=2.0)
    ctx.struck()
    for proxy in chosen:
        getattr(proxy, how)()
    _sleep(ctx, seconds)
    for proxy in chosen:
        proxy.heal()
    return how if count == 1 else f"{how} x{count}"


def drop(ctx):
    """Every connection to the server reset, and new ones refused, for 0.5 to 3 s."""
    return _cut(ctx, "drop")


def blackhole(ctx):
    """Nothing delivered either way for 0.5 to 3 s (then all of it, late)."""
    return _cut(ctx, "blackhole")
