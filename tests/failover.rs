//! Riding through the servers' faults (issue 22): a run that asked to `--wait` waits out a
//! Sentinel or Cluster failover instead of failing with 69, and a cluster's seed node that is
//! frozen is passed over. The failovers here are real: a primary SIGKILLed or frozen, its
//! replica promoted by the sentinels or by the cluster (`cluster-node-timeout 1000`).

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use crate::lost::{marking_holder, marking_waiter, overlaps};
use crate::support::cluster::Cluster;
use crate::support::sentinel::Sentinels;
use crate::support::{
    Holder, RedisServer, breaks_a_live_holder, code, primary_with_replica, redlock, start_servers,
    succeeded, urls, wait_for_holder, wait_until,
};

/// `count` runs of one name that each append a line to `out` in `dir`, waiting up to 30 s.
fn appenders(url: &str, name: &str, count: usize, dir: &std::path::Path) -> Vec<Child> {
    (0..count)
        .map(|i| {
            redlock(url)
                .args(["run", "-n", name, "--wait", "30s", "-v", "--", "sh", "-c"])
                .arg(format!("echo {i} >> out"))
                .current_dir(dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Every run exited 0 and ran its command once.
fn all_ran(runs: Vec<Child>, dir: &std::path::Path) {
    let count = runs.len();
    for run in runs {
        let Output { status, stderr, .. } = run.wait_with_output().unwrap();
        assert!(
            status.success(),
            "{status}: {}",
            String::from_utf8_lossy(&stderr)
        );
    }
    let out = std::fs::read_to_string(dir.join("out")).unwrap();
    assert_eq!(out.lines().count(), count, "{out}");
}

/// The Sentinel primary is SIGKILLed and five runs start at once with `--wait 30s`: they try
/// again (`retrying`) while the sentinels see it down and promote the replica, then all run.
/// Before: all five exited 69 within 0.02 s ("connection refused").
#[test]
fn runs_that_wait_ride_through_a_sentinel_failover() {
    let mut set = Sentinels::start();
    let dir = tempfile::tempdir().unwrap();
    set.primary.crash();
    let runs = appenders(&set.url(), "sfo", 5, dir.path());
    all_ran(runs, dir.path());
}

/// The cluster primary that owns the lock's slot is SIGKILLed; three runs through a seed that
/// lives start at once with `--wait 30s`: the seed sends them to the dead node until the
/// cluster has promoted its replica, and they ask the seed again each time. Before: all three
/// exited 69 at once, redirected to the dead node and never asking the seed again.
#[test]
fn runs_that_wait_ride_through_a_cluster_failover() {
    let mut cluster = Cluster::start_with(3, 1, 1000);
    let name = "cfo";
    let owner = cluster.owner(&format!("redlock:{{{name}}}")).port;
    let seed = cluster
        .nodes
        .iter()
        .find(|n| n.port != owner)
        .unwrap()
        .url();
    let dir = tempfile::tempdir().unwrap();
    let owner = cluster.nodes.iter_mut().find(|n| n.port == owner).unwrap();
    owner.crash();
    let runs = appenders(&seed, name, 3, dir.path());
    all_ran(runs, dir.path());
}

/// Seeds `redis://A,B,C` with A frozen and already failed over by the cluster: a run passes A
/// over (it accepts the connection and says nothing) and asks B. Before: every run exited 69
/// after its request time-out (3 s with the default TTL), and 6 s in all. The bound is
/// generous (a live seed answers in a millisecond; A is given 200 ms): it tells passing A over
/// from waiting it out.
#[test]
fn a_frozen_first_seed_is_passed_over() {
    let cluster = Cluster::start_with(3, 1, 1000);
    let frozen = &cluster.nodes[0];
    let replica = cluster.replica_of(frozen);
    frozen.freeze();
    cluster.wait_failed_over(replica, &[frozen.port]);
    let seeds: Vec<String> = cluster.nodes[..3]
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let url = format!("redis://{}", seeds.join(","));
    for name in ["f1", "f2", "f3"] {
        let began = Instant::now();
        succeeded(redlock(&url).args(["run", "-n", name, "--", "true"]));
        assert!(
            began.elapsed() < Duration::from_millis(2500),
            "{name} took {:?}",
            began.elapsed()
        );
    }
}

/// The ids of the connections subscribed to something on `server` (CLIENT LIST's `sub=` and
/// `ssub=` counts).
fn subscribers(server: &RedisServer) -> Vec<String> {
    let list: String = server.cmd(&["CLIENT", "LIST"]);
    list.lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| matches!(field.split_once('='), Some(("sub" | "ssub", n)) if n != "0"))
        })
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_string)
        .collect()
}

