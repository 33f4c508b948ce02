//! --wait: take over on a release notice, give up at the deadline, never overlap.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{
    Holder, RedisServer, code, contend, expiring_keys, keys, redlock, script_calls,
    takes_over_on_release, wait_for_subscriber, wait_until, waiter, waiters_listening,
};

#[test]
fn a_waiter_takes_over_on_release_not_on_expiry() {
    let server = RedisServer::start();
    // The holder's lease is 60 s: a waiter that only retried on expiry would wait that long.
    let mut holder = Holder::start(&server.url(), &["-n", "w", "--ttl", "60s"]);
    let dir = tempfile::tempdir().unwrap();
    let waiter = waiter(&server.url(), "w", dir.path());
    // The waiter is subscribed once Redis counts a subscriber on the lock's channel.
    wait_for_subscriber(&server, "w");
    takes_over_on_release(&mut holder, waiter, dir.path());
}

#[test]
fn wait_times_out_with_busy() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "w"]);
    let started = Instant::now();
    let output = redlock(&server.url())
        .args(["run", "-n", "w", "--wait", "1s", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(output.status.code(), Some(code::BUSY));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("redlock: gave up after 1.0s: lock 'w' is held by "),
        "{stderr}"
    );
    // It left the queue: a release will not name it.
    assert_eq!(server.cmd::<i64>(&["ZCARD", &keys("w").waiters]), 0);
    holder.finish();
}

