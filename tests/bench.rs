//! The benchmark script must keep working: its quick mode runs every scenario once, on the
//! binary the tests already built (a release build here would be a second, LTO, build).

use std::process::Command;

#[test]
fn bench_quick_mode_runs_every_scenario() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(root.join("bench/run"))
        .args(["--quick", "--out"])
        .arg(out.path())
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_redlock"))
        .output()
        .expect("bench/run needs python3");
    assert!(
        output.status.success(),
        "bench/run --quick failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    for scenario in [
        "B1 overhead (median ms)",
        "B2 hand-over",
        "B3 idle waiters",
        "B4 quorum (median ms)",
        "B5 memory and size",
        "B6 heartbeat",
        "B7 deployments (median ms)",
        "B8 waiters",
        "B9 many holders",
        "B10 list",
        "B11 round trips (median ms)",
    ] {
        assert!(
            results.get(scenario).is_some(),
            "no {scenario} in {results}"
        );
    }
    assert_eq!(results["B2 hand-over"]["redlock"]["overlaps"], 0);
    // The latency proxy (bench/proxy.rs) saw `run -- true` take one round trip to acquire and
    // one to release, AUTH and SELECT in the acquire's write; on a fresh server, one more to
    // send the acquire in full after its NOSCRIPT.
    let short = &results["B11 round trips (median ms)"]["phases"]["run -- true"];
    assert_eq!(short["connect"], 0, "{short}");
    assert_eq!(
        short["AUTH and SELECT with the first request"], true,
        "{short}"
    );
    assert_eq!(short["acquire"], 1, "{short}");
    assert_eq!(short["release"], 1, "{short}");
    let fresh = &results["B11 round trips (median ms)"]["phases"]["run -- true, on a fresh server"];
    assert_eq!(fresh["acquire"], 2, "{fresh}");
    assert_eq!(fresh["noscript"]["acquire"], 1, "{fresh}");
    // Every scenario has a row in the table, with its target where it has one.
    let table = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    for row in [
        "| B1 overhead | redlock run -- true |",
        "| B2 hand-over | redlock |",
        "| B3 idle waiters |",
        "| B4 quorum | acquire + release, 5 server(s) |",
        "| B5 memory |",
        "| B6 heartbeat |",
        "| B7 deployments |",
        "| B8 waiters |",
        "| B9 many holders |",
        "| B10 list |",
        "| B11 round trips |",
    ] {
        assert!(table.contains(row), "no row {row} in\n{table}");
    }
}
