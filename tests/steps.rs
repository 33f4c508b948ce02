//! A lock held across steps: `redlock acquire` takes it and exits with its token and fence,
//! `redlock extend --token` renews it, `redlock release --token` gives it back; and `--jitter`,
//! the random sleep before a run's (or an acquire's) first try.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{
    Holder, RedisServer, code, exits_with, keys, redlock, start_servers, succeeded, urls,
    wait_for_subscriber,
};

/// `redlock acquire` against `url`: its token and fence.
fn acquire(url: &str, name: &str, ttl: &str) -> (String, u64) {
    let out = succeeded(redlock(url).args(["acquire", "-n", name, "--ttl", ttl]));
    let out = String::from_utf8(out).unwrap();
    let (token, fence) = out.trim_end().split_once(' ').expect("TOKEN FENCE");
    (token.to_string(), fence.parse().unwrap())
}

fn pttl(server: &RedisServer, name: &str) -> i64 {
    server.cmd(&["PTTL", &keys(name).lock])
}

#[test]
fn acquire_holds_the_lock_after_it_exits_and_release_gives_it_back() {
    let server = RedisServer::start();
    let url = server.url();
    let (token, fence) = acquire(&url, "deploy", "1h");
    let held: String = server.cmd(&["GET", &keys("deploy").lock]);
    assert_eq!(held, token);
    assert!(
        pttl(&server, "deploy") > 3_000_000,
        "the lease is the --ttl"
    );
    // Another step, another run: busy, and told who holds it.
    let stderr = exits_with(
        redlock(&url).args(["run", "-n", "deploy", "--", "true"]),
        code::BUSY,
    );
    assert!(
        stderr.contains("redlock acquire -n deploy --ttl 1h"),
        "{stderr}"
    );
    let status = succeeded(redlock(&url).args(["status", "-n", "deploy"]));
    assert!(String::from_utf8_lossy(&status).contains(&token));
    // Given back by its token, the lock is free and the next holder's fence is larger.
    succeeded(redlock(&url).args(["release", "-n", "deploy", "--token", &token]));
    let exists: i64 = server.cmd(&["EXISTS", &keys("deploy").lock]);
    assert_eq!(exists, 0);
    let (_, next) = acquire(&url, "deploy", "1h");
    assert!(next > fence);
}

#[test]
fn a_second_acquire_is_busy_and_a_semaphore_is_another_limit() {
    let server = RedisServer::start();
    let url = server.url();
    acquire(&url, "job", "1m");
    let stderr = exits_with(
        redlock(&url).args(["acquire", "-n", "job", "--ttl", "1m"]),
        code::BUSY,
    );
    assert!(
        stderr.starts_with("redlock: lock 'job' is held by "),
        "{stderr}"
    );
    let stderr = exits_with(
        redlock(&url).args(["acquire", "-n", "job", "--ttl", "1m", "-E", "3", "-q"]),
        3,
    );
    assert!(stderr.is_empty(), "{stderr}");
    let mut holder = Holder::start(&url, &["-n", "sem", "--limit", "2"]);
    exits_with(
        redlock(&url).args(["acquire", "-n", "sem", "--ttl", "1m"]),
        code::LIMIT_MISMATCH,
    );
    holder.finish();
}

#[test]
fn export_prints_assignments_that_sh_reads_back() {
    let server = RedisServer::start();
    let url = server.url();
    let out = succeeded(redlock(&url).args(["acquire", "-n", "it's", "--ttl", "1m", "--export"]));
    let script =
        "eval \"$1\"; printf '%s|%s|%s' \"$REDLOCK_NAME\" \"$REDLOCK_TOKEN\" \"$REDLOCK_FENCE\"";
    let read = succeeded(
        std::process::Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(String::from_utf8(out).unwrap()),
    );
    let read = String::from_utf8(read).unwrap();
    let held: String = server.cmd(&["GET", &keys("it's").lock]);
    assert_eq!(read, format!("it's|{held}|1"));
    // With --key, the variable is REDLOCK_KEY.
    let out = succeeded(redlock(&url).args(["acquire", "--key", "k", "--ttl", "1m", "--export"]));
    assert!(
        String::from_utf8(out)
            .unwrap()
            .starts_with("export REDLOCK_KEY='k'\n")
    );
}

