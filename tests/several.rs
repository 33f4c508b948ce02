//! Several locks at once (`run --name a --name b`): all or none, taken in one order, none held
//! while the run waits for another, each lock's fence in REDLOCK_FENCES. The commands say what
//! they saw in files of their own.

use std::process::{Child, Command, Stdio};

use crate::support::{
    Holder, RedisServer, code, exits_with, is_dead, keys, redlock, start_servers, succeeded, urls,
    wait_for_subscriber, wait_until,
};

/// A holder of `names` whose command writes what it was given to `seen`.
fn holder_of(url: &str, names: &[&str]) -> Holder {
    let mut args = Vec::new();
    for name in names {
        args.extend(["-n", name]);
    }
    let seen = "echo \"[$REDLOCK_NAME] [$REDLOCK_FENCE] $REDLOCK_FENCES $REDLOCK_TOKEN\" > seen; \
                echo $$ > pid; echo ready; read line; true";
    Holder::start_script(url, &args, seen)
}

fn token_of(server: &RedisServer, name: &str) -> Option<String> {
    server.cmd(&["GET", &keys(name).lock])
}

#[test]
fn the_command_runs_once_all_are_taken_with_each_fence() {
    let server = RedisServer::start();
    let url = server.url();
    succeeded(redlock(&url).args(["run", "-n", "b", "--", "true"]));
    let mut holder = holder_of(&url, &["b", "a"]);
    let seen = std::fs::read_to_string(holder.path("seen")).unwrap();
    // One name, one fence: not given for several. Each fence, in the order taken.
    let token = token_of(&server, "a").expect("a is held");
    assert_eq!(seen, format!("[] [] {{\"a\":1,\"b\":2}} {token}\n"));
    assert_eq!(token_of(&server, "b"), Some(token));
    // Each is busy to another run, which names the lock and its holder.
    for name in ["a", "b"] {
        let stderr = exits_with(
            redlock(&url).args(["run", "-n", name, "--", "true"]),
            code::BUSY,
        );
        assert!(
            stderr.starts_with(&format!("redlock: lock '{name}' is held by ")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("pid {}", holder.redlock_pid())),
            "{stderr}"
        );
        let status =
            String::from_utf8(succeeded(redlock(&url).args(["status", "-n", name]))).unwrap();
        assert!(
            status.starts_with(&format!("lock '{name}' is held by ")),
            "{status}"
        );
    }
    assert!(holder.finish().0.success());
    assert_eq!(token_of(&server, "a"), None);
    assert_eq!(token_of(&server, "b"), None);
}

/// A run that finds the second lock busy gives back the first, which it took (its fence went
/// up), and says which lock is busy and who holds it.
#[test]
fn a_busy_lock_gives_back_those_taken() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = holder_of(&url, &["b"]);
    let stderr = exits_with(
        redlock(&url).args(["run", "-n", "a", "-n", "b", "--", "true"]),
        code::BUSY,
    );
    assert!(
        stderr.starts_with("redlock: lock 'b' is held by "),
        "{stderr}"
    );
    assert_eq!(token_of(&server, "a"), None, "a was given back");
    assert_eq!(
        server.cmd::<i64>(&["GET", &keys("a").fence]),
        1,
        "a was taken"
    );
    // The same from the other order given: a is taken first all the same.
    exits_with(
        redlock(&url).args(["run", "-n", "b", "-n", "a", "--", "true"]),
        code::BUSY,
    );
    assert_eq!(server.cmd::<i64>(&["GET", &keys("a").fence]), 2);
    assert!(holder.finish().0.success());
}

/// A run waiting for the second lock holds none: the first stays free for others meanwhile,
/// and the waiter runs once the second is released.
#[test]
fn a_waiting_run_holds_nothing() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = holder_of(&url, &["b"]);
    let dir = tempfile::tempdir().unwrap();
    let waiter = redlock(&url)
        .args([
            "run", "-n", "a", "-n", "b", "--wait", "60s", "--", "sh", "-c",
        ])
        .arg("echo \"$REDLOCK_FENCES\" > ran")
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "b");
    assert_eq!(token_of(&server, "a"), None);
    succeeded(redlock(&url).args(["run", "-n", "a", "--", "true"]));
    assert!(!is_dead(waiter.id() as i32));
    assert!(holder.finish().0.success());
    let output = waiter.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap();
    // a: taken and given back once, taken by the other run, then this one's; b: its second.
    assert_eq!(ran, "{\"a\":3,\"b\":2}\n");
}

