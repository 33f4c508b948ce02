"""The curves of issues 15 and 26, drawn from bench/run's results as SVG files next to
BENCHMARKS.md: waiters.svg (B8: commands per run, the hand-over gap and the notices delivered
per run against N, redlock and flock), round-trips.svg (B11: what a run costs behind a 2 ms
round trip, by servers) and capacity.svg (B12: the runs a second one Redis core serves, one
server against a cluster). Only the scenarios in the results are drawn. matplotlib is used when
it is installed (`pip install matplotlib`); without it nothing is drawn, and bench/run says so."""

import os
import textwrap


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
    if "B12 capacity" in results:
        paths.append(capacity(plt, results["B12 capacity"], out))
    return paths


def waiters(plt, b8, out):
    """waiters.svg: B8's commands per run, hand-over gap and (when the results have them)
    notices delivered per run against N."""
    ns = [int(n) for n in b8]
    notices = all("notices_delivered_per_run" in b8[str(n)] for n in ns)
    fig, panels = plt.subplots(1, 3 if notices else 2, figsize=(15 if notices else 10, 4))
    commands, gaps = panels[:2]
    commands.plot(ns, [b8[str(n)]["commands_per_run"] for n in ns], "o-", label="commands")
    commands.plot(ns, [b8[str(n)]["scripts_per_run"] for n in ns], "s-", label="scripts")
    commands.set(ylabel="per run", title="What Redis runs per run", ylim=(0, None))
    commands.legend()
    gaps.plot(ns, [b8[str(n)]["gap_median_ms"] for n in ns], "o-", label="redlock")
    gaps.plot(ns, [b8[str(n)]["flock_gap_median_ms"] for n in ns], "s-", label="flock")
    gaps.set(ylabel="ms", title="Hand-over gap, median", ylim=(0, None))
    gaps.legend()
    if notices:
        delivered = panels[2]
        values = [b8[str(n)]["notices_delivered_per_run"] for n in ns]
        published = [b8[str(n)].get("notices_published_per_run") for n in ns]
        delivered.plot(ns, values, "o-", label="delivered")
        if None not in published:
            delivered.plot(ns, published, "s-", label="published")
        # B8's target: at most 2 notices delivered per run.
        delivered.axhline(2, color="red", linestyle="--", label="target: ≤ 2 delivered per run")
        shown = [*values, *(p for p in published if p is not None)]
        top = max([2, *shown])
        if top > 20 and min(shown) > 0:
            # Far above the target (a notice to every waiter): a log scale keeps it in sight.
            delivered.set(yscale="log", ylim=(min([1, *shown]) / 1.5, top * 1.5))
            delivered.yaxis.set_major_formatter("{x:g}")
        else:
            delivered.set(ylim=(0, top * 1.2))
        delivered.set(ylabel="notices per run", title="Notices per run (redlock)")
        delivered.legend()
    for panel in panels:
        panel.set(xscale="log", xlabel="waiters started together (N)")
        panel.set_xticks(ns, [str(n) for n in ns])
        panel.minorticks_off()
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


def capacity(plt, b12, out):
    """capacity.svg: B12's runs a second one Redis core serves (1e6 / the main thread's CPU µs
    per run; for several nodes, the busiest one's), by way, each with its ratio to one
    server's, and the target: 2.5x one server."""
    # The ways are the dicts; the other entries are the load's size.
    ways = [k for k, v in b12.items() if isinstance(v, dict)]
    serves = [b12[way]["runs_per_second_one_core_serves"] for way in ways]
    one = b12["one server"]["runs_per_second_one_core_serves"]
    target = 2.5 * one
    colors = ["C0" if way == "one server" else "C1" if way.startswith("cluster") else "C7"
              for way in ways]
    labels = [textwrap.fill(way, 34) for way in ways]
    fig, ax = plt.subplots(figsize=(10, 1.3 + 1.0 * len(ways)))
    ys = range(len(ways))
    ax.barh(ys, serves, color=colors, height=0.6)
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()  # one server on top, as the results list it
    right = max([*serves, target]) * 1.45
    for y, way, value in zip(ys, ways, serves):
        ratio = b12[way].get("vs_one_server")
        if way == "one server":
            text = "1x (the reference)"
        elif ratio:
            text = f"{ratio[0]:.2f}x one server ({ratio[1]:.2f}–{ratio[2]:.2f})"
        else:
            text = ""
        # On a white ground, over the target's line when the bar ends near it.
        ax.text(value + right * 0.01, y, f"{value:,}\n{text}", va="center", fontsize=9,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1}, zorder=3)
    ax.axvline(target, color="red", linestyle="--",
               label=f"target: 2.5x one server ({target:,.0f} runs/s)")
    ax.set(xlim=(0, right), xlabel="runs a second: 1e6 / the main thread's CPU µs per run "
                                    "(several nodes: the busiest one's)",
           title=f"What one Redis core serves: `run -- true`, {b12['loops']} loops of "
                 f"{b12['runs_per_loop']} at once, median of {b12['rounds']} rounds")
    ax.xaxis.set_major_formatter("{x:,.0f}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    fig.tight_layout()
    path = os.path.join(out, "capacity.svg")
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return path