#[test]
fn waiting_for_an_expiring_lock_succeeds() {
    let server = RedisServer::start();
    // A crashed holder: no release notice will come, only the expiry.
    let _: () = server.cmd(&["SET", &keys("crashed").lock, "dead-holder", "PX", "500"]);
    let output = redlock(&server.url())
        .args(["run", "-n", "crashed", "--wait", "30s", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"ran\n");
}

/// 6 shell loops × 15 runs on one name: the critical sections never overlap, and each sees a
/// larger fencing token than the one before it.
#[test]
fn concurrent_loops_never_overlap_and_fences_increase() {
    let server = RedisServer::start();
    contend(&server.url(), 6, 15);
    assert!(expiring_keys(&server).is_empty());
}

/// An idle waiter sleeps on the release channel: while the holder's lease runs it sends nothing.
#[test]
fn an_idle_waiter_sends_no_commands() {
    let server = RedisServer::start();
    // A 60 s lease extended every 20 s: no extension falls in the window below either.
    let mut holder = Holder::start(&server.url(), &["-n", "idle", "--ttl", "60s"]);
    let mut waiter = redlock(&server.url())
        .args(["run", "-n", "idle", "--wait", "5m", "--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "idle");
    // The holder's acquire, its check once it listens on its control channel, the waiter's
    // first try, and its try once subscribed.
    wait_until("the waiter has tried twice", || script_calls(&server) == 4);
    // The observation window: any polling at all would show up within 2 s.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(script_calls(&server), 4, "the idle waiter sent commands");
    assert!(holder.finish().0.success());
    assert!(waiter.wait().unwrap().success());
}

/// The waiter's own subscription logs in as its lock requests do: password and database.
#[test]
fn a_waiter_on_a_protected_database_takes_over_on_release() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/2", server.port);
    let mut holder = Holder::start(&url, &["-n", "pw", "--ttl", "60s"]);
    let dir = tempfile::tempdir().unwrap();
    let waiter = waiter(&url, "pw", dir.path());
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    wait_until("the waiter subscribes", || {
        waiters_listening(&mut admin, "pw") == 1
    });
    takes_over_on_release(&mut holder, waiter, dir.path());
}

/// A waiter that joins the queue of lock `name`: it records its token in `dir/NAME.token` when
/// it gets the lock. Returns it once the server counts it among the waiters (`queued` of them).
fn queued_waiter(
    server: &RedisServer,
    dir: &std::path::Path,
    label: &str,
    queued: usize,
) -> std::process::Child {
    let waiter = redlock(&server.url())
        .args(["run", "-n", "q", "--wait", "120s", "--", "sh", "-c"])
        .arg(format!("echo $REDLOCK_TOKEN > {label}.token"))
        .current_dir(dir)
        .spawn()
        .unwrap();
    wait_until("the waiter is queued", || {
        server.cmd::<usize>(&["ZCARD", &keys("q").waiters]) == queued
    });
    let mut connection = server.connection();
    wait_until("the waiter is subscribed", || {
        waiters_listening(&mut connection, "q") == queued
    });
    waiter
}

/// A listener of our own on `channels`, sharded where the server has it (Redis 7+).
fn spy_on(server: &RedisServer, channels: &[String]) -> redis::Connection {
    let mut spy = server.connection();
    for channel in channels {
        if redis::cmd("SSUBSCRIBE")
            .arg(channel)
            .exec(&mut spy)
            .is_err()
        {
            redis::cmd("SUBSCRIBE").arg(channel).exec(&mut spy).unwrap();
        }
    }
    spy
}

/// Whether the spy hears nothing more within 200 ms: notices come within a millisecond of
/// the script that published them, which has run by then.
fn hears_nothing(spy: &mut redis::Connection) -> bool {
    spy.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    spy.recv_response().is_err()
}

/// The next (channel, payload) the spy heard.
fn heard(spy: &mut redis::Connection) -> (String, String) {
    let message: Vec<String> = redis::from_redis_value(spy.recv_response().unwrap()).unwrap();
    assert!(
        message[0] == "smessage" || message[0] == "message",
        "{message:?}"
    );
    (message[1].clone(), message[2].clone())
}

/// Waiters queue in the order they came. A release wakes the first of them on its own channel,
/// and no other: the next is told whom the lock went to (it tries itself should that one not
/// take it), and the others hear nothing. Before, every release and every take-over was
/// published to every waiter.
#[test]
fn a_release_wakes_the_first_waiter_and_tells_the_next_no_other() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::start(&server.url(), &["-n", "q", "--ttl", "60s"]);
    let mut waiters: Vec<_> = (0..4)
        .map(|i| queued_waiter(&server, dir.path(), &format!("w{i}"), i + 1))
        .collect();
    // Each waiter's entry in the queue is the channel it listens on, its own.
    let queue: Vec<String> = server.cmd(&["ZRANGE", &keys("q").waiters, "0", "-1"]);
    let mut connection = server.connection();
    for entry in &queue {
        assert_eq!(
            crate::support::listeners(&mut connection, entry),
            1,
            "{entry}"
        );
    }
    // The queue outlives a waiter that is killed by an hour at most.
    let ttl: i64 = server.cmd(&["PTTL", &keys("q").waiters]);
    assert!(ttl > 0 && ttl <= 3_600_000, "{ttl}");
    let mut spy = spy_on(&server, &queue);
    let mut shared = spy_on(&server, &[keys("q").channel]);
    assert!(holder.finish().0.success());
    for waiter in &mut waiters {
        assert!(waiter.wait().unwrap().success());
    }
    let token = |label: &str| {
        std::fs::read_to_string(dir.path().join(format!("{label}.token")))
            .unwrap()
            .trim()
            .to_string()
    };
    let came: Vec<String> = (0..4)
        .map(|i| keys("q").wake(&token(&format!("w{i}"))))
        .collect();
    assert_eq!(queue, came, "queued in the order they came");
    // Each release: the first is woken (no payload), the next told whom it went to.
    let mut expected = Vec::new();
    for (i, first) in queue.iter().enumerate() {
        expected.push((first.clone(), String::new()));
        if let Some(next) = queue.get(i + 1) {
            expected.push((next.clone(), first.clone()));
        }
    }
    let got: Vec<_> = expected.iter().map(|_| heard(&mut spy)).collect();
    assert_eq!(got, expected);
    // Nothing more, and nothing on the shared channel.
    assert!(hears_nothing(&mut spy), "a notice more");
    assert!(hears_nothing(&mut shared), "a notice to every waiter");
    // Each left the queue with the lock: nothing is left behind.
    assert!(expiring_keys(&server).is_empty());
}

/// Waiters that are gone (killed: their subscriptions closed) are passed over: the release
/// wakes the first one still listening. Without that, the one after them would wait for the
/// holder's lease (60 s here) to run out.
#[test]
fn a_release_passes_over_waiters_that_are_gone() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::start(&server.url(), &["-n", "q", "--ttl", "60s"]);
    let mut gone: Vec<_> = (0..2)
        .map(|i| queued_waiter(&server, dir.path(), &format!("gone{i}"), i + 1))
        .collect();
    let mut last = queued_waiter(&server, dir.path(), "last", 3);
    let mut connection = server.connection();
    for waiter in &mut gone {
        waiter.kill().unwrap();
        waiter.wait().unwrap();
    }
    wait_until("the killed waiters' subscriptions close", || {
        waiters_listening(&mut connection, "q") == 1
    });
    let released = Instant::now();
    assert!(holder.finish().0.success());
    assert!(last.wait().unwrap().success());
    // Milliseconds normally; 20 s only rules out waiting for the holder's 60 s lease.
    assert!(released.elapsed() < Duration::from_secs(20));
    assert!(dir.path().join("last.token").exists());
    assert_eq!(server.cmd::<usize>(&["ZCARD", &keys("q").waiters]), 0);
}

