//! Least privilege (docs/security.md): a Redis user made by exactly the `ACL SETUSER` line of
//! the documentation runs every subcommand and feature; with any one command of that line taken
//! away, the step that needs it fails (or warns) with a message that names the command.

use std::path::Path;

use crate::support::{Holder, RedisServer, code, exits_with, keys, primary_with_replica, redlock};

const PASSWORD: &str = "acl-test-pw";

/// The rule of docs/security.md: the words after `ACL SETUSER redlock`, with the password.
fn documented_rule() -> Vec<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/security.md"))
            .unwrap();
    let line = doc
        .lines()
        .find(|line| line.starts_with("ACL SETUSER redlock "))
        .expect("docs/security.md has the ACL SETUSER line");
    line.split_whitespace()
        .skip(3)
        .map(|word| match word {
            ">CHANGE-ME" => format!(">{PASSWORD}"),
            word => word.to_string(),
        })
        .collect()
}

/// Whether `server` is Redis 6, which has no sharded pub/sub.
fn before_7(server: &RedisServer) -> bool {
    server
        .cmd::<String>(&["INFO", "server"])
        .contains("redis_version:6.")
}

/// A command of the rule as a server `before_7` has it: `publish` and `subscribe` instead of
/// their sharded forms, as docs/security.md says.
fn as_on(before_7: bool, command: &str) -> &str {
    match command {
        "spublish" if before_7 => "publish",
        "ssubscribe" if before_7 => "subscribe",
        "pubsub|shardnumsub" if before_7 => "pubsub|numsub",
        command => command,
    }
}

/// (Re)makes the user `redlock` with `rule` (as `as_on` the server) and `extra` on `server`.
fn make_user(server: &RedisServer, rule: &[String], extra: &[&str]) {
    server.cmd::<i64>(&["ACL", "DELUSER", "redlock"]);
    let six = before_7(server);
    let rule: Vec<String> = (rule.iter())
        .map(|word| match word.strip_prefix('+') {
            Some(command) => format!("+{}", as_on(six, command)),
            None => word.clone(),
        })
        .collect();
    let mut args = vec!["ACL", "SETUSER", "redlock"];
    args.extend(rule.iter().map(String::as_str));
    args.extend(extra);
    server.cmd::<()>(&args);
}