#[test]
fn extend_renews_by_token_and_says_76_once_the_lock_is_not_ours() {
    let server = RedisServer::start();
    let url = server.url();
    let (token, _) = acquire(&url, "ci", "10s");
    assert!(pttl(&server, "ci") <= 10_000);
    succeeded(redlock(&url).args(["extend", "-n", "ci", "--token", &token, "--ttl", "1h"]));
    assert!(pttl(&server, "ci") > 3_000_000);
    let stderr = exits_with(
        redlock(&url).args(["extend", "-n", "ci", "--token", "not-ours", "--ttl", "1h"]),
        code::LOCK_LOST,
    );
    assert!(
        stderr.contains("it no longer holds token not-ours"),
        "{stderr}"
    );
    // The lock lost (here deleted, as a lease that ran out): neither renewed nor re-created.
    let _: i64 = server.cmd(&["DEL", &keys("ci").lock]);
    exits_with(
        redlock(&url).args(["extend", "-n", "ci", "--token", &token, "--ttl", "1h"]),
        code::LOCK_LOST,
    );
    let exists: i64 = server.cmd(&["EXISTS", &keys("ci").lock]);
    assert_eq!(exists, 0);
    exits_with(
        redlock(&url).args(["release", "-n", "ci", "--token", &token]),
        code::LOCK_LOST,
    );
}

#[test]
fn a_lock_taken_by_another_token_is_not_given_back() {
    let server = RedisServer::start();
    let url = server.url();
    let (old, _) = acquire(&url, "ci", "1h");
    let _: i64 = server.cmd(&["DEL", &keys("ci").lock]);
    let (new, _) = acquire(&url, "ci", "1h");
    exits_with(
        redlock(&url).args(["release", "-n", "ci", "--token", &old]),
        code::LOCK_LOST,
    );
    let held: String = server.cmd(&["GET", &keys("ci").lock]);
    assert_eq!(held, new);
}

#[test]
fn release_by_token_wakes_a_waiter_at_once() {
    let server = RedisServer::start();
    let url = server.url();
    let (token, _) = acquire(&url, "stage", "1h");
    let dir = tempfile::tempdir().unwrap();
    let mut waiter = redlock(&url)
        .args(["run", "-n", "stage", "--wait", "1h", "--", "touch", "ran"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "stage");
    succeeded(redlock(&url).args(["release", "-n", "stage", "--token", &token]));
    // The lease had an hour left: only the release's wake-up lets the waiter in this soon.
    let woken = Instant::now();
    assert!(waiter.wait().unwrap().success());
    assert!(woken.elapsed() < Duration::from_secs(20));
    assert!(dir.path().join("ran").exists());
}

#[test]
fn the_steps_need_a_majority_of_the_servers() {
    let servers = start_servers(3);
    let url = urls(&servers);
    servers[2].freeze();
    let (token, _) = acquire(&url, "q", "1h");
    succeeded(redlock(&url).args(["extend", "-n", "q", "--token", &token, "--ttl", "1h"]));
    // Lost on one of the two that answer: the frozen one may hold it, so 2 of 3 may still.
    let _: i64 = servers[1].cmd(&["DEL", &keys("q").lock]);
    exits_with(
        redlock(&url).args(["extend", "-n", "q", "--token", &token, "--ttl", "1h"]),
        code::UNAVAILABLE,
    );
    // Lost on both: no majority can hold it any more.
    let _: i64 = servers[0].cmd(&["DEL", &keys("q").lock]);
    exits_with(
        redlock(&url).args(["extend", "-n", "q", "--token", &token, "--ttl", "1h"]),
        code::LOCK_LOST,
    );
    servers[2].thaw();
}

#[test]
fn unreachable_servers_are_69_for_every_step() {
    let server = RedisServer::start();
    let url = server.url();
    let (token, _) = acquire(&url, "u", "1h");
    server.freeze();
    for args in [
        vec!["acquire", "-n", "u", "--ttl", "1s"],
        vec!["extend", "-n", "u", "--token", &token, "--ttl", "1s"],
        vec!["release", "-n", "u", "--token", &token],
    ] {
        let stderr = exits_with(redlock(&url).args(&args), code::UNAVAILABLE);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    server.thaw();
}

#[test]
fn a_token_that_cannot_be_printed_is_given_back() {
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .args(["acquire", "-n", "full", "--ttl", "1h"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code::INTERNAL), "{stderr}");
    assert!(stderr.contains("the lock was given back"), "{stderr}");
    let exists: i64 = server.cmd(&["EXISTS", &keys("full").lock]);
    assert_eq!(exists, 0);
}

/// `extend` and `release --token` without `--force` act on a step's hold only: a run keeps its
/// own lease (cut short behind its back, a waiter would start before it stops its command),
/// and its lock is broken with `--force`, which asks it to stop first. A shared run's too.
#[test]
fn a_run_s_token_is_neither_extended_nor_given_back() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = Holder::start(&url, &["-n", "r"]);
    let token: String = server.cmd(&["GET", &keys("r").lock]);
    let pttl = || server.cmd::<i64>(&["PTTL", &keys("r").lock]);
    for args in [
        vec!["extend", "-n", "r", "--token", &token, "--ttl", "200ms"],
        vec!["release", "-n", "r", "--token", &token],
    ] {
        let stderr = exits_with(redlock(&url).args(&args), code::USAGE);
        assert!(stderr.contains("is a `redlock run`'s"), "{stderr}");
    }
    assert!(pttl() > 1_000, "the run's lease is its own");
    let held: String = server.cmd(&["GET", &keys("r").lock]);
    assert_eq!(held, token);
    assert!(holder.finish().0.success());
    let mut shared = Holder::start(&url, &["-n", "s", "--shared"]);
    let tokens: Vec<String> = server.cmd(&["ZRANGE", &keys("s").readers, "0", "-1"]);
    for args in [
        vec!["extend", "-n", "s", "--token", &tokens[0], "--ttl", "200ms"],
        vec!["release", "-n", "s", "--token", &tokens[0]],
    ] {
        let stderr = exits_with(redlock(&url).args(&args), code::USAGE);
        assert!(stderr.contains("is a `redlock run`'s"), "{stderr}");
    }
    assert!(shared.finish().0.success());
}

/// A closed stdout (or /dev/null) would swallow the token: nothing is taken.
#[test]
fn acquire_refuses_a_closed_stdout() {
    use std::os::unix::process::CommandExt;
    let server = RedisServer::start();
    let mut command = redlock(&server.url());
    command.args(["acquire", "-n", "closed", "--ttl", "1h"]);
    // SAFETY: close(2) only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::close(1).ok();
            Ok(())
        });
    }
    let stderr = exits_with(&mut command, code::USAGE);
    assert!(
        stderr.contains("stdout is /dev/null (or was closed)"),
        "{stderr}"
    );
    let stderr = exits_with(
        redlock(&server.url())
            .args(["acquire", "-n", "closed", "--ttl", "1h"])
            .stdout(Stdio::null()),
        code::USAGE,
    );
    assert!(stderr.contains("stdout is /dev/null"), "{stderr}");
    let exists: i64 = server.cmd(&["EXISTS", &keys("closed").lock]);
    assert_eq!(exists, 0);
}

