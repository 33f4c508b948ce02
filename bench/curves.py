"""The curves of issue 15, drawn from bench/run's results as SVG files next to BENCHMARKS.md:
waiters.svg (B8: commands per run and the hand-over gap against N, redlock and flock) and
round-trips.svg (B11: what a run costs behind a 2 ms round trip, by servers). matplotlib is
used when it is installed (`pip install matplotlib`); without it nothing is drawn, and bench/run
says so."""

import os


def draw(results, out):
    """Writes the SVG files into `out`, of the scenarios in `results`; returns their paths, or
    None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    # Reproducible files: no date or random ids in the SVG.
    plt.rcParams["svg.hashsalt"] = "redlock"
    plt.rcParams["svg.fonttype"] = "none"
    paths = []
    if "B8 waiters" in results:
        paths.append(waiters(plt, results["B8 waiters"], out))
    if "B11 round trips (median ms)" in results:
        paths.append(round_trips(plt, results["B11 round trips (median ms)"], out))
    return paths


def waiters(plt, b8, out):
    """waiters.svg: B8's commands per run and hand-over gap against N."""
    ns = [int(n) for n in b8]
    fig, (commands, gaps) = plt.subplots(1, 2, figsize=(10, 4))
    commands.plot(ns, [b8[str(n)]["commands_per_run"] for n in ns], "o-", label="commands")
    commands.plot(ns, [b8[str(n)]["scripts_per_run"] for n in ns], "s-", label="scripts")
    commands.set(xscale="log", xlabel="waiters started together (N)", ylabel="per run",
                 title="What Redis runs per run", ylim=(0, None))
    commands.set_xticks(ns, [str(n) for n in ns])
    commands.legend()
    gaps.plot(ns, [b8[str(n)]["gap_median_ms"] for n in ns], "o-", label="redlock")
    gaps.plot(ns, [b8[str(n)]["flock_gap_median_ms"] for n in ns], "s-", label="flock")
    gaps.set(xscale="log", xlabel="waiters started together (N)", ylabel="ms",
             title="Hand-over gap, median", ylim=(0, None))
    gaps.set_xticks(ns, [str(n) for n in ns])
    gaps.legend()
    fig.tight_layout()
    path = os.path.join(out, "waiters.svg")
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return path


def round_trips(plt, b11, out):
    """round-trips.svg: what B11's run costs behind the proxy, by servers."""
    own = b11["1 server, no proxy"]
    # The medians behind the proxy: the other entries are lists, dicts, the target and the
    # proxy's own PING.
    labels = [k for k, v in b11.items() if isinstance(v, float) and k not in
              ("1 server, no proxy", "target_ms", "PING through the proxy, median ms")]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(labels, [b11[k] - own for k in labels])
    ax.axhline(b11["target_ms"], color="red", linestyle="--",
               label=f"target: 3 round trips + 1.5 ms ({b11['target_ms']} ms)")
    ax.set(ylabel="ms more than without the proxy",
           title="`run -- true` behind a 2 ms round trip")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out, "round-trips.svg")
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return path
