//! `--timeout`: a limit on the command's run time, as timeout(1) sets one.

use std::time::{Duration, Instant};

use crate::support::{
    Holder, RedisServer, code, exits_with, keys, redlock, succeeded, wait_for_subscriber,
};

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
    assert_eq!(output.status.code(), Some(code::TIMED_OUT), "{stderr}");
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
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("t").lock]), 0);
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
    assert_eq!(output.status.code(), Some(code::TIMED_OUT), "{stderr}");
    assert!(released.elapsed() >= Duration::from_secs(1), "{stderr}");
}

/// `--on-unavailable`: with nothing listening, a frozen server and a wrong password, `fail` is
/// 69, `skip` is the busy status (quiet with -q), and `run` runs the command without the lock.
#[test]
fn on_unavailable_fails_skips_or_runs() {
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nothing = format!("redis://127.0.0.1:{}", down.local_addr().unwrap().port());
    drop(down);
    let frozen = RedisServer::start();
    frozen.freeze();
    let protected = RedisServer::start_with(&["--requirepass", "right"]);
    let wrong = format!("redis://:wrong@127.0.0.1:{}", protected.port);
    let show = "echo \"unlocked=$REDLOCK_UNLOCKED fence=${REDLOCK_FENCE:-none}\"";
    for url in [nothing, frozen.url(), wrong] {
        let run = |policy: &str, extra: &[&str]| {
            redlock(&url)
                .args(["run", "-n", "u", "--on-unavailable", policy])
                .args(extra)
                .args(["--", "sh", "-c", show])
                .output()
                .unwrap()
        };
        let failed = run("fail", &[]);
        assert_eq!(failed.status.code(), Some(code::UNAVAILABLE), "{url}");
        assert!(failed.stdout.is_empty());
        let skipped = run("skip", &[]);
        let stderr = String::from_utf8_lossy(&skipped.stderr);
        assert_eq!(skipped.status.code(), Some(code::BUSY), "{url}: {stderr}");
        assert!(stderr.contains("skipped, as if busy"), "{stderr}");
        assert!(skipped.stdout.is_empty());
        let quiet = run("skip", &["-E", "0", "-q"]);
        assert_eq!(quiet.status.code(), Some(0), "{url}");
        assert!(quiet.stderr.is_empty() && quiet.stdout.is_empty());
        let ran = run("run", &[]);
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(0), "{url}: {stderr}");
        assert_eq!(ran.stdout, b"unlocked=1 fence=none\n", "{url}");
        assert!(
            stderr.contains("redlock: WARNING: running the command WITHOUT the lock 'u'"),
            "{stderr}"
        );
    }
    frozen.thaw();
}

/// A busy lock is not an unavailable one: `--on-unavailable run` does not run the command.
#[test]
fn on_unavailable_is_never_triggered_by_a_busy_lock() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "b"]);
    let output = redlock(&server.url())
        .args([
            "run",
            "-n",
            "b",
            "--on-unavailable",
            "run",
            "--",
            "echo",
            "ran",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::BUSY));
    assert!(output.stdout.is_empty());
    assert!(holder.finish().0.success());
}

/// A run inside a run of the same lock (a locking script calling another) runs its command at
/// once under the outer lease, with the outer fence, and gives its command's status.
#[test]
fn a_nested_run_of_the_same_lock_runs_under_the_outer_lease() {
    let server = RedisServer::start();
    let redlock_path = env!("CARGO_BIN_EXE_redlock");
    let inner = format!(
        "'{redlock_path}' run --redis {} -n nest -- sh -c 'echo inner $REDLOCK_FENCE; exit 3'; \
         echo \"inner status $?\"; echo outer $REDLOCK_FENCE",
        server.url()
    );
    let output = redlock(&server.url())
        .args(["run", "-n", "nest", "--", "sh", "-c", &inner])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "inner 1\ninner status 3\nouter 1\n",
        "{stderr}"
    );
    // One lease only: the counter was taken once.
    assert_eq!(server.cmd::<i64>(&["GET", &keys("nest").fence]), 1);
}

