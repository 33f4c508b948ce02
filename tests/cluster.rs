//! Redis Cluster: a `--redis` URL naming any node; redlock follows the cluster's redirects to
//! the node that owns the lock's slot, and the whole cluster counts as one server.

use std::thread;

use crate::support::cluster::Cluster;
use crate::support::{
    Holder, code, contend_on, is_dead, redlock, script_calls, succeeded, takes_over_on_release,
    wait_for_subscriber, wait_until, waiter,
};

fn lock_key(name: &str) -> String {
    format!("redlock:{{{name}}}")
}

/// 200 names, spread over the three primaries' slots, each taken and released through one
/// seed node: every run works, and every primary holds some of the fencing counters.
#[test]
fn lock_names_on_every_primary_run() {
    let cluster = Cluster::start(3, 0);
    for i in 0..200 {
        let name = format!("n{i}");
        let output = redlock(&cluster.url())
            .args(["run", "-n", &name, "--", "echo", &name])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout, format!("{name}\n").as_bytes());
    }
    for node in &cluster.nodes {
        let keys: i64 = node.cmd(&["DBSIZE"]);
        assert!(keys > 20, "a primary holds only {keys} keys");
        assert!(script_calls(node) > 0);
    }
}

/// 5 names × 4 loops of 5 runs, all through one seed: never two runs of a name at once, and
/// each sees a larger fencing token than the one before it.
#[test]
fn contention_on_a_cluster_never_overlaps() {
    let cluster = Cluster::start(3, 0);
    let url = cluster.url();
    thread::scope(|scope| {
        for name in ["c1", "c2", "c3", "c4", "c5"] {
            let url = &url;
            scope.spawn(move || contend_on(url, name, 4, 5));
        }
    });
}

/// A waiter given a seed node that does not own the lock's slot follows the cluster's redirect
/// to subscribe on the node that does, hears the release there, and takes over at once (the
/// holder's lease is 60 s).
#[test]
fn a_waiter_on_a_cluster_is_woken_by_the_release() {
    let cluster = Cluster::start(3, 0);
    // A name whose slot another node owns: the notice must cross the cluster.
    let name = (0..)
        .map(|i| format!("w{i}"))
        .find(|name| cluster.owner(&lock_key(name)).port != cluster.nodes[0].port)
        .unwrap();
    let mut holder = Holder::start(&cluster.url(), &["-n", &name, "--ttl", "60s"]);
    let dir = tempfile::tempdir().unwrap();
    let waiter = waiter(&cluster.url(), &name, dir.path());
    // Sharded pub/sub: it listens on the node that owns the lock's slot.
    wait_for_subscriber(cluster.owner(&lock_key(&name)), &name);
    takes_over_on_release(&mut holder, waiter, dir.path());
}

/// `status` finds a lock on whichever node owns it, and `list` scans every primary.
#[test]
fn status_and_list_show_locks_on_every_primary() {
    let cluster = Cluster::start(3, 0);
    // One name per primary.
    let mut names: Vec<String> = Vec::new();
    for i in 0.. {
        let name = format!("s{i}");
        let owner = cluster.owner(&lock_key(&name)).port;
        if names
            .iter()
            .all(|n| cluster.owner(&lock_key(n)).port != owner)
        {
            names.push(name);
        }
        if names.len() == 3 {
            break;
        }
    }
    let mut holders: Vec<Holder> = names
        .iter()
        .map(|name| Holder::start(&cluster.url(), &["-n", name]))
        .collect();
    for (name, holder) in names.iter().zip(&holders) {
        let output = redlock(&cluster.url())
            .args(["status", "-n", name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{text}");
        assert!(
            text.contains(&format!("(pid {}, ", holder.redlock_pid())),
            "{text}"
        );
    }
    let output = redlock(&cluster.url()).arg("list").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let listed: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected, "{text}");
    for holder in &mut holders {
        assert!(holder.finish().0.success());
    }
}

/// The primary that owns the lock fails over to its replica (CLUSTER FAILOVER) while the
/// command runs: the heartbeat follows the redirect to the new primary, which has our token,
/// and the run ends normally, its lock released there.
#[test]
fn a_failover_mid_run_is_followed() {
    let cluster = Cluster::start(3, 1);
    let name = "failover";
    let mut holder = Holder::start(
        &cluster.url(),
        &[
            "-n",
            name,
            "--ttl",
            "10s",
            "--heartbeat",
            "1s",
            "--wait-replicas",
            "1",
        ],
    );
    let primary = cluster.owner(&lock_key(name));
    let replica = cluster.replica_of(primary);
    let _: () = replica.cmd(&["CLUSTER", "FAILOVER"]);
    wait_until("the replica is the primary", || {
        replica
            .cmd::<String>(&["INFO", "replication"])
            .contains("role:master")
    });
    // A replica runs no scripts (it gets their effects): one run there is an extension.
    wait_until("the holder extends on the new primary", || {
        script_calls(replica) > 0
    });
    let (status, stderr) = holder.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(replica.cmd::<i64>(&["EXISTS", &lock_key(name)]), 0);
}

/// The lock's slot migrates to another primary while the command runs (MIGRATING, IMPORTING,
/// MIGRATE, then SETSLOT NODE): the heartbeat follows the cluster to it, and the run ends
/// normally.
#[test]
fn a_migrated_slot_is_followed() {
    let cluster = Cluster::start(3, 0);
    let name = "migrated";
    let key = lock_key(name);
    let mut holder = Holder::start(
        &cluster.url(),
        &["-n", name, "--ttl", "10s", "--heartbeat", "1s"],
    );
    let source = cluster.owner(&key);
    let target = cluster
        .nodes
        .iter()
        .find(|n| n.port != source.port)
        .unwrap();
    let slot: i64 = source.cmd(&["CLUSTER", "KEYSLOT", &key]);
    let slot = slot.to_string();
    let source_id: String = source.cmd(&["CLUSTER", "MYID"]);
    let target_id: String = target.cmd(&["CLUSTER", "MYID"]);
    let _: () = target.cmd(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source_id]);
    let _: () = source.cmd(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target_id]);
    let keys: Vec<String> = source.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
    let port = target.port.to_string();
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    migrate.extend(keys.iter().map(String::as_str));
    let _: () = source.cmd(&migrate);
    for node in &cluster.nodes {
        let _: () = node.cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]);
    }
    wait_until("the holder extends on the new owner", || {
        script_calls(target) > 0
    });
    let (status, stderr) = holder.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(target.cmd::<i64>(&["EXISTS", &key]), 0);
}

