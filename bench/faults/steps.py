"""One run of the `steps` campaign: a lock held across steps, as a CI pipeline's stages hold
it. `redlock acquire --export` (with --jitter), `redlock extend` as a stage begins, the stage
(critical.py) under `timeout -s KILL`, then `redlock release --token`. Nothing watches this
lease (docs/design.md, "A lock held across steps"): the stage's own bound keeps it inside the
renewed lease, as a careful pipeline's must.

    steps.py BINARY TTL WAIT JITTER BOUND LOCK-AND-SERVER-FLAGS... -- CRITICAL-ARGV...

Exits with the acquire's status when it did not take the lock, the extension's when it did not
renew it (76: no longer ours; 69), else the stage's (137 when its bound killed it), or the
release's when that failed."""

import os
import subprocess
import sys


def main():
    binary, ttl, wait, jitter, bound = sys.argv[1:6]
    separator = sys.argv.index("--")
    lock, critical = sys.argv[6:separator], sys.argv[separator + 1:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDLOCK_")}
    took = subprocess.run([binary, "acquire", *lock, "--ttl", ttl, "--wait", wait,
                           "--jitter", jitter, "--export"], env=env, stdout=subprocess.PIPE)
    if took.returncode != 0:
        sys.exit(took.returncode)
    for line in took.stdout.decode().splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = value.strip("'")  # a name without quotes, a hex token, a number
    token = env["REDLOCK_TOKEN"]
    give_back = [binary, "release", *lock, "--token", token]
    # A stage begins: renew the lease. One that cannot be renewed covers no more stages.
    renewed = subprocess.run([binary, "extend", *lock, "--token", token, "--ttl", ttl], env=env)
    if renewed.returncode != 0:
        subprocess.run(give_back, env=env, stderr=subprocess.DEVNULL)
        sys.exit(renewed.returncode)
    stage = subprocess.run(["timeout", "-s", "KILL", bound, *critical], env=env)
    released = subprocess.run(give_back, env=env)
    sys.exit(stage.returncode if released.returncode == 0 else released.returncode)


if __name__ == "__main__":
    main()