/// A token in the environment that does not hold the lock (forged, or an outer run's that lost
/// it) gives no way round it: the run is an ordinary one, busy here.
#[test]
fn a_forged_token_in_the_environment_does_not_bypass_the_lock() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "forged"]);
    let output = redlock(&server.url())
        .env("REDLOCK_NAME", "forged")
        .env("REDLOCK_TOKEN", "0123456789abcdef0123456789abcdef")
        .env("REDLOCK_FENCE", "1")
        .args(["run", "-n", "forged", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::BUSY));
    assert!(output.stdout.is_empty());
    assert!(holder.finish().0.success());
}

/// `--replace`: the holder's command gets SIGTERM, the holder releases and exits with 77, and
/// the new command starts only after the old one's end mark (the old one takes a second to
/// stop: a replace that did not wait for it would start inside that second).
#[test]
fn replace_stops_the_holder_and_starts_after_its_end() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let old = redlock(&server.url())
        .args(["run", "-n", "r", "--ttl", "60s", "--", "sh", "-c"])
        .arg(
            "echo 'start old' >> log; trap \"sleep 1; echo 'end old' >> log; exit 143\" TERM; \
             while :; do echo 'alive old' >> log; sleep 0.1; done",
        )
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_until("the old command runs", || {
        std::fs::read_to_string(dir.path().join("log")).is_ok_and(|log| log.contains("start old"))
    });
    let new = redlock(&server.url())
        .args(["run", "-n", "r", "--replace", "--", "sh", "-c"])
        .arg("echo 'start new' >> log; echo 'end new' >> log")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        new.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&new.stderr)
    );
    let old = old.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&old.stderr);
    assert_eq!(old.status.code(), Some(code::REPLACED), "{stderr}");
    assert!(
        stderr.contains("redlock: exiting with 77: replaced by another run (--replace)"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let end_old = log.find("end old").expect(&log);
    let start_new = log.find("start new").expect(&log);
    assert!(end_old < start_new, "{log}");
    assert!(!log[start_new..].contains("alive old"), "{log}");
}

/// A holder that cannot answer (its redlock frozen) is waited out, not overlapped: the kernel's
/// dead-man kills it and its guard the command before its lease ends, and only then does the
/// replacing run take the lock.
#[test]
fn replace_waits_out_a_holder_that_cannot_answer() {
    let server = RedisServer::start();
    let holder = Holder::start(
        &server.url(),
        &["-n", "fz", "--ttl", "10s", "--kill-after", "1s"],
    );
    let command = holder.command_pid();
    nix::sys::signal::kill(holder.redlock_pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
    let frozen = Instant::now();
    // Alive means running: a killed command may stay a zombie a moment (state Z).
    let check = format!(
        "state=$(cut -d' ' -f3 /proc/{command}/stat 2>/dev/null); \
         [ -n \"$state\" ] && [ \"$state\" != Z ] && echo OVERLAP; echo new"
    );
    let output = redlock(&server.url())
        .args([
            "run",
            "-n",
            "fz",
            "--replace",
            "--wait",
            "30s",
            "--",
            "sh",
            "-c",
            &check,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(output.stdout, b"new\n", "{stderr}");
    // Not after the 1 s + 2 s it waits for an answer: after the lease, which was extended
    // (every 3.3 s) at most 3.3 s before the freeze and ran 10 s from then.
    assert!(
        frozen.elapsed() >= Duration::from_secs(5),
        "{:?}",
        frozen.elapsed()
    );
}

/// A busy message says when the holder's --timeout ends.
#[test]
fn a_busy_message_says_when_the_holder_s_timeout_ends() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "tl", "--timeout", "10m"]);
    let stderr = exits_with(
        redlock(&server.url()).args(["run", "-n", "tl", "--", "true"]),
        code::BUSY,
    );
    assert!(stderr.contains("; its --timeout ends in 9m"), "{stderr}");
    assert!(holder.finish().0.success());
}

/// A process that has the outer run's token but left its command's process group (`setsid`, as
/// a daemon does) is not inside it: the outer run would not stop it, so it does not run under
/// the outer lease (it is busy).
#[test]
fn a_run_outside_the_outer_command_s_group_does_not_nest() {
    let server = RedisServer::start();
    let redlock_path = env!("CARGO_BIN_EXE_redlock");
    let inner = format!(
        "setsid '{redlock_path}' run --redis {} -n out -- echo inner; echo \"inner status $?\"",
        server.url()
    );
    let output = redlock(&server.url())
        .args(["run", "-n", "out", "--", "sh", "-c", &inner])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "inner status 75\n");
}

