//! `redlock history`: every run recorded next to the lock, by the requests it sends anyway, on
//! every host; shown newest first, merged across servers, capped.

use std::process::{Command, Output};

use crate::support::{
    Holder, RedisServer, code, keys, redlock, start_servers, succeeded, urls, wait_for_holder,
    wait_for_subscriber, wait_held_everywhere,
};

/// `redlock run` as host `host` (REDLOCK_HOST: three hosts on one machine).
fn on(host: &str, url: &str) -> Command {
    let mut command = redlock(url);
    command.env("REDLOCK_HOST", host);
    command
}

fn run(host: &str, url: &str, args: &[&str]) -> Output {
    on(host, url).arg("run").args(args).output().unwrap()
}

fn history(url: &str, name: &str) -> Vec<serde_json::Value> {
    let out = succeeded(redlock(url).args(["history", "--name", name, "--json", "-n", "100"]));
    serde_json::from_slice::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Runs on three hosts with every outcome, then `history --json`: each run once, newest first,
/// with its host, outcome, statuses, fence and timings.
#[test]
fn every_outcome_on_three_hosts_in_order() {
    let server = RedisServer::start();
    let url = server.url();
    let code = |output: Output| output.status.code();
    // ran, its command's status 3.
    assert_eq!(
        code(run("db1", &url, &["-n", "h", "--", "sh", "-c", "exit 3"])),
        Some(3)
    );
    // busy, twice: at once, and after waiting.
    let mut holder = on("db2", &url)
        .args([
            "run",
            "-n",
            "h",
            "--",
            "sh",
            "-c",
            "echo ready; read line; true",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(
        code(run("db3", &url, &["-n", "h", "--", "true"])),
        Some(code::BUSY)
    );
    assert_eq!(
        code(run(
            "db3",
            &url,
            &["-n", "h", "--wait", "0.3s", "-E", "9", "--", "true"]
        )),
        Some(9)
    );
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    // timeout.
    assert_eq!(
        code(run(
            "db1",
            &url,
            &["-n", "h", "--timeout", "0.5s", "--", "sleep", "30"]
        )),
        Some(code::TIMED_OUT)
    );
    // lost: the key deleted while the command runs.
    let mut lost = Holder::start(&url, &["-n", "h", "--ttl", "2s"]);
    let _: () = server.cmd(&["DEL", &keys("h").lock]);
    assert_eq!(lost.wait().0.code(), Some(code::LOCK_LOST));
    // replaced, and the run that replaced it.
    let mut replaced = Holder::start(&url, &["-n", "h"]);
    wait_for_holder(&server, "h");
    assert_eq!(
        code(run("db2", &url, &["-n", "h", "--replace", "--", "true"])),
        Some(0)
    );
    assert_eq!(replaced.wait().0.code(), Some(code::REPLACED));

    let runs = history(&url, "h");
    let seen: Vec<(String, String, Option<u64>)> = runs
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
                r["exit"].as_u64(),
            )
        })
        .collect();
    let here = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let expected = [
        ("db2", "ran", Some(0)),
        (here.as_str(), "replaced", Some(code::REPLACED)),
        (here.as_str(), "lost", Some(code::LOCK_LOST)),
        ("db1", "timeout", Some(code::TIMED_OUT)),
        // By start: db2's command started before the busy runs began, and ended after them.
        ("db3", "busy", Some(9)),
        ("db3", "busy", Some(code::BUSY)),
        ("db2", "ran", Some(0)),
        ("db1", "ran", Some(3)),
    ];
    let expected: Vec<(String, String, Option<u64>)> = expected
        .iter()
        .map(|(h, o, e)| (h.to_string(), o.to_string(), e.map(|e| e as u64)))
        .collect();
    assert_eq!(seen, expected, "{runs:#?}");
    // The fields: a run that held the lock has a fence, a place and a run time; a busy one
    // none, and its wait.
    let first = &runs[7];
    assert_eq!(first["status"], 3);
    assert_eq!(first["command"], "sh -c exit 3");
    assert_eq!(first["slot"], 0);
    assert!(first["run_ms"].is_u64() && first["fence"].is_u64());
    let waited = &runs[4];
    assert!(waited["fence"].is_null() && waited["run_ms"].is_null());
    assert!(waited["wait_ms"].as_u64().unwrap() >= 300, "{waited}");
    let timed_out = &runs[3];
    assert!(timed_out["run_ms"].as_u64().unwrap() >= 500, "{timed_out}");
    // Fences increase with the runs that held the lock; each started before it ended.
    let fences: Vec<u64> = runs.iter().filter_map(|r| r["fence"].as_u64()).collect();
    assert!(fences.windows(2).all(|f| f[0] > f[1]), "{fences:?}");
    for run in &runs {
        let (start, end) = (run["start_ms"].as_i64(), run["end_ms"].as_i64());
        assert!(start.is_some() && start <= end, "{run}");
    }

    // The text form: one line each, and `status` names the last run that got past busy.
    let text =
        String::from_utf8(succeeded(redlock(&url).args(["history", "--name", "h"]))).unwrap();
    assert_eq!(text.lines().count(), 8, "{text}");
    assert!(text.lines().next().unwrap().contains("\tdb2\t"), "{text}");
    let status = String::from_utf8(
        redlock(&url)
            .args(["status", "-n", "h"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(status.contains("  last run: db2, "), "{status}");
    assert!(status.contains(", exit 0, took "), "{status}");
}

/// `--history N` keeps the last N runs; 0 records none.
#[test]
fn the_history_is_capped() {
    let server = RedisServer::start();
    let url = server.url();
    for i in 0..5 {
        let output = on("db1", &url)
            .args(["run", "-n", "c", "--history", "3", "--", "sh", "-c"])
            .arg(format!("exit {i}"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(i));
    }
    assert_eq!(server.cmd::<i64>(&["LLEN", &keys("c").history]), 3);
    let statuses: Vec<u64> = history(&url, "c")
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [4, 3, 2]);
    succeeded(redlock(&url).args(["run", "-n", "none", "--history", "0", "--", "true"]));
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("none").history]), 0);
}

