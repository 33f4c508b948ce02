#!/usr/bin/env python3
"""The checker: what a campaign's logs say about mutual exclusion and the fenced store.

    check.py LOGDIR             re-checks a kept campaign's logs (bench/faults/run --keep DIR)
    check.py LOGDIR --timeline  every run and fault in time order, for reading an overlap

- **Overlaps**, from the commands' own life signs: a run's interval is [start, end], or [start,
  last line] for a command killed without an end mark (its last life sign is at most 50 ms
  before it died, so an overlap is never invented, only possibly missed when shorter than
  that). Two runs of one place (REDLOCK_SLOT) whose intervals meet overlap, unless both are
  shared holders (`--shared`: those are counted as readers together); with `--limit N`, more
  than N runs at once is one more. Each is reported with its runs, fences and length.
- **Stale reads**: a shared holder's read of the store that finds a fence larger than its own
  accepted already (a writer came while it held the lock).
- **Lost updates**, from the store's journal (kept in the order the store took the writes): an
  accepted write whose read value was no longer the counter when it wrote, so that it
  overwrote another holder's increment.
- **Stale writes accepted**: an accepted write whose fence is lower than one accepted before,
  or equal to one another run wrote with (a fence handed out twice).
- **Fence regressions** (reported, not a failure of its own): a run whose fence is not larger
  than that of a run of its place that started before it (a shared holder's: smaller than
  that of an exclusive run that started before it; shared holders share the current fence). A fencing resource then rejects a
  legitimate holder's writes; it shows the servers lost the counter.
- **Waiters replaced** (`--replace`): a run that exited 77 whose fence no replacing run asked
  to let go (the `replacing` event of `-v --log-format json` names the holder asked, with its
  fence). A replacing run asks the holder it found; a waiter that took the lock after it had
  queued before the replacing run, and must not be started only to be stopped.
- Exit statuses and hung runs come from the harness's runs.json.
"""

import glob
import json
import os
import sys
from collections import Counter


def read_runs(logdir):
    """Each command's interval and fence, from LOGDIR/runs/RUNID.log."""
    runs = {}
    for path in glob.glob(os.path.join(logdir, "runs", "*.log")):
        run_id = os.path.basename(path)[:-4]
        start = last = None
        fields, ended, newest = {}, False, 0
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) < 2 or not words[1].isdigit():
                    continue  # a line cut short by SIGKILL
                ns = int(words[1])
                if words[0] == "start" and start is None:
                    start = ns
                    fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
                ended = ended or words[0] == "end"
                if words[0] == "read":
                    read = dict(w.split("=", 1) for w in words[2:] if "=" in w)
                    newest = max(newest, int(read.get("max", 0)))
                last = ns if last is None else max(last, ns)
        if start is None:
            continue
        fence = fields.get("fence", "-")
        runs[run_id] = {"id": run_id, "start": start, "last": last, "ended": ended,
                        "fence": None if fence == "-" else int(fence),
                        # A place of a semaphore, or a lock's name (several at once).
                        "slot": fields.get("slot", "0"),
                        "shared": fields.get("shared") == "1", "newest_read": newest}
    return runs


def readers_together(runs):
    """How many pairs of shared holders held the lock at once (as they may)."""
    shared = sorted((r for r in runs.values() if r["shared"]), key=lambda r: r["start"])
    return sum(1 for i, a in enumerate(shared) for b in shared[i + 1:]
               if b["start"] < a["last"])


def stale_reads(runs):
    """Shared holders that read a fence larger than their own in the store."""
    return [{"run": r["id"], "fence": r["fence"], "read": r["newest_read"]}
            for r in runs.values()
            if r["shared"] and r["fence"] is not None and r["newest_read"] > r["fence"]]


def overlaps(runs, limit, t0):
    """Pairs of one place whose intervals meet (but two shared holders), then moments with
    more than `limit` runs."""
    found = []
    by_slot = {}
    for run in runs.values():
        by_slot.setdefault(run["slot"], []).append(run)
    for slot, group in sorted(by_slot.items()):
        group.sort(key=lambda r: r["start"])
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if b["start"] >= a["last"]:
                    break
                if a["shared"] and b["shared"]:
                    continue
                found.append({
                    "slot": slot, "runs": [a["id"], b["id"]], "fences": [a["fence"], b["fence"]],
                    "at_s": round((b["start"] - t0) / 1e9, 3),
                    "ms": round((min(a["last"], b["last"]) - b["start"]) / 1e6, 1)})
    if limit > 1:
        events = sorted([(r["start"], 1, r["id"]) for r in runs.values()]
                        + [(r["last"], -1, r["id"]) for r in runs.values()])
        active, crowd = set(), None
        for ns, step, run_id in events:
            if step == 1:
                active.add(run_id)
            else:
                active.discard(run_id)
            if len(active) > limit and crowd is None:
                crowd = {"slot": None, "runs": sorted(active), "fences": None,
                         "at_s": round((ns - t0) / 1e9, 3), "start": ns}
            elif len(active) <= limit and crowd is not None:
                crowd["ms"] = round((ns - crowd.pop("start")) / 1e6, 1)
                found.append(crowd)
                crowd = None
    return found