/// One URL may list several nodes of the cluster: one that cannot be reached is skipped.
#[test]
fn a_list_of_nodes_skips_one_that_is_down() {
    let cluster = Cluster::start(3, 0);
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = down.local_addr().unwrap().port();
    drop(down); // nothing listens there now: connections are refused
    let url = format!(
        "redis://127.0.0.1:{port},127.0.0.1:{}",
        cluster.nodes[1].port
    );
    assert_eq!(
        succeeded(redlock(&url).args(["run", "-n", "seeds", "--", "echo", "ran"])),
        b"ran\n"
    );
}

/// A failover to a replica that lacks the lease (simulated: the key deleted on the new primary
/// once it is one): the heartbeat follows the redirect, finds the lock gone, and the command
/// is stopped; the run ends with 76.
#[test]
fn a_failover_to_a_node_without_the_lease_loses_it() {
    let cluster = Cluster::start(3, 1);
    let name = "lacking";
    let mut holder = Holder::start(&cluster.url(), &["-n", name, "--ttl", "4s"]);
    let command = holder.command_pid();
    let primary = cluster.owner(&lock_key(name));
    let replica = cluster.replica_of(primary);
    let _: () = replica.cmd(&["CLUSTER", "FAILOVER"]);
    wait_until("the replica is the primary", || {
        replica
            .try_cmd::<String>(&["INFO", "replication"])
            .is_ok_and(|info| info.contains("role:master"))
    });
    let _: () = replica.cmd(&["DEL", &lock_key(name)]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(is_dead(command), "{stderr}");
    assert!(stderr.contains("redlock: lock lost"), "{stderr}");
}

/// A semaphore on a cluster, through a seed that does not own its slot: its places, queue and
/// stored limit share the name's hash tag, so each run's one script reaches them all on the
/// owner; two places are held at once, a third run is busy and names both holders, a
/// mismatched N is refused, and `list` shows each place.
#[test]
fn a_semaphore_on_a_cluster() {
    let cluster = Cluster::start(3, 0);
    let name = (0..)
        .map(|i| format!("sem{i}"))
        .find(|name| cluster.owner(&lock_key(name)).port != cluster.nodes[0].port)
        .unwrap();
    let url = cluster.url();
    let args = ["-n", name.as_str(), "--limit", "2"];
    let mut holders = [Holder::start(&url, &args), Holder::start(&url, &args)];
    let run = |limit: &str| {
        redlock(&url)
            .args(["run", "-n", &name, "--limit", limit, "--", "true"])
            .output()
            .unwrap()
    };
    let busy = run("2");
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert_eq!(busy.status.code(), Some(code::BUSY), "{stderr}");
    for holder in &holders {
        assert!(
            stderr.contains(&format!("pid {}", holder.redlock_pid())),
            "{stderr}"
        );
    }
    assert_eq!(run("3").status.code(), Some(code::LIMIT_MISMATCH));
    let listed = succeeded(redlock(&url).arg("list"));
    let listed = String::from_utf8_lossy(&listed);
    assert!(
        listed.contains(&format!("{name} [place 0 of 2]"))
            && listed.contains(&format!("{name} [place 1 of 2]")),
        "{listed}"
    );
    for holder in &mut holders {
        assert!(holder.finish().0.success());
    }
    assert!(run("3").status.success());
}

/// Two locks at once whose names live on different primaries: each is held on its own node
/// with the run's token, and a break of the second reaches the holder through its node's
/// channel (76).
#[test]
fn several_locks_on_different_primaries() {
    let cluster = Cluster::start(3, 0);
    let url = cluster.url();
    let first = "s0";
    let owner = |name: &str| cluster.owner(&lock_key(name)).pid();
    let second = (1..100)
        .map(|i| format!("s{i}"))
        .find(|name| owner(name) != owner(first))
        .unwrap();
    let mut holder = Holder::start(&url, &["-n", first, "-n", &second]);
    let token: String = cluster
        .owner(&lock_key(first))
        .cmd(&["GET", &lock_key(first)]);
    let other: String = cluster
        .owner(&lock_key(&second))
        .cmd(&["GET", &lock_key(&second)]);
    assert_eq!(token, other);
    succeeded(redlock(&url).args(["release", "-n", &second, "--force"]));
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    let left: Option<String> = cluster
        .owner(&lock_key(first))
        .cmd(&["GET", &lock_key(first)]);
    assert_eq!(left, None);
}