/// `release --force` of one of the locks stops the command (76), and both are let go.
#[test]
fn a_break_of_one_lock_stops_the_command() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = holder_of(&url, &["a", "b"]);
    crate::support::wait_for_holder(&server, "b");
    succeeded(redlock(&url).args(["release", "-n", "b", "--force"]));
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert_eq!(token_of(&server, "a"), None);
    assert_eq!(token_of(&server, "b"), None);
}

/// A lock lost behind the run's back (its key deleted) is found by the next extension: the
/// command is stopped, and the message names the lock.
#[test]
fn a_lost_lock_of_several_is_named() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = Holder::start_script(
        &url,
        &["-n", "a", "-n", "b", "--ttl", "3s"],
        "echo $$ > pid; echo ready; sleep 60",
    );
    let _: i64 = server.cmd(&["DEL", &keys("b").lock]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(stderr.contains("lock lost: lock 'b': "), "{stderr}");
    assert_eq!(token_of(&server, "a"), None);
}

/// Inside a run of several locks, a run of one of them runs under the outer lease at once.
#[test]
fn a_run_of_one_of_them_inside_runs_at_once() {
    let server = RedisServer::start();
    let url = server.url();
    let redlock_bin = env!("CARGO_BIN_EXE_redlock");
    // Without --wait: a run that tried to take b would find it busy.
    let inner = format!(
        "'{redlock_bin}' run -n b -- sh -c \
         'echo inner $REDLOCK_NAME $REDLOCK_FENCE $REDLOCK_FENCES [$REDLOCK_UNLOCKED]'"
    );
    // An outer run without the lock (--on-unavailable run) said REDLOCK_UNLOCKED: not to these.
    let out = succeeded(
        redlock(&url)
            .env("REDLOCK_UNLOCKED", "1")
            .args(["run", "-n", "a", "-n", "b", "--", "sh", "-c", &inner]),
    );
    // b's name and fence, as a run of b alone gives them.
    assert_eq!(String::from_utf8(out).unwrap(), "inner b 1 {\"b\":1} []\n");
}