/// A redlock command as that user; its status and stderr.
fn as_user(server: &RedisServer, args: &[&str]) -> (Option<i32>, String) {
    let url = format!("redis://redlock:{PASSWORD}@127.0.0.1:{}", server.port);
    let output = redlock(&url).args(args).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn holder(server: &RedisServer, args: &[&str]) -> Holder {
    let url = format!("redis://redlock:{PASSWORD}@127.0.0.1:{}", server.port);
    Holder::start(&url, args)
}

/// The steps of a run's life, each as the user: (what it exercises, its status, its stderr).
/// `name` keeps each call's locks apart.
fn steps(server: &RedisServer, step: &str, name: &str) -> Vec<(Option<i32>, String)> {
    let run = |args: &[&str]| as_user(server, &[&["run", "-n", name][..], args].concat());
    match step {
        // Take a free lock, with a replica to confirm it, and release it.
        "run" => vec![run(&["--", "true"])],
        // Extend the lease: seven extensions are due.
        "extend" => vec![run(&["--heartbeat", "200ms", "--", "sleep", "1.5"])],
        "busy" | "wait" | "ask" | "replace" => {
            let mut held = holder(server, &["-n", name, "--ttl", "60s"]);
            let said = match step {
                "busy" => vec![
                    run(&["--", "true"]),
                    as_user(server, &["status", "-n", name]),
                ],
                "wait" => vec![run(&["--wait", "1s", "--", "true"])],
                "ask" => vec![as_user(server, &["release", "-n", name, "--force"])],
                _ => vec![run(&["--replace", "--wait", "10s", "--", "true"])],
            };
            drop(held.finish());
            said
        }
        // A semaphore's release looks for its other holders.
        "semaphore" => vec![run(&["--limit", "2", "--", "true"])],
        // A shared run alone; then one that lets an exclusive waiter go first, while another
        // shared run holds the lock.
        "shared" => {
            let mut said = vec![run(&["--shared", "--", "true"])];
            // Refused (its release left to expire, said): the rest would only fail on it.
            if said[0].0 != Some(0) || said[0].1.contains("(an ACL)") {
                return said;
            }
            let mut held = holder(server, &["-n", name, "--shared", "--ttl", "60s"]);
            let url = format!("redis://redlock:{PASSWORD}@127.0.0.1:{}", server.port);
            let wait = |shared: &[&str]| {
                redlock(&url)
                    .args(["run", "-n", name, "--wait", "20s"])
                    .args(shared)
                    .args(["--", "true"])
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            let mut connection = server.connection();
            let mut listening = |count| {
                crate::support::wait_until("the waiters listen", || {
                    crate::support::waiters_listening(&mut connection, name) == count
                });
            };
            let exclusive = wait(&[]);
            listening(1);
            let shared = wait(&["--shared"]);
            // It lets the exclusive waiter go first (or fails, naming what it may not run).
            crate::support::wait_until("the shared run has asked", || {
                server.cmd::<usize>(&["ZCARD", &keys(name).waiters]) == 2
                    || crate::support::is_dead(shared.id() as i32)
            });
            drop(held.finish());
            for child in [exclusive, shared] {
                let output = child.wait_with_output().unwrap();
                said.push((
                    output.status.code(),
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                ));
            }
            said
        }
        // The second run's entry trims a history of one.
        "trim" => vec![
            run(&["--history", "1", "--", "true"]),
            run(&["--history", "1", "--", "true"]),
        ],
        "history" => vec![as_user(server, &["history", "--name", name])],
        "list" => vec![as_user(server, &["list"])],
        other => panic!("no step {other}"),
    }
}

/// The step that needs each command of the rule.
fn step_of(command: &str) -> &'static str {
    match command {
        "pttl" | "hmget" | "type" => "busy",
        "exists" => "semaphore",
        "ltrim" => "trim",
        "zadd" | "ssubscribe" => "wait",
        "zscore" | "zrangebyscore" | "zcard" | "hdel" | "pexpireat" | "pubsub|shardnumsub" => {
            "shared"
        }
        "hget" => "ask",
        "zrange" => "replace",
        "lrange" => "history",
        "scan" | "cluster|slots" => "list",
        _ => "run",
    }
}

#[test]
fn the_documented_user_runs_everything() {
    let (primary, _replica) = primary_with_replica();
    make_user(&primary, &documented_rule(), &[]);
    let mut said = Vec::new();
    for step in ["run", "extend", "history", "list", "shared"] {
        said.extend(steps(&primary, step, "all"));
    }
    // A waiter handed the lock, a replacing run, a break, a semaphore, --min-hold.
    let mut held = holder(&primary, &["-n", "w"]);
    let url = format!("redis://redlock:{PASSWORD}@127.0.0.1:{}", primary.port);
    let waiter = std::thread::spawn(move || {
        let output = redlock(&url)
            .args(["run", "-n", "w", "--wait", "20s", "--", "true"])
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    });
    crate::support::wait_until("the waiter queues", || {
        primary.cmd::<usize>(&["ZCARD", &keys("w").waiters]) == 1
    });
    said.push(as_user(&primary, &["status", "-n", "w"]));
    said.push(as_user(
        &primary,
        &["run", "-n", "w", "--replace", "--wait", "20s", "--", "true"],
    ));
    assert_eq!(held.wait().0.code(), Some(code::REPLACED));
    said.push(waiter.join().unwrap());
    let mut broken = holder(&primary, &["-n", "b"]);
    said.push(as_user(&primary, &["release", "-n", "b", "--force"]));
    assert_eq!(broken.wait().0.code(), Some(code::LOCK_LOST));
    said.push(as_user(
        &primary,
        &[
            "run",
            "-n",
            "s",
            "--limit",
            "2",
            "--min-hold",
            "100ms",
            "--",
            "true",
        ],
    ));
    for (status, stderr) in &said {
        assert_eq!(*status, Some(0), "{stderr}");
        assert!(!stderr.contains("ACL"), "{stderr}");
    }
    assert_eq!(said.len(), 12);
    // Another database needs +select, as the doc says, and the refusal names it.
    let url = format!("redis://redlock:{PASSWORD}@127.0.0.1:{}/1", primary.port);
    let stderr = exits_with(
        redlock(&url).args(["run", "-n", "db1", "--", "true"]),
        code::UNAVAILABLE,
    );
    assert!(stderr.contains("may not run SELECT"), "{stderr}");
}

/// `--key` with the documented additions: the key's companions, and its keyspace channel for
/// a waiter.
#[test]
fn the_documented_user_with_a_key() {
    let server = RedisServer::start();
    let rule = documented_rule();
    let extra = [
        "~app-lock",
        "~{app-lock}:*",
        "&{app-lock}:*",
        "+subscribe",
        "&__keyspace@0__:app-lock",
    ];
    make_user(&server, &rule, &extra);
    let mut held = holder(&server, &["--key", "app-lock"]);
    let (status, stderr) = as_user(
        &server,
        &["run", "--key", "app-lock", "--wait", "1s", "--", "true"],
    );
    assert_eq!(status, Some(code::BUSY), "{stderr}");
    assert!(!stderr.contains("ACL"), "{stderr}");
    assert!(held.finish().0.success());
    let (status, stderr) = as_user(&server, &["status", "--key", "app-lock"]);
    assert_eq!(status, Some(1), "{stderr}");
    // Without the optional keyspace channel: a waiter retries, and says nothing of it.
    make_user(&server, &rule, &extra[..3]);
    let mut held = holder(&server, &["--key", "app-lock"]);
    let (status, stderr) = as_user(
        &server,
        &["run", "--key", "app-lock", "--wait", "1s", "--", "true"],
    );
    assert_eq!(
        (status, stderr.contains("warning")),
        (Some(code::BUSY), false),
        "{stderr}"
    );
    assert!(held.finish().0.success());
}

/// Each command of the rule, taken away, fails the step that needs it (or the part of it:
/// the release, a subscription), naming it.
#[test]
fn each_command_less_is_named() {
    let (primary, _replica) = primary_with_replica();
    let rule = documented_rule();
    let commands: Vec<String> = rule
        .iter()
        .filter_map(|word| word.strip_prefix('+'))
        .map(str::to_string)
        .collect();
    assert!(commands.len() >= 25, "{rule:?}");
    let six = before_7(&primary);
    for (i, command) in commands.iter().enumerate() {
        let without: Vec<String> = rule
            .iter()
            .filter(|word| word.strip_prefix('+') != Some(command))
            .cloned()
            .collect();
        make_user(&primary, &without, &[]);
        if command == "eval" {
            // Scripts go by hash, and in full (EVAL) only to a server that lacks them.
            primary.cmd::<()>(&["SCRIPT", "FLUSH"]);
        }
        let said = steps(&primary, step_of(command), &format!("less{i}"));
        let command = as_on(six, command);
        // Redis 6.2 names a subcommand's command only (CLUSTER for cluster|slots).
        let command = command.split('|').next().unwrap_or_default();
        let named = format!("may not run {}", command.to_ascii_uppercase());
        // A step fails, or a part of it does (a release left to expire, a subscription or the
        // queue's move refused): said, naming the command.
        assert!(
            said.iter().any(|(_, stderr)| stderr.contains(&named)),
            "without {command}: {said:?}"
        );
    }
}
