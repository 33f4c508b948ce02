//! Redis Sentinel: `redis+sentinel://` names a primary by its service; redlock asks the
//! sentinels where it is, and again after a failover. The whole set counts as one server.

use std::process::Stdio;

use crate::support::sentinel::Sentinels;
use crate::support::{
    Holder, breaks_a_live_holder, code, exits_with, keys, redlock, script_calls, succeeded,
    takes_over_on_release, wait_for_holder, wait_for_subscriber, wait_until, waiter,
};

/// A run, a busy run, a waiter taking over on release, and `status`, all through the sentinels.
#[test]
fn run_busy_wait_and_status_through_sentinel() {
    let set = Sentinels::start();
    let url = set.url();
    assert_eq!(
        succeeded(redlock(&url).args(["run", "-n", "s", "--", "echo", "ran"])),
        b"ran\n"
    );
    // It ran on the primary: the fencing counter is there.
    assert_eq!(set.primary.cmd::<i64>(&["GET", &keys("s").fence]), 1);

    let mut holder = Holder::start(&url, &["-n", "s", "--ttl", "60s"]);
    let busy = redlock(&url)
        .args(["run", "-n", "s", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(code::BUSY));
    let status = redlock(&url).args(["status", "-n", "s"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("(pid {}, ", holder.redlock_pid())),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let waiter = waiter(&url, "s", dir.path());
    wait_for_subscriber(&set.primary, "s");
    takes_over_on_release(&mut holder, waiter, dir.path());
}

/// `SENTINEL FAILOVER` while the command runs, with `--wait-replicas 1`: the replica had the
/// lease before each write counted, so once the old primary has rejoined as its replica, the
/// holder goes on with the new primary (asked of the sentinels again when the old one stops
/// answering, turns replica or loses its replica) and ends normally. The lease is the default
/// 30 s: extensions that fail while the old primary rejoins are retried within it.
#[test]
fn a_failover_with_wait_replicas_goes_on_with_the_new_primary() {
    let set = Sentinels::start();
    let mut holder = Holder::start(&set.url(), &["-n", "fo", "--wait-replicas", "1", "-v"]);
    set.fail_over_and_resync();
    // A replica runs no scripts (it gets their effects): one run there is an extension.
    wait_until("the holder extends on the new primary", || {
        script_calls(&set.replica) > 0
    });
    let (status, stderr) = holder.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(set.replica.cmd::<i64>(&["EXISTS", &keys("fo").lock]), 0);
}

/// A failover without `--wait-replicas`, with a second run waiting: whether the holder goes on
/// (the replica had its token) or is stopped with 76 (it had not), the two commands never run
/// at once, as their own marks show, and the waiter runs once the holder is done.
#[test]
fn two_contenders_across_a_failover_never_overlap() {
    let set = Sentinels::start();
    let dir = tempfile::tempdir().unwrap();
    // Each command marks its start, a life sign every 100 ms, and its end (also when stopped).
    let critical = "echo \"start $$\" >> log; trap 'echo \"end $$\" >> log; exit 143' TERM; \
                    i=0; while [ $i -lt 30 ]; do echo \"alive $$\" >> log; sleep 0.1; \
                    i=$((i+1)); done; echo \"end $$\" >> log";
    let spawn = || {
        redlock(&set.url())
            .args([
                "run", "-n", "two", "--ttl", "4s", "--wait", "60s", "--", "sh", "-c",
            ])
            .arg(critical)
            .current_dir(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn();
    wait_until("the first command runs", || {
        std::fs::read_to_string(dir.path().join("log")).is_ok_and(|log| log.contains("alive"))
    });
    let second = spawn();
    wait_for_subscriber(&set.primary, "two");
    set.fail_over();
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        let code = output.status.code();
        assert!(
            code == Some(0) || code == Some(code::LOCK_LOST),
            "{code:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    // The marks of one command never interleave with another's.
    let mut inside: Option<&str> = None;
    for line in log.lines() {
        let (mark, pid) = line.split_once(' ').unwrap();
        match (mark, inside) {
            ("start", None) => inside = Some(pid),
            ("alive", Some(who)) if who == pid => {}
            ("end", Some(who)) if who == pid => inside = None,
            _ => panic!("two commands at once:\n{log}"),
        }
    }
    assert_eq!(log.matches("start").count(), 2, "{log}");
}

/// With default flags (the primary has a replica: every write is confirmed by it), a holder
/// follows a `SENTINEL FAILOVER`: its next extension goes to the new primary, and so does its
/// subscription, so that `release --force` there still asks it to stop, and the operator's
/// break waits for it. Before: the subscription stayed on the old primary, turned replica;
/// nobody listened on the new one, and the break deleted the lock of a live holder at once.
#[test]
fn a_holder_follows_a_failover_with_its_lease_and_its_subscription() {
    let set = Sentinels::start();
    // The default lease (30 s): the writes wait for the old primary until it follows the new
    // one, which the sentinels see to within their INFO period (10 s).
    let mut holder = Holder::start(&set.url(), &["-n", "follow"]);
    set.fail_over_and_resync();
    wait_until("the holder extends on the new primary", || {
        script_calls(&set.replica) > 0
    });
    wait_for_holder(&set.replica, "follow");
    breaks_a_live_holder(&set.url(), "follow", &mut holder);
}

/// The primary freezes (a partition: the sentinels cannot turn it into a replica, nor drop its
/// clients) and the sentinels promote the replica: the holder's extensions, each bounded,
/// go to the primary the sentinels name now, and its subscription follows it there. Before:
/// one extension waited on the frozen primary until the lease had to be given up (76), and
/// the subscription stayed on it.
#[test]
fn a_holder_follows_a_frozen_primary_s_failover() {
    let set = Sentinels::start();
    let mut holder = Holder::start(&set.url(), &["-n", "frozen", "--ttl", "20s"]);
    wait_for_holder(&set.primary, "frozen");
    set.primary.freeze();
    set.wait_promoted();
    wait_for_holder(&set.replica, "frozen");
    let (status, stderr) = holder.finish();
    set.primary.thaw();
    assert!(status.success(), "{stderr}");
}

/// The first sentinel of the URL is frozen (it accepts connections and says nothing): each
/// connection asks it for 300 ms at most, then the next, and the one that answered is asked
/// first from then on; the holder's extensions, which ask the sentinels too, go on. Before:
/// the frozen sentinel took the whole request time-out (3 s), and every run exited 69.
#[test]
fn a_frozen_sentinel_is_passed_over() {
    let set = Sentinels::start();
    set.freeze_sentinel(0);
    let ran = succeeded(redlock(&set.url()).args([
        "run",
        "-n",
        "fs",
        "--ttl",
        "3s",
        "--",
        "sh",
        "-c",
        "sleep 2; echo ran",
    ]));
    assert_eq!(ran, b"ran\n");
}

/// Two replicas, and one stops following the primary while the sentinels still count it (as
/// when they promote it: for a second or so they still name the old primary). By default each
/// write waits for every replica the sentinels know to be up, so the primary cannot confirm the
/// lease with the one replica left, whose data the promoted one would not have. Before: WAIT 1
/// was satisfied by the replica left, and in the fault campaign fences were handed out twice.
#[test]
fn every_replica_the_sentinels_know_confirms_a_write() {
    let set = Sentinels::start_with(2);
    assert!(succeeded(redlock(&set.url()).args(["run", "-n", "all", "--", "true"])).is_empty());
    let _: () = set.others[0].cmd(&["REPLICAOF", "NO", "ONE"]);
    let stderr = exits_with(
        redlock(&set.url()).args(["run", "-n", "all", "--ttl", "2s", "--", "true"]),
        code::UNAVAILABLE,
    );
    assert!(
        stderr.contains("only 1 of 2 replicas confirmed"),
        "{stderr}"
    );
}