#[test]
fn several_names_refuse_what_is_for_one_lock() {
    let server = RedisServer::start();
    let url = server.url();
    for (flag, value) in [
        ("--limit", Some("2")),
        ("--shared", None),
        ("--replace", None),
    ] {
        let mut command = redlock(&url);
        command.args(["run", "-n", "a", "-n", "b", flag]);
        command.args(value);
        let stderr = exits_with(command.args(["--", "true"]), code::USAGE);
        assert!(
            stderr.starts_with("redlock: several --name cannot be used with --"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let stderr = exits_with(
        redlock(&url).args(["status", "-n", "a", "-n", "b"]),
        code::USAGE,
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Loops of runs that ask for overlapping sets, in every order: none deadlocks (each finishes
/// within its wait), and no two commands ever hold one lock at once. Each command marks its
/// start, its life signs and its end for each of its locks, in that lock's log, with that
/// lock's fence; `mkdir` of a lock's directory fails if another command is inside.
#[test]
fn overlapping_sets_in_any_order_never_deadlock_or_overlap() {
    let servers = start_servers(3);
    let url = urls(&servers);
    let dir = tempfile::tempdir().unwrap();
    let redlock_bin = env!("CARGO_BIN_EXE_redlock");
    let critical = "for n in $NAMES; do f=$(echo \"$REDLOCK_FENCES\" | sed \"s/.*\\\"$n\\\":\\([0-9]*\\).*/\\1/\"); \
                    mkdir in-$n || echo OVERLAP $n >> overlaps; echo start $f >> log-$n; done; \
                    for i in 1 2; do for n in $NAMES; do echo alive >> log-$n; done; done; \
                    for n in $NAMES; do f=$(echo \"$REDLOCK_FENCES\" | sed \"s/.*\\\"$n\\\":\\([0-9]*\\).*/\\1/\"); \
                    echo end $f >> log-$n; rmdir in-$n; done";
    let sets = [["a", "b"], ["b", "a"], ["b", "c"], ["c", "a"]];
    let loops: Vec<Child> = sets
        .iter()
        .map(|[x, y]| {
            let script = format!(
                "for i in $(seq 8); do NAMES='{x} {y}' '{redlock_bin}' run -n {x} -n {y} \
                 --wait 120s -- sh -c '{critical}' || echo FAILED $? >> failed; done"
            );
            Command::new("sh")
                .args(["-c", &script])
                .env("REDLOCK_URL", &url)
                .current_dir(dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut shell in loops {
        assert!(shell.wait().unwrap().success());
    }
    let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
    assert_eq!(read("failed"), "", "every run took its locks");
    assert_eq!(read("overlaps"), "");
    for (name, runs) in [("a", 24), ("b", 24), ("c", 16)] {
        let log = read(&format!("log-{name}"));
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), runs * 4, "{name}:\n{log}");
        let mut last_fence = 0;
        for run in lines.chunks(4) {
            let start: u64 = run[0].strip_prefix("start ").expect(&log).parse().unwrap();
            assert_eq!(&run[1..3], ["alive", "alive"], "another run got in:\n{log}");
            assert_eq!(run[3], format!("end {start}"), "another run got in:\n{log}");
            assert!(
                start > last_fence,
                "{name}'s fence went from {last_fence} to {start}"
            );
            last_fence = start;
        }
    }
    wait_until("the locks are free", || {
        servers
            .iter()
            .all(|s| ["a", "b", "c"].iter().all(|n| token_of(s, n).is_none()))
    });
}

/// Each lock's history records the run; a run that finds one busy without --wait is recorded
/// busy by that one alone, and with --wait by the one it gave up on, as a waiter that gave up.
#[test]
fn each_lock_records_the_run() {
    let server = RedisServer::start();
    let url = server.url();
    succeeded(redlock(&url).args(["run", "-n", "a", "-n", "b", "--", "true"]));
    let outcomes = |name: &str| -> Vec<String> {
        let json = succeeded(redlock(&url).args(["history", "--name", name, "--json"]));
        let runs: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let runs = runs.as_array().unwrap().iter();
        runs.map(|r| r["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(outcomes("a"), ["ran"]);
    assert_eq!(outcomes("b"), ["ran"]);
    let mut holder = holder_of(&url, &["b"]);
    exits_with(
        redlock(&url).args(["run", "-n", "a", "-n", "b", "--", "true"]),
        code::BUSY,
    );
    // Long enough to be a wait; the holder keeps b throughout.
    let stderr = exits_with(
        redlock(&url).args(["run", "-n", "a", "-n", "b", "--wait", "1s", "--", "true"]),
        code::BUSY,
    );
    assert!(
        stderr.starts_with("redlock: gave up after 1.0s: lock 'b' is held by "),
        "{stderr}"
    );
    assert!(holder.finish().0.success());
    assert_eq!(outcomes("a"), ["ran"], "a was only given back");
    // Newest first, by when each began: the holder of b began before the busy runs.
    assert_eq!(outcomes("b"), ["busy", "busy", "ran", "ran"]);
}

/// A signal while the run waits for its second lock ends it as a wait is ended: nothing held,
/// no place left in the queue.
#[test]
fn a_signal_while_waiting_leaves_nothing_held() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = holder_of(&url, &["b"]);
    let waiter = redlock(&url)
        .args(["run", "-n", "a", "-n", "b", "--wait", "60s", "--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "b");
    let pid = nix::unistd::Pid::from_raw(waiter.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let output = waiter.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{output:?}");
    assert_eq!(token_of(&server, "a"), None);
    assert_eq!(server.cmd::<i64>(&["ZCARD", &keys("b").waiters]), 0);
    assert!(holder.finish().0.success());
}