#[test]
fn the_steps_refuse_bad_input() {
    let url = "redis://127.0.0.1:1";
    for (args, says) in [
        (vec!["acquire", "-n", "x"], "--ttl"),
        (vec!["acquire", "-n", "x", "--ttl", "10ms"], "too short"),
        (vec!["extend", "-n", "x", "--ttl", "1m"], "--token"),
        (
            vec!["extend", "-n", "x", "--token", "", "--ttl", "1m"],
            "must not be empty",
        ),
        (
            vec!["release", "-n", "x", "--token", "t", "--slot", "1"],
            "--slot",
        ),
    ] {
        let stderr = exits_with(redlock(url).args(&args), code::USAGE);
        assert!(
            stderr.starts_with("redlock: ") && stderr.contains(says),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// The sleep each of `runs` runs with `--jitter 100ms -v` said it took.
fn jitters(url: &str, runs: usize) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let output = redlock(url)
                .args(["run", "-n", "fair", "--jitter", "100ms", "-v", "--", "true"])
                .output()
                .unwrap();
            assert!(output.status.success());
            let stderr = String::from_utf8(output.stderr).unwrap();
            let line = stderr.lines().next().unwrap();
            let slept = line
                .strip_prefix("redlock: sleeping ")
                .and_then(|rest| rest.strip_suffix(" before the first try (--jitter 100ms)"))
                .unwrap_or_else(|| panic!("{stderr}"));
            humantime::parse_duration(slept).unwrap()
        })
        .collect()
}

#[test]
fn jitter_sleeps_a_random_share_before_the_first_try() {
    let server = RedisServer::start();
    let slept = jitters(&server.url(), 8);
    assert!(
        slept.iter().all(|s| *s < Duration::from_millis(100)),
        "{slept:?}"
    );
    // Runs that all slept the same would all still come at once.
    let first = slept[0];
    assert!(slept.iter().any(|s| *s != first), "{slept:?}");
}

#[test]
fn a_signal_during_the_jitter_ends_the_run_before_it_tries() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut run = redlock(&server.url())
        .args([
            "run", "-n", "late", "--jitter", "1h", "-v", "--", "touch", "ran",
        ])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(run.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("redlock: sleeping "), "{line}");
    kill(Pid::from_raw(run.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(run.wait().unwrap().code(), Some(128 + 15));
    assert!(!dir.path().join("ran").exists());
    let exists: i64 = server.cmd(&["EXISTS", &keys("late").lock]);
    assert_eq!(exists, 0, "no try was made");
}