/// With three servers each keeps its list; `history` shows each run once. A run that finds too
/// few servers is recorded by those it reached (and by the others, if they execute its late
/// give-back).
#[test]
fn a_quorum_s_history_has_each_run_once() {
    let servers = start_servers(3);
    let url = urls(&servers);
    for _ in 0..3 {
        succeeded(on("db1", &url).args(["run", "-n", "q", "--", "true"]));
    }
    for server in &servers {
        assert_eq!(server.cmd::<i64>(&["LLEN", &keys("q").history]), 3);
    }
    let runs = history(&url, "q");
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert!(
        runs.iter()
            .all(|r| r["recorded_on"] == 3 && r["outcome"] == "ran")
    );

    servers[1].freeze();
    servers[2].freeze();
    let output = run("db2", &url, &["-n", "q", "--ttl", "2s", "--", "true"]);
    servers[1].thaw();
    servers[2].thaw();
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE));
    let runs = history(&url, "q");
    assert_eq!(runs.len(), 4, "{runs:#?}");
    assert_eq!(runs[0]["outcome"], "unavailable");
    assert_eq!(runs[0]["exit"], 69);
    // The frozen servers may execute the give-back they were sent once they wake up, and
    // record it too: still one run.
    assert!(runs[0]["recorded_on"].as_u64().unwrap() >= 1);
}

/// A waiter that gives up is recorded as busy once, by the request that takes it out of the
/// queue; one interrupted by a signal is not recorded.
#[test]
fn a_waiter_is_recorded_when_it_gives_up_not_when_interrupted() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = Holder::start(&url, &["-n", "w"]);
    let mut waiter = on("db3", &url)
        .args(["run", "-n", "w", "--wait", "60s", "--", "true"])
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "w");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(waiter.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = waiter.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("w").history]), 0);
    assert!(holder.finish().0.success());
    assert_eq!(history(&url, "w").len(), 1);
}

