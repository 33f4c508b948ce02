//! `--timeout`: a limit on the command's run time, as timeout(1) sets one.

use std::time::{Duration, Instant};

use crate::support::{Holder, RedisServer, redlock, wait_for_subscriber};

/// A command that ignores SIGTERM runs until its --timeout, gets SIGTERM, and is killed
/// --kill-after later; redlock exits with 124 and the lock is free at once.
#[test]
fn a_command_past_its_timeout_is_killed_and_the_run_exits_with_124() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = redlock(&server.url())
        .args([
            "run",
            "-n",
            "t",
            "--timeout",
            "1s",
            "--kill-after",
            "1s",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "trap 'echo term >> marks' TERM; echo start >> marks; sleep 30 & wait; sleep 30",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(124), "{stderr}");
    assert!(
        stderr.contains("redlock: the command ran for its --timeout of 1.0s; stopping it"),
        "{stderr}"
    );
    assert!(stderr.contains("killed by SIGKILL"), "{stderr}");
    // SIGTERM at 1 s, SIGKILL 1 s later: not before, and long before the command's 30 s.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let marks = std::fs::read_to_string(dir.path().join("marks")).unwrap();
    assert_eq!(marks, "start\nterm\n");
    assert_eq!(server.cmd::<i64>(&["EXISTS", "redlock:{t}"]), 0);
}

/// --timeout counts from the command's start, not from the wait for the lock: a waiter that
/// waited longer than its --timeout still runs its command, which then times out.
#[test]
fn the_timeout_counts_from_the_command_s_start() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "w", "--ttl", "60s"]);
    let dir = tempfile::tempdir().unwrap();
    let waiter = redlock(&server.url())
        .args(["run", "-n", "w", "--wait", "60s", "--timeout", "1s", "--"])
        .args(["sh", "-c", "echo x > took-over; sleep 30"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "w");
    // The point of this test is time: the waiter waits longer than its --timeout.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!dir.path().join("took-over").exists());
    let released = Instant::now();
    assert!(holder.finish().0.success());
    let output = waiter.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Its command ran (about its second), and was then stopped.
    assert!(dir.path().join("took-over").exists(), "{stderr}");
    assert_eq!(output.status.code(), Some(124), "{stderr}");
    assert!(released.elapsed() >= Duration::from_secs(1), "{stderr}");
}
