//! Several independent servers: the lock needs a majority of them (the Redlock algorithm).

use std::time::{Duration, Instant};

use crate::support::{
    Holder, RedisServer, code, contend, expiring_keys, is_dead, keys, redlock, scripts_in_a_second,
    start_servers, takes_over_on_release, urls, wait_for_subscriber, wait_held_everywhere,
    wait_until, waiter, waiters_listening,
};

fn lock_value(server: &RedisServer, name: &str) -> Option<String> {
    server.cmd(&["GET", &format!("redlock:{{{name}}}")])
}

#[test]
fn three_and_five_servers_hold_the_lock_on_every_server() {
    for n in [3, 5] {
        let servers = start_servers(n);
        let url = urls(&servers);
        let mut holder = Holder::start(&url, &["-n", "many"]);
        // redlock goes ahead on a majority; the others follow a moment later.
        wait_until("the lock is on the first server", || {
            lock_value(&servers[0], "many").is_some()
        });
        let token = lock_value(&servers[0], "many").unwrap();
        for server in &servers {
            wait_until("the lock is on every server", || {
                lock_value(server, "many").as_deref() == Some(token.as_str())
            });
        }
        let output = redlock(&url)
            .args(["run", "-n", "many", "--", "echo", "ran"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(code::BUSY), "{n} servers");
        assert!(output.stdout.is_empty());
        assert!(holder.finish().0.success());
        // The release returns once a majority has it; the others run it a moment later.
        for server in &servers {
            wait_until("every server released", || {
                lock_value(server, "many").is_none() && expiring_keys(server).is_empty()
            });
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Free,
    Taken,
    Frozen,
}

/// Every way of taking or freezing some of three servers: the lock is acquired exactly when a
/// majority is free, and a failed attempt leaves nothing of ours behind.
#[test]
fn quorum_mask_over_three_servers() {
    let servers = start_servers(3);
    let url = urls(&servers);
    let states = [State::Free, State::Taken, State::Frozen];
    for a in states {
        for b in states {
            for c in states {
                let mask = [a, b, c];
                for (server, state) in servers.iter().zip(mask) {
                    let _: () = server.cmd(&["FLUSHALL"]);
                    if state == State::Taken {
                        let _: () =
                            server.cmd(&["SET", &keys("mask").lock, "foreign", "PX", "60000"]);
                    }
                }
                for (server, state) in servers.iter().zip(mask) {
                    if state == State::Frozen {
                        server.freeze();
                    }
                }
                let output = redlock(&url)
                    .args(["run", "-n", "mask", "--ttl", "2s", "--", "echo", "ran"])
                    .output()
                    .unwrap();
                for server in &servers {
                    server.thaw();
                }
                let free = mask.iter().filter(|s| **s == State::Free).count();
                let stderr = String::from_utf8_lossy(&output.stderr);
                if free >= 2 {
                    assert_eq!(output.status.code(), Some(0), "{mask:?}: {stderr}");
                    assert_eq!(output.stdout, b"ran\n");
                } else {
                    let taken = mask.iter().filter(|s| **s == State::Taken).count();
                    let expected = if taken >= 2 || (taken == 1 && free == 1) {
                        75
                    } else {
                        69
                    };
                    assert_eq!(output.status.code(), Some(expected), "{mask:?}: {stderr}");
                    assert!(output.stdout.is_empty(), "{mask:?}: the command ran");
                    assert!(stderr.starts_with("redlock: "), "{stderr}");
                    assert_eq!(stderr.lines().count(), 1, "{stderr}");
                }
                // Nothing of ours is left, also where a frozen server ran our request late: it
                // got the release after it, on the same connection, and runs both in one go,
                // so the lock is gone as soon as its counter moved (long before the TTL).
                for (server, state) in servers.iter().zip(mask) {
                    let expected = (state == State::Taken).then(|| "foreign".to_string());
                    if state == State::Frozen {
                        wait_until("the late acquire runs", || {
                            server
                                .cmd::<Option<i64>>(&["GET", &keys("mask").fence])
                                .is_some()
                        });
                        assert_eq!(lock_value(server, "mask"), expected, "{mask:?}");
                    } else {
                        wait_until("only foreign locks are left", || {
                            lock_value(server, "mask") == expected
                        });
                    }
                }
            }
        }
    }
}

#[test]
fn one_frozen_server_does_not_slow_the_lock_down() {
    let servers = start_servers(3);
    servers[2].freeze();
    let started = Instant::now();
    // With --ttl 30s a server may take 3 s to answer; waiting for the frozen one would show.
    let output = redlock(&urls(&servers))
        .args(["run", "-n", "fast", "--ttl", "30s", "--", "true"])
        .output()
        .unwrap();
    let took = started.elapsed();
    servers[2].thaw();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn too_few_servers_is_unavailable_and_names_them() {
    let servers = start_servers(1);
    let url = format!(
        "{},redis://127.0.0.1:1,redis://:secret@127.0.0.1:2",
        servers[0].url()
    );
    let output = redlock(&url)
        .args(["run", "-n", "x", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("redlock: cannot take the lock: only 1 of 3 Redis servers answered; "),
        "{stderr}"
    );
    assert!(
        stderr.contains("127.0.0.1:1: connection refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("127.0.0.1:2: connection refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
}

#[test]
fn a_frozen_majority_gets_the_command_killed_before_the_lease_ends() {
    let servers = start_servers(3);
    let ttl = Duration::from_secs(3);
    let mut holder = Holder::start(&urls(&servers), &["-n", "split", "--ttl", "3s"]);
    let command = holder.command_pid();
    let frozen = Instant::now();
    servers[0].freeze();
    servers[1].freeze();
    wait_until("the command is stopped", || is_dead(command));
    let stopped = frozen.elapsed();
    let (status, stderr) = holder.wait();
    servers[0].thaw();
    servers[1].thaw();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(stopped < ttl, "the command outlived its lease: {stopped:?}");
}

#[test]
fn a_frozen_minority_does_not_disturb_the_holder() {
    let servers = start_servers(3);
    let mut holder = Holder::start(&urls(&servers), &["-v", "-n", "minority", "--ttl", "1s"]);
    servers[2].freeze();
    // Three leases' worth of time: the lease must be extended on the other two all along.
    std::thread::sleep(Duration::from_secs(3));
    let (status, stderr) = holder.finish();
    servers[2].thaw();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.matches("redlock: extended the lease").count() >= 6,
        "{stderr}"
    );
    assert!(!stderr.contains("lost"), "{stderr}");
}

/// Documented behaviour: a server that restarts without its data has forgotten our lock. If that
/// leaves us without a majority, the lease is lost and the command is stopped.
#[test]
fn a_server_restarted_empty_under_a_bare_majority_loses_the_lock() {
    let mut servers = start_servers(3);
    // The third server is someone else's, so we hold exactly the first two.
    let _: () = servers[2].cmd(&["SET", &keys("bare").lock, "foreign", "PX", "60000"]);
    let mut holder = Holder::start(&urls(&servers), &["-n", "bare", "--ttl", "3s"]);
    let command = holder.command_pid();
    servers[1].restart_empty();
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(
        stderr.contains("lock lost: the lock was deleted or taken by another holder"),
        "{stderr}"
    );
    assert!(is_dead(command));
}

/// The fencing token keeps increasing while a different server is down for each run: the
/// largest counter is written back to a majority before the command gets it.
#[test]
fn fences_increase_while_servers_come_and_go() {
    let servers = start_servers(3);
    let url = urls(&servers);
    let mut last = 0;
    for round in 0..6 {
        let down = &servers[round % 3];
        down.freeze();
        // A frozen server may run our last acquire late, after we released elsewhere: that
        // stale copy blocks a majority until it expires, so wait for it.
        let output = redlock(&url)
            .args([
                "run",
                "-n",
                "fenced",
                "--ttl",
                "2s",
                "--wait",
                "30s",
                "--",
                "sh",
                "-c",
                "echo $REDLOCK_FENCE",
            ])
            .output()
            .unwrap();
        down.thaw();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let fence: u64 = String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(fence > last, "round {round}: fence {fence} after {last}");
        last = fence;
    }
}

/// 5 shell loops × 10 runs over 5 servers: never two at once, fences strictly increasing.
#[test]
fn contention_over_five_servers() {
    let servers = start_servers(5);
    contend(&urls(&servers), 5, 10);
    // The last release returns once a majority has it; the others run it a moment later. A
    // waiter that took the lock on a majority may stay queued on a server that was busy for
    // it (docs/design.md: until a release names it, or an hour): the queue is no lock.
    let locks = |server: &RedisServer| -> Vec<String> {
        let left = expiring_keys(server);
        left.into_iter()
            .filter(|key| !key.ends_with(":waiters"))
            .collect()
    };
    for server in &servers {
        let deadline = Instant::now() + crate::support::PATIENCE;
        while !locks(server).is_empty() {
            // Which key, should it stay: a lock, or its holder details (CI saw this once).
            assert!(
                Instant::now() < deadline,
                "not released on {}: {:?}",
                server.port,
                locks(server)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// --wait-replicas: a write only counts once the replica has it.
#[test]
fn wait_replicas_needs_the_replica() {
    let (primary, replica) = crate::support::primary_with_replica();
    let output = redlock(&primary.url())
        .args([
            "run",
            "-n",
            "replicated",
            "--wait-replicas",
            "1",
            "--",
            "echo",
            "ran",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    replica.freeze();
    let output = redlock(&primary.url())
        .args([
            "run",
            "-n",
            "replicated",
            "--ttl",
            "2s",
            "--wait-replicas",
            "1",
            "--",
            "echo",
            "ran",
        ])
        .output()
        .unwrap();
    replica.thaw();
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("only 0 of 1 replicas confirmed the write in time"),
        "{stderr}"
    );

    // A replica that stops confirming also fails the extensions: the lease is lost.
    let mut holder = Holder::start(
        &primary.url(),
        &["-n", "replicated", "--ttl", "2s", "--wait-replicas", "1"],
    );
    replica.freeze();
    let (status, stderr) = holder.wait();
    replica.thaw();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
}

/// With several servers, each is reached the way its URL says: a password and a database, a
/// Unix socket, a host name. A login or a socket that fails is named in the error.
#[test]
fn each_of_several_servers_is_reached_its_own_way() {
    let protected = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let local = RedisServer::start_with(&["--unixsocket", socket.to_str().unwrap()]);
    let named = RedisServer::start();
    let url = format!(
        "redis://:s3cret@127.0.0.1:{}/2,redis+unix://{},redis://localhost:{}",
        protected.port,
        socket.display(),
        named.port
    );
    let output = redlock(&url)
        .args(["run", "-n", "ways", "--", "echo", "ran"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(output.stdout, b"ran\n");
    // Every server counted the acquisition, the protected one in database 2 (redlock goes
    // ahead on a majority, and the last server may count it a moment later).
    let mut connection =
        redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/2", protected.port))
            .unwrap()
            .get_connection()
            .unwrap();
    wait_until("the protected server counted it", || {
        let fence: Option<i64> = redis::cmd("GET")
            .arg(&keys("ways").fence)
            .query(&mut connection)
            .unwrap();
        fence == Some(1)
    });
    for server in [&local, &named] {
        wait_until("the server counted it", || {
            server.cmd::<Option<i64>>(&["GET", &keys("ways").fence]) == Some(1)
        });
    }

    let wrong = format!(
        "redis://:wrong@127.0.0.1:{},redis+unix://{}/missing.sock,redis://localhost:{}",
        protected.port,
        dir.path().display(),
        named.port
    );
    let output = redlock(&wrong)
        .args(["run", "-n", "ways", "--", "echo", "ran"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE), "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("only 1 of 3 Redis servers answered"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot connect to Redis at 127.0.0.1:{}: authentication failed",
            protected.port
        )),
        "{stderr}"
    );
    assert!(stderr.contains("missing.sock: no such socket"), "{stderr}");
    // The one server that answered gave its lease back.
    assert_eq!(named.cmd::<i64>(&["EXISTS", &keys("ways").lock]), 0);
}

/// With a TLS server among several, each server gets a thread of its own (the other servers
/// are talked to over plain sockets from one thread otherwise): the TLS server counts towards
/// the majority like the others.
#[test]
fn a_tls_server_among_several() {
    let (secure, certs) = RedisServer::start_tls();
    let plain = start_servers(2);
    let url = format!("rediss://127.0.0.1:{},{}", secure.port, urls(&plain));
    // With one plain server frozen, the lock needs the TLS server's vote.
    plain[1].freeze();
    let output = redlock(&url)
        .env("SSL_CERT_FILE", certs.path().join("ca.crt"))
        .args(["run", "-n", "mixed", "--ttl", "5s", "--", "echo", "ran"])
        .output()
        .unwrap();
    plain[1].thaw();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(output.stdout, b"ran\n");
    assert_eq!(
        plain[0].cmd::<Option<i64>>(&["GET", &keys("mixed").fence]),
        Some(1)
    );
}

/// With a TLS server among them, a waiter hears of releases through a thread per server
/// (otherwise it reads the notices itself): it still takes over on the notice, not on expiry.
#[test]
fn a_waiter_with_a_tls_server_takes_over_on_release() {
    let (secure, _certs) = RedisServer::start_tls();
    let plain = start_servers(2);
    let url = format!(
        "rediss://127.0.0.1:{}/#insecure,{}",
        secure.port,
        urls(&plain)
    );
    // The holder's lease is 60 s: a waiter that only retried on expiry would wait that long.
    let mut holder = Holder::start(&url, &["-n", "tw", "--ttl", "60s"]);
    let dir = tempfile::tempdir().unwrap();
    let waiter = waiter(&url, "tw", dir.path());
    for server in &plain {
        wait_for_subscriber(server, "tw");
    }
    takes_over_on_release(&mut holder, waiter, dir.path());
}

/// A server that does not know the scripts (a restart, or SCRIPT FLUSH, forgets them) answers
/// NOSCRIPT to a script sent by hash. redlock returns once a majority has its release, so the
/// release is sent in full: a server answering late must not need a second try. Here the
/// frozen server gets the release while frozen, and frees the lock once it wakes, long before
/// the 60 s TTL.
#[test]
fn a_release_reaches_a_late_server_that_does_not_know_the_scripts() {
    let servers = start_servers(3);
    let mut holder = Holder::start(&urls(&servers), &["-n", "fresh", "--ttl", "60s"]);
    for server in &servers {
        wait_until("every server has the lock", || {
            lock_value(server, "fresh").is_some()
        });
        let _: () = server.cmd(&["SCRIPT", "FLUSH"]);
    }
    servers[2].freeze();
    let (status, stderr) = holder.finish();
    servers[2].thaw();
    assert!(status.success(), "{stderr}");
    for server in &servers {
        wait_until("every server released", || {
            lock_value(server, "fresh").is_none()
        });
    }
}

/// A server that answers late and does not know the scripts (a fresh or restarted one) still
/// ends up with the lock the others granted: the first request on a connection goes in full,
/// so it needs no second try, which nobody would be waiting to send.
#[test]
fn a_late_server_that_does_not_know_the_scripts_gets_the_lock_too() {
    let servers = start_servers(3);
    servers[2].freeze();
    // A 90 s TTL: the first extension, which would send a second try, comes after 30 s.
    let mut holder = Holder::start(&urls(&servers), &["-n", "late", "--ttl", "90s"]);
    servers[2].thaw();
    wait_until("the late server has the lock", || {
        lock_value(&servers[2], "late").is_some()
    });
    assert_eq!(
        lock_value(&servers[2], "late"),
        lock_value(&servers[0], "late")
    );
    assert!(holder.finish().0.success());
}

/// A server on a Unix socket that accepts no more connections (its queue is full) is refused at
/// once: it does not hold up the requests to the other servers.
#[test]
fn a_unix_socket_that_accepts_nothing_does_not_hold_up_the_others() {
    use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.sock");
    let listener = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    nix::sys::socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&listener),
        &UnixAddr::new(&path).unwrap(),
    )
    .unwrap();
    nix::sys::socket::listen(&listener, Backlog::new(0).unwrap()).unwrap();
    // Fill the queue, without blocking: nobody ever accepts.
    let mut queued = Vec::new();
    loop {
        let client = nix::sys::socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK,
            None,
        )
        .unwrap();
        let address = UnixAddr::new(&path).unwrap();
        if nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&client), &address).is_err() {
            break;
        }
        queued.push(client);
        assert!(queued.len() < 1000, "the queue never fills");
    }
    let servers = start_servers(2);
    let url = format!("{},redis+unix://{}", urls(&servers), path.display());
    let mut run = redlock(&url)
        .args(["run", "-n", "full", "--", "true"])
        .spawn()
        .unwrap();
    // Generous: the point is that it does not hang (a blocking connect would, for good).
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            run.kill().unwrap();
            let _ = run.wait();
            panic!("redlock hangs on a Unix socket that accepts nothing");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
}

/// A waiter whose tries a minority grants (one server lost the holder's key) gives that
/// minority back quietly: the give-back's release notice woke every waiter, itself included,
/// into trying again at once, thousands of times a second while the holder kept its majority.
#[test]
fn a_waiter_does_not_spin_on_its_own_give_backs() {
    let servers = start_servers(3);
    let url = urls(&servers);
    let mut holder = Holder::start(&url, &["-n", "spin"]);
    // Until then one lost key would leave the holder a minority, which the waiter takes.
    wait_held_everywhere(&servers, "spin");
    let _: () = servers[0].cmd(&["DEL", &keys("spin").lock]);
    let dir = tempfile::tempdir().unwrap();
    let waiting = waiter(&url, "spin", dir.path());
    wait_until("the waiter subscribes", || {
        servers
            .iter()
            .all(|s| waiters_listening(&mut s.connection(), "spin") == 1)
    });
    let scripts = scripts_in_a_second(&servers);
    // Nothing to try for until the holder's lease ends (30 s) or it releases. Allowed: a try
    // as late subscription confirmations come in (3 acquires and a give-back each) and the
    // holder's check once it listens (one per server); the spin was thousands.
    assert!(scripts <= 10, "{scripts} scripts in a second");
    takes_over_on_release(&mut holder, waiting, dir.path());
}