/// A key of another type where the history goes is left alone, and the runs go on: the
/// history must never cost a run anything.
#[test]
fn a_key_of_another_type_in_the_history_s_place_does_not_fail_a_run() {
    let server = RedisServer::start();
    let url = server.url();
    let _: () = server.cmd(&["SET", &keys("t").history, "someone else's"]);
    succeeded(redlock(&url).args(["run", "-n", "t", "--", "true"]));
    let mut holder = Holder::start(&url, &["-n", "t"]);
    let busy = redlock(&url)
        .args(["run", "-n", "t", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(code::BUSY));
    assert!(holder.finish().0.success());
    // Released: the next run takes it at once.
    succeeded(redlock(&url).args(["run", "-n", "t", "--", "true"]));
    assert_eq!(
        server.cmd::<String>(&["GET", &keys("t").history]),
        "someone else's"
    );
}

/// A run whose token a majority of the servers no longer held at its release lost its lock
/// (76): `history` and `status` say so, though a server that still held it recorded `ran`.
/// Decided in Rust from what the servers recorded (history.lua records whether each still held
/// the token), for one server as for three.
#[test]
fn a_lock_lost_on_a_majority_is_lost_in_history_and_status() {
    for (n, gone) in [(1, 1), (3, 2)] {
        let servers = start_servers(n);
        let url = urls(&servers);
        let mut holder = Holder::start(&url, &["-n", "m", "--ttl", "60s"]);
        wait_held_everywhere(&servers, "m");
        for server in &servers[..gone] {
            let _: () = server.cmd(&["DEL", &keys("m").lock]);
        }
        assert_eq!(holder.finish().0.code(), Some(code::LOCK_LOST));
        let runs = history(&url, "m");
        assert_eq!(runs.len(), 1, "{runs:#?}");
        assert_eq!(runs[0]["outcome"], "lost", "{n} server(s)");
        assert_eq!(runs[0]["exit"], 76);
        assert_eq!(runs[0]["status"], 0);
        // Not held: `status` exits 1, and names the last run.
        let status = redlock(&url).args(["status", "-n", "m"]).output().unwrap();
        let status = String::from_utf8(status.stdout).unwrap();
        assert!(status.contains(", lost, exit 76, took "), "{n}: {status}");
    }
}

/// `status` finds the last run that got past busy among the last hundred entries: a long job
/// that many skipped runs came by is still there.
#[test]
fn status_finds_the_last_run_behind_many_skipped_ones() {
    let server = RedisServer::start();
    let url = server.url();
    succeeded(on("db1", &url).args(["run", "-n", "s", "--", "true"]));
    let mut holder = Holder::start(&url, &["-n", "s"]);
    for _ in 0..30 {
        let output = run("db2", &url, &["-n", "s", "-q", "--", "true"]);
        assert_eq!(output.status.code(), Some(code::BUSY));
        assert!(output.stderr.is_empty());
    }
    let status = String::from_utf8(succeeded(redlock(&url).args(["status", "-n", "s"]))).unwrap();
    assert!(status.contains("  last run: db1, "), "{status}");
    assert!(holder.finish().0.success());
}

/// What the history says a run exited with is what it exited with: `--on-unavailable skip`
/// gives the busy status, but not when a key of another type is in the way (69 then).
#[test]
fn an_unavailable_run_is_recorded_with_its_own_status() {
    let servers = start_servers(3);
    let url = urls(&servers);
    for server in &servers[..2] {
        let _: () = server.cmd(&["HSET", &keys("wt").lock, "a", "b"]);
    }
    let output = run(
        "db1",
        &url,
        &["-n", "wt", "--on-unavailable", "skip", "--", "true"],
    );
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE));
    let recorded: String = servers[2].cmd(&["LINDEX", &keys("wt").history, "0"]);
    let recorded: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(recorded["outcome"], "unavailable");
    assert_eq!(recorded["exit"], 69);

    // Two servers frozen: unreachable, so --on-unavailable skip applies (the busy status).
    servers[0].freeze();
    servers[1].freeze();
    let output = run(
        "db1",
        &url,
        &[
            "-n",
            "u",
            "--ttl",
            "2s",
            "--on-unavailable",
            "skip",
            "-E",
            "9",
            "--",
            "true",
        ],
    );
    servers[0].thaw();
    servers[1].thaw();
    assert_eq!(output.status.code(), Some(9));
    let recorded: String = servers[2].cmd(&["LINDEX", &keys("u").history, "0"]);
    let recorded: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(recorded["exit"], 9);
}

/// Numbers are kept as redlock wrote them: a fence of 15 digits is not rounded (Redis's cjson
/// would keep 14).
#[test]
fn large_numbers_are_kept_exactly() {
    let server = RedisServer::start();
    let url = server.url();
    let _: () = server.cmd(&["SET", &keys("f").fence, "123456789012344"]);
    succeeded(redlock(&url).args(["run", "-n", "f", "--", "true"]));
    let runs = history(&url, "f");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["fence"].as_u64(), Some(123_456_789_012_345));
}