/// A queue entry that is not a waiter's channel (an older redlock queued its token) is dropped
/// unheard: publishing on a name outside the lock's slot would fail the release on a cluster.
/// The waiter after it is woken.
#[test]
fn a_release_drops_a_queue_entry_that_is_not_a_waiters_channel() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::start(&server.url(), &["-n", "q", "--ttl", "60s"]);
    let mut waiter = queued_waiter(&server, dir.path(), "w", 1);
    let _: () = server.cmd(&["ZADD", &keys("q").waiters, "0", "0123abcd"]);
    let mut spy = spy_on(&server, &["0123abcd".to_string()]);
    assert!(holder.finish().0.success());
    assert!(waiter.wait().unwrap().success());
    assert!(hears_nothing(&mut spy), "a notice on an older entry");
    assert_eq!(server.cmd::<usize>(&["ZCARD", &keys("q").waiters]), 0);
}

/// A named waiter that cannot take the lock (stopped here) holds up the others only briefly:
/// without a notice for a moment, they try.
#[test]
fn a_stopped_first_waiter_does_not_hold_up_the_others() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::start(&server.url(), &["-n", "q", "--ttl", "60s"]);
    let mut first = queued_waiter(&server, dir.path(), "first", 1);
    let mut second = queued_waiter(&server, dir.path(), "second", 2);
    let first_pid = nix::unistd::Pid::from_raw(first.id() as i32);
    nix::sys::signal::kill(first_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let released = Instant::now();
    assert!(holder.finish().0.success());
    assert!(second.wait().unwrap().success());
    // Milliseconds normally; 20 s only rules out waiting for the holder's 60 s lease.
    assert!(released.elapsed() < Duration::from_secs(20));
    assert!(!dir.path().join("first.token").exists());
    nix::sys::signal::kill(first_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(first.wait().unwrap().success());
    assert!(dir.path().join("first.token").exists());
}

/// `n` waiters queued behind a holder, each to run `sleep 0.02` once: the requests to take,
/// extend or release the lock (the scripts) the server runs per run, from the holder's release
/// to the last waiter's exit.
fn commands_per_run(n: usize) -> f64 {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = Holder::start(&url, &["-n", "herd", "--ttl", "60s"]);
    let waiters: Vec<_> = (0..n)
        .map(|_| {
            redlock(&url)
                .args(["run", "-n", "herd", "--wait", "120s", "--", "sleep", "0.02"])
                .spawn()
                .unwrap()
        })
        .collect();
    let mut connection = server.connection();
    wait_until("every waiter is queued and subscribed", || {
        waiters_listening(&mut connection, "herd") == n
            && server.cmd::<i64>(&["ZCARD", &keys("herd").waiters]) == n as i64
    });
    let before = script_calls(&server);
    assert!(holder.finish().0.success());
    for mut waiter in waiters {
        assert!(waiter.wait().unwrap().success());
    }
    (script_calls(&server) - before) as f64 / n as f64
}

/// The herd: while the waiter a release names is served, the others sleep on (it says when it
/// took the lock) instead of trying every 20 ms, so a hand-over costs the same with 32 waiters
/// as with 4. Counted, not timed: before, each run cost O(N) commands (237 per run at N = 64).
#[test]
fn a_queue_of_32_costs_no_more_per_run_than_a_queue_of_4() {
    let four = commands_per_run(4);
    let many = commands_per_run(32);
    eprintln!("scripts per run: {four:.1} with 4 waiters, {many:.1} with 32");
    assert!(
        many <= 2.0 * four,
        "{many:.1} per run with 32 waiters, {four:.1} with 4"
    );
}