def store_writes(logdir):
    """Lost updates and stale writes accepted, from every store's journal."""
    lost, stale, accepted, rejected = [], [], 0, 0
    for path in sorted(glob.glob(os.path.join(logdir, "store-*.journal"))):
        best = best_run = None
        with open(path) as f:
            for line in f:
                words = line.split()
                verdict = words[1]
                w = dict(x.split("=", 1) for x in words[2:])
                if verdict != "accepted":
                    rejected += 1
                    continue
                accepted += 1
                if w["read"] != w["current"]:
                    lost.append({"store": os.path.basename(path), "run": w["run"],
                                 "read": int(w["read"]), "current": int(w["current"])})
                if w["fence"] == "-":
                    continue
                fence = int(w["fence"])
                if best is not None and (fence < best or (fence == best and w["run"] != best_run)):
                    stale.append({"store": os.path.basename(path), "run": w["run"],
                                  "fence": fence, "newest": best, "newest_run": best_run})
                if best is None or fence > best:
                    best, best_run = fence, w["run"]
    return lost, stale, accepted, rejected


def fence_regressions(runs):
    found = []
    by_slot = {}
    for run in sorted(runs.values(), key=lambda r: r["start"]):
        if run["fence"] is None:
            continue
        before = by_slot.get(run["slot"])
        if before is not None and (run["fence"] < before["fence"] or (
                run["fence"] == before["fence"] and not run["shared"])):
            found.append({"run": run["id"], "fence": run["fence"],
                          "earlier": before["id"], "earlier_fence": before["fence"]})
        if before is None or run["fence"] > before["fence"]:
            by_slot[run["slot"]] = run
    return found


def asked_fences(logdir):
    """The fences of the holders that replacing runs asked to let go, from their JSON lines."""
    asked = set()
    for path in glob.glob(os.path.join(logdir, "runs", "*.err")):
        with open(path, errors="replace") as f:
            for line in f:
                if '"event":"replacing"' not in line:
                    continue
                try:
                    fence = json.loads(line).get("holder", {}).get("fence")
                except ValueError:
                    continue  # a line cut short by SIGKILL
                if fence is not None:
                    asked.add(int(fence))
    return asked


def waiters_replaced(logdir, runs, harness):
    """Runs stopped by a --replace (77) that no replacing run had asked: see the docstring."""
    asked = asked_fences(logdir)
    found = []
    for r in harness["runs"]:
        run = runs.get(r["id"])
        if r["status"] == 77 and run is not None and run["fence"] not in asked:
            found.append({"run": r["id"], "fence": run["fence"]})
    return found


def check(logdir):
    with open(os.path.join(logdir, "runs.json")) as f:
        harness = json.load(f)
    runs = read_runs(logdir)
    lost, stale, accepted, rejected = store_writes(logdir)
    found = overlaps(runs, harness["limit"], harness["t0"])
    exits = Counter(str(r["status"]) for r in harness["runs"])
    return {
        "runs": len(harness["runs"]),
        "commands": len(runs),
        "overlaps": len(found),
        "overlap_list": found,
        "lost_updates": len(lost),
        "lost_list": lost,
        "stale_writes_accepted": len(stale),
        "stale_list": stale,
        "writes_accepted": accepted,
        "writes_rejected": rejected,
        "fence_regressions": fence_regressions(runs),
        "stale_reads": stale_reads(runs),
        "readers_together": readers_together(runs),
        "waiters_replaced": waiters_replaced(logdir, runs, harness),
        "exits": dict(sorted(exits.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 999)),
        "hung": sum(1 for r in harness["runs"] if r["hung"]),
    }


def timeline(logdir):
    """Lines `+SECONDS what`, sorted: each run's launch, command start and end, exit; faults."""
    with open(os.path.join(logdir, "runs.json")) as f:
        harness = json.load(f)
    t0 = harness["t0"] / 1e9
    runs = read_runs(logdir)
    events = [(start, f"fault {what} (until +{end:.3f})") for start, end, what in
              harness.get("faults", [])]
    for r in harness["runs"]:
        events.append((r["launched_s"], f"{r['id']} launched (hold {r['hold_s']} s)"))
        if r["exited_s"] is not None:
            events.append((r["exited_s"], f"{r['id']} exited {r['status']}"
                           + (" (hung)" if r["hung"] else "")))
        run = runs.get(r["id"])
        if run:
            events.append((run["start"] / 1e9 - t0, f"{r['id']} start fence {run['fence']} "
                           f"slot {run['slot']}"))
            events.append((run["last"] / 1e9 - t0, f"{r['id']} "
                           + ("end" if run["ended"] else "last sign of life (no end mark)")))
    return "\n".join(f"+{t:8.3f} {what}" for t, what in sorted(events))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[2] == "--timeline":
        print(timeline(sys.argv[1]))
    elif len(sys.argv) == 2:
        json.dump(check(sys.argv[1]), sys.stdout, indent=1)
        print()
    else:
        sys.exit(__doc__)