/// A waiter that saw the lock held, and then finds the servers unreachable, does not run its
/// command without the lock: the holder is alive as far as it knows (69, nothing run).
#[test]
fn on_unavailable_run_does_not_run_after_the_lock_was_seen_held() {
    let server = RedisServer::start();
    let holder = Holder::start(&server.url(), &["-n", "seen", "--ttl", "3s"]);
    // The servers are tried again until --wait ends (issue 24): 60s made this test wait a
    // minute for the 69 that 5s gives as well.
    let waiter = redlock(&server.url())
        .args([
            "run",
            "-n",
            "seen",
            "--wait",
            "5s",
            "--on-unavailable",
            "run",
        ])
        .args(["--", "echo", "ran"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "seen");
    server.freeze();
    let output = waiter.wait_with_output().unwrap();
    server.thaw();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE), "{stderr}");
    assert!(output.stdout.is_empty(), "{stderr}");
    drop(holder);
}

/// Servers that answered are not unreachable: a key of another type in the way, or one server
/// that says the lock is held while the others cannot be reached, is 69 without running the
/// command, whatever `--on-unavailable` says.
#[test]
fn on_unavailable_is_not_triggered_by_servers_that_answered() {
    let server = RedisServer::start();
    let _: () = server.cmd(&["RPUSH", &keys("w").lock, "x"]);
    let output = redlock(&server.url())
        .args([
            "run",
            "-n",
            "w",
            "--on-unavailable",
            "run",
            "--",
            "echo",
            "ran",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE), "{stderr}");
    assert!(
        stderr.contains("a key of another type is in the way"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "{stderr}");

    let _: () = server.cmd(&["SET", &keys("h").lock, "another-run", "PX", "60000"]);
    let nothing: Vec<String> = (0..2)
        .map(|_| {
            let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("redis://127.0.0.1:{}", down.local_addr().unwrap().port())
        })
        .collect();
    let urls = format!("{},{}", server.url(), nothing.join(","));
    for policy in ["run", "skip"] {
        let output = redlock(&urls)
            .args(["run", "-n", "h", "--on-unavailable", policy])
            .args(["--", "echo", "ran"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(code::UNAVAILABLE),
            "{policy}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{stderr}");
    }
}

/// When redlock gives its place to the command (`--on-unavailable run`, a nested run), a
/// script without a `#!` line still runs with /bin/sh, as it does under the lock.
#[test]
fn a_script_without_a_shebang_line_runs_in_redlock_s_place() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("job");
    std::fs::write(&script, "echo \"job ${REDLOCK_UNLOCKED:-locked}\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nothing = format!("redis://127.0.0.1:{}", down.local_addr().unwrap().port());
    drop(down);
    let unlocked = succeeded(
        redlock(&nothing)
            .args(["run", "-n", "j", "--on-unavailable", "run", "--"])
            .arg(&script),
    );
    assert_eq!(unlocked, b"job 1\n");
    let nested = format!(
        "'{}' run -n j -- '{}'",
        env!("CARGO_BIN_EXE_redlock"),
        script.display()
    );
    let output =
        succeeded(redlock(&server.url()).args(["run", "-n", "j", "--", "sh", "-c", &nested]));
    assert_eq!(output, b"job locked\n");
    // One lease only: the inner run was nested.
    assert_eq!(server.cmd::<i64>(&["GET", &keys("j").fence]), 1);
}