/// The holder's one subscription is dropped (`CLIENT KILL`, as a server restart or a NAT that
/// forgets an idle connection would): it subscribes again, so `release --force` asks it to stop
/// and waits for it, and the waiter never starts beside its command. Before: the holder never
/// listened again, the break deleted the lock at once, and the two commands overlapped until
/// the holder's next extension (8.5 s).
#[test]
fn a_dropped_subscription_is_made_again() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut holder = marking_holder(&url, "resub", &log, "holder", "true");
    wait_for_holder(&server, "resub");
    let first = subscribers(&server);
    assert_eq!(first.len(), 1, "{first:?}");
    let _: () = server.cmd(&["CLIENT", "KILL", "ID", &first[0]]);
    wait_until("the holder subscribes again", || {
        let now = subscribers(&server);
        now.len() == 1 && now != first
    });
    let waiter = marking_waiter(&url, "resub", &log, "waiter");
    breaks_a_live_holder(&url, "resub", &mut holder);
    assert!(waiter.wait_with_output().unwrap().status.success());
    assert!(
        !overlaps(&log),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

/// Two servers of three freeze while a run holds the lock: no majority confirms an extension,
/// and the holder stops its command and exits 76, saying that the lease could not be extended
/// and which servers did not answer; not that the lock was taken. Before: the servers went
/// unnamed, and in the partition campaign such leases were reported as "deleted, broken or
/// taken by another holder".
#[test]
fn a_lease_that_lapses_says_which_servers_did_not_answer() {
    let servers = start_servers(3);
    let mut holder = Holder::start(&urls(&servers), &["-n", "lapse", "--ttl", "2s"]);
    for server in &servers[1..] {
        server.freeze();
    }
    let (status, stderr) = holder.wait();
    for server in &servers[1..] {
        server.thaw();
    }
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(
        stderr.contains("lock lost: the lease could not be extended before"),
        "{stderr}"
    );
    for server in &servers[1..] {
        let named = format!("Redis at 127.0.0.1:{}: ", server.port);
        assert!(
            stderr.contains(&format!("{named}timed out"))
                || stderr.contains(&format!("{named}no answer in time")),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("taken"), "{stderr}");
}

/// How many times `server` was sent WAIT (INFO commandstats).
fn waits(server: &RedisServer) -> u64 {
    let stats: String = server.cmd(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_wait:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

/// With default flags, a primary that has a replica connected gets WAIT 1 after each write of
/// the lease (its ROLE names the replica): a failover cannot lose a lock it granted. A primary
/// without a replica gets none, and `--wait-replicas 0` opts out. Before: default flags never
/// waited, and a Sentinel failover let two commands overlap (13 overlaps in 78 runs).
#[test]
fn a_primary_with_a_replica_has_each_write_confirmed_by_default() {
    let (primary, replica) = primary_with_replica();
    let run = |extra: &[&str]| {
        succeeded(
            redlock(&primary.url())
                .args(["run", "-n", "replicated"])
                .args(extra)
                .args(["--", "true"]),
        )
    };
    run(&[]);
    assert_eq!(waits(&primary), 1);
    run(&["--wait-replicas", "0"]);
    assert_eq!(waits(&primary), 1);
    // With its replica frozen, the default needs it as --wait-replicas 1 does.
    replica.freeze();
    let output = redlock(&primary.url())
        .args(["run", "-n", "replicated", "--ttl", "2s", "--", "true"])
        .output()
        .unwrap();
    replica.thaw();
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE));

    let alone = RedisServer::start();
    succeeded(redlock(&alone.url()).args(["run", "-n", "alone", "--", "true"]));
    assert_eq!(waits(&alone), 0);
}

/// The primary freezes as a run with `--wait` starts: its first request (ROLE, then the
/// acquire) times out, and the run tries again. Once the primary thaws, the ROLE answer that
/// was queued ahead still counts: the lock is taken with WAIT 1, as the primary has a replica.
/// Before: the timed-out request took ROLE's answer with it, and the lock was taken without
/// any replica confirming it.
#[test]
fn role_survives_a_request_that_timed_out() {
    use std::io::{BufRead, BufReader};
    let (primary, _replica) = primary_with_replica();
    primary.freeze();
    let mut run = redlock(&primary.url())
        .args([
            "run", "-n", "role", "--ttl", "2s", "--wait", "60s", "-v", "--", "true",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(run.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("trying again") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{said}");
        said.push_str(&line);
    }
    primary.thaw();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(run.wait().unwrap().success(), "{said}{rest}");
    assert!(waits(&primary) > 0, "{said}{rest}");
}

/// Seeds `redis://A,B,C` with A frozen: the holder's subscription passes A over as its
/// requests do, and listens on the node that owns the lock, so that `release --force` reaches
/// it. Before: the subscription waited on A forever, and the break deleted the lock at once.
#[test]
fn a_subscription_passes_a_frozen_seed_over() {
    let cluster = Cluster::start_with(3, 0, 5000);
    let name = (0..)
        .map(|i| format!("s{i}"))
        .find(|name| cluster.owner(&format!("redlock:{{{name}}}")).port != cluster.nodes[0].port)
        .unwrap();
    let owner = cluster.owner(&format!("redlock:{{{name}}}"));
    let seeds: Vec<String> = (cluster.nodes.iter())
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let url = format!("redis://{}", seeds.join(","));
    cluster.nodes[0].freeze();
    let mut holder = Holder::start(&url, &["-n", &name]);
    wait_for_holder(owner, &name);
    // The operator's break is not sent twice, so not passed over: it names a live node first.
    let live = format!("redis://{}", seeds[1..].join(","));
    breaks_a_live_holder(&live, &name, &mut holder);
    cluster.nodes[0].thaw();
}
