//! Lost means lost: every way a run can lose its lock ends in 76, at once, with the command
//! stopped; and `release --force` lets no waiter start beside a live holder's command.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};

use crate::support::{
    Holder, RedisServer, code, is_dead, keys, redlock, script_calls, start_servers, urls,
    wait_for_holder, wait_for_subscriber, wait_held_everywhere, wait_until,
};

/// Longer than any of these tests should take to notice a break, shorter than the heartbeat
/// of their holders (20 s, a third of a 60 s lease): before the fix, only that heartbeat
/// noticed. Generous, for a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(10);

/// A run of `name` whose command writes `start ID`, then `alive ID` every 50 ms, to `log`, and
/// says `ready`. On SIGTERM it runs `on_term` (after one more life-sign), then writes `end ID`
/// and exits 0.
pub fn marking_holder(url: &str, name: &str, log: &Path, id: &str, on_term: &str) -> Holder {
    let log = log.display();
    let script = format!(
        "echo \"start {id}\" >> {log}; trap 'stop=1' TERM; echo $$ > pid; echo ready; \
         while [ -z \"$stop\" ]; do echo \"alive {id}\" >> {log}; sleep 0.05; done; \
         echo \"alive {id}\" >> {log}; {on_term}; echo \"end {id}\" >> {log}"
    );
    Holder::start_script(
        url,
        &["-n", name, "--ttl", "60s", "--kill-after", "15s"],
        &script,
    )
}

/// A waiter for `name` whose command writes `start ID` and `end ID` to `log`.
pub fn marking_waiter(url: &str, name: &str, log: &Path, id: &str) -> Child {
    let log = log.display();
    redlock(url)
        .args(["run", "-n", name, "--wait", "60s", "--", "sh", "-c"])
        .arg(format!(
            "echo \"start {id}\" >> {log}; echo \"alive {id}\" >> {log}; echo \"end {id}\" >> {log}"
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the holder of `name`, alone on a new `server`, listens on its control channel
/// and has checked its lock once it does: its acquire and that extension, the scripts that ran
/// (`script_calls`: not a hash the new server did not know). A break or a takeover after this
/// is heard as such, not found by that check. (Counting a NOSCRIPT too, it waited for the
/// first heartbeat, 20 s in, racing its patience.)
fn wait_until_checked(server: &RedisServer, name: &str) {
    wait_for_holder(server, name);
    wait_until("the holder has checked its lock", || {
        script_calls(server) == 2
    });
}

/// The runs' intervals in `log`, in the order they were written: `(id, first line, last
/// line)`, and whether any two overlap.
pub fn overlaps(log: &Path) -> bool {
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .map(|line| line.split_once(' ').expect(&text))
        .collect();
    let ids: Vec<&str> = lines.iter().map(|(_, id)| *id).collect();
    let span = |id: &str| {
        let first = ids.iter().position(|i| *i == id).unwrap();
        let last = ids.iter().rposition(|i| *i == id).unwrap();
        assert_eq!(lines[first].0, "start", "{text}");
        (first, last)
    };
    let mut spans: Vec<(usize, usize)> = ids.iter().map(|id| span(id)).collect();
    spans.sort();
    spans.dedup();
    spans.windows(2).any(|pair| pair[1].0 < pair[0].1)
}

#[test]
fn a_lock_deleted_behind_its_back_is_lost_at_release() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "quiet-loss", "--ttl", "60s"]);
    // No notice: only the release can find it.
    let _: () = server.cmd(&["DEL", &keys("quiet-loss").lock]);
    let (status, stderr) = holder.finish();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(
        stderr.contains(
            "redlock: lock lost: found at release that the lock was deleted or taken by \
             another holder; the command's own status was 0"
        ),
        "{stderr}"
    );
}

/// `--min-hold` changes nothing: a release that finds the lock gone is a lost lock.
#[test]
fn a_lock_kept_by_min_hold_and_deleted_is_lost_at_release() {
    let server = RedisServer::start();
    let mut holder = Holder::start(
        &server.url(),
        &["-n", "kept-loss", "--ttl", "60s", "--min-hold", "1h"],
    );
    let _: () = server.cmd(&["DEL", &keys("kept-loss").lock]);
    let (status, stderr) = holder.finish();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(stderr.contains("found at release"), "{stderr}");
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("kept-loss").lock]), 0);
}

#[test]
fn a_break_is_heard_at_once_and_the_command_stopped() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "broken", "--ttl", "60s"]);
    let command = holder.command_pid();
    wait_until_checked(&server, "broken");
    let broken = Instant::now();
    let output = redlock(&server.url())
        .args(["release", "-n", "broken", "--force", "--now"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let (status, stderr) = holder.wait();
    assert!(broken.elapsed() < AT_ONCE, "{:?}", broken.elapsed());
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(is_dead(command));
    assert!(
        stderr.contains(
            "redlock: lock lost: the lock was deleted or taken by another holder \
             (`redlock release --force` broke it); stopping the command"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "redlock: exiting with 76: the lock was lost; the command's own status was 143 \
             (killed by SIGTERM)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_takeover_is_heard_at_once() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "taken", "--ttl", "60s"]);
    wait_until_checked(&server, "taken");
    let taken = Instant::now();
    // The key vanishes without a notice (a server that lost it), and another run takes it.
    let _: () = server.cmd(&["DEL", &keys("taken").lock]);
    let other = redlock(&server.url())
        .args(["run", "-n", "taken", "--", "true"])
        .status()
        .unwrap();
    assert!(other.success());
    let (status, stderr) = holder.wait();
    assert!(taken.elapsed() < AT_ONCE, "{:?}", taken.elapsed());
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(stderr.contains("(another run took it)"), "{stderr}");
}

/// A takeover seen by one server of three is not a lost lock: the run checks, finds a majority
/// still its own, and goes on.
#[test]
fn a_takeover_on_a_minority_of_servers_is_checked_not_believed() {
    let servers = start_servers(3);
    let url = urls(&servers);
    let mut holder = Holder::start(&url, &["-n", "minority", "--ttl", "60s", "-v"]);
    wait_for_holder(&servers[0], "minority");
    wait_held_everywhere(&servers, "minority");
    let _: () = servers[0].cmd(&["DEL", &keys("minority").lock]);
    // Another run takes that one server: a notice there, and no majority for it.
    let alone = redlock(&servers[0].url())
        .args(["run", "-n", "minority", "--", "true"])
        .status()
        .unwrap();
    assert!(alone.success());
    // The notice has the holder extend its lease at once (the heartbeat is 20 s away): the
    // second server's lease then has more left than one last extended before `taken`.
    let taken = Instant::now();
    wait_until("the holder checks its lock", || {
        let left: i64 = servers[1].cmd(&["PTTL", &keys("minority").lock]);
        left + taken.elapsed().as_millis() as i64 > 60_000
    });
    let (status, stderr) = holder.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("redlock: extended the lease"),
        "checked: {stderr}"
    );
}

#[test]
fn release_force_waits_for_a_live_holder_so_a_waiter_never_overlaps_it() {
    for n in [1, 3] {
        let servers = start_servers(n);
        let url = urls(&servers);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        // The holder takes a moment to shut down after SIGTERM.
        let mut holder = marking_holder(&url, "handover", &log, "holder", "sleep 0.5");
        let waiter = marking_waiter(&url, "handover", &log, "waiter");
        for server in &servers {
            wait_for_subscriber(server, "handover");
        }
        // Not waiting for the holder to listen: one that has just started is asked until it
        // answers.
        let output = redlock(&url)
            .args(["release", "-n", "handover", "--force"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{n} servers: {stderr}");
        assert!(
            stderr.contains(
                "redlock: asked the holder of 'handover' to stop its command and release the \
                 lock; waiting up to 17s (its --kill-after of 15s, plus 2.0s)"
            ),
            "{n} servers: {stderr}"
        );
        assert!(
            stderr.contains("redlock: the holder of 'handover' stopped its command and released"),
            "{n} servers: {stderr}"
        );
        let (status, holder_stderr) = holder.wait();
        assert_eq!(status.code(), Some(code::LOCK_LOST), "{holder_stderr}");
        assert!(
            holder_stderr.contains(
                "redlock: exiting with 76: the lock was broken by `redlock release --force` \
                 (this run let it go); the command's own status was 0"
            ),
            "{n} servers: {holder_stderr}"
        );
        let waited = waiter.wait_with_output().unwrap();
        assert!(waited.status.success());
        assert!(
            !overlaps(&log),
            "{n} servers: {}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
}

/// A holder that cannot answer (frozen: a stopped process, a hung host) is asked for 2 s, then
/// its lock is deleted, as a dead one's. So is one that heard, said so, and then does not
/// release the lock within its --kill-after plus 2 s.
#[test]
fn release_force_breaks_a_holder_that_does_not_answer() {
    let server = RedisServer::start();
    let mut holder = Holder::start(
        &server.url(),
        &["-n", "hung", "--ttl", "20s", "--kill-after", "1s"],
    );
    wait_for_holder(&server, "hung");
    kill(holder.redlock_pid(), Signal::SIGSTOP).unwrap();
    let output = redlock(&server.url())
        .args(["release", "-n", "hung", "--force"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr,
        "redlock: no holder of 'hung' answered within 2.0s (gone, or not running); deleting the \
         lock\nredlock: broke lock 'hung' on 1 of 1 server(s)\n"
    );
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("hung").lock]), 0);
    // Woken, it hears the break and stops its command.
    kill(holder.redlock_pid(), Signal::SIGCONT).unwrap();
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");

    // Heard, said so, and then stuck: its command ignores SIGTERM and redlock freezes.
    let script = "trap '' TERM; echo $$ > pid; echo ready; while :; do sleep 0.05; done";
    let mut holder = Holder::start_script(
        &server.url(),
        &["-n", "stuck", "--ttl", "20s", "--kill-after", "1s"],
        script,
    );
    wait_for_holder(&server, "stuck");
    let release = redlock(&server.url())
        .args(["release", "-n", "stuck", "--force"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the holder says it stops", || {
        server
            .cmd::<Option<String>>(&["HGET", &keys("stuck").holder, "stopping"])
            .is_some()
    });
    kill(holder.redlock_pid(), Signal::SIGSTOP).unwrap();
    let output = release.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("waiting up to 3.0s (its --kill-after of 1.0s, plus 2.0s)")
            && stderr.contains(
                "redlock: the holder of 'stuck' did not release the lock within 3.0s; deleting it"
            )
            && stderr.contains("redlock: broke lock 'stuck' on 1 of 1 server(s)"),
        "{stderr}"
    );
    kill(holder.redlock_pid(), Signal::SIGCONT).unwrap();
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
}

/// Another run listening on the control channel is not the holder: its silence is not taken
/// for a holder that heard (here, a live holder of the same name in another database, whose
/// channel is shared, and a stale lock in this one).
#[test]
fn release_force_counts_only_the_holders_answer() {
    let server = RedisServer::start();
    let url = |db: u8| format!("redis://127.0.0.1:{}/{db}", server.port);
    let mut other = Holder::start(
        &url(1),
        &["-n", "shared", "--ttl", "60s", "--kill-after", "15s"],
    );
    wait_for_holder(&server, "shared");
    let mut db2 = server.connection();
    let _: () = redis::cmd("SELECT").arg(2).query(&mut db2).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&[&keys("shared").lock, "stale", "PX", "60000"][..])
        .query(&mut db2)
        .unwrap();
    let started = Instant::now();
    let output = redlock(&url(2))
        .args(["release", "-n", "shared", "--force"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("no holder of 'shared' answered within 2.0s"),
        "{stderr}"
    );
    // Not the other run's --kill-after of 15 s, plus 2 s.
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&keys("shared").lock)
        .query(&mut db2)
        .unwrap();
    assert_eq!(exists, 0);
    // The other database's run was not asked to stop.
    other.send("x\n");
    let (status, stderr) = other.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// A server that does not answer for a while during the wait tells nothing: the wait goes on,
/// and the lock is not deleted under a command that is still stopping.
#[test]
fn release_force_keeps_waiting_through_a_slow_server() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let go = dir.path().join("go");
    // The holder's command stops only once told to, after the server came back.
    let linger = format!("while [ ! -e {} ]; do sleep 0.01; done", go.display());
    let mut holder = marking_holder(&server.url(), "slow", &log, "holder", &linger);
    let waiter = marking_waiter(&server.url(), "slow", &log, "waiter");
    wait_for_subscriber(&server, "slow");
    wait_for_holder(&server, "slow");
    let mut release = redlock(&server.url())
        .args(["release", "-n", "slow", "--force"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its first line says it heard the holder's answer and now waits for the release.
    let mut stderr = BufReader::new(release.stderr.take().unwrap());
    let mut asked = String::new();
    stderr.read_line(&mut asked).unwrap();
    assert!(asked.contains("waiting up to 17s"), "{asked}");
    server.freeze();
    // Longer than a request's time-out (3 s): release's reads of the lock fail meanwhile.
    std::thread::sleep(Duration::from_secs(4));
    server.thaw();
    std::fs::write(&go, "").unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(release.wait().unwrap().code(), Some(0), "{rest}");
    assert_eq!(
        rest,
        "redlock: the holder of 'slow' stopped its command and released the lock\n"
    );
    assert_eq!(holder.wait().0.code(), Some(code::LOCK_LOST));
    assert!(waiter.wait_with_output().unwrap().status.success());
    assert!(
        !overlaps(&log),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

/// The warning for `--now` (`release --help`, docs/design.md): the waiter takes the lock at
/// once, while the old command still shuts down. Here the old command ends only once the
/// waiter's has started.
#[test]
fn release_force_now_lets_a_waiter_start_beside_the_old_command() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let linger = format!(
        "while ! grep -q 'end waiter' {}; do sleep 0.01; done",
        log.display()
    );
    let mut holder = marking_holder(&server.url(), "abrupt", &log, "holder", &linger);
    let waiter = marking_waiter(&server.url(), "abrupt", &log, "waiter");
    wait_for_subscriber(&server, "abrupt");
    wait_for_holder(&server, "abrupt");
    let output = redlock(&server.url())
        .args(["release", "-n", "abrupt", "--force", "--now"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(waiter.wait_with_output().unwrap().status.success());
    let (status, stderr) = holder.wait();
    // The holder heard of it and stopped its command; it just could not be quicker than the
    // waiter.
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(overlaps(&log), "{}", std::fs::read_to_string(&log).unwrap());
}

/// Three servers holding a stale lock, two of them frozen: the one that answers has it deleted,
/// but a majority may still hold it, so the break is not reported as done. All servers are
/// asked at once: one time-out (3 s), not one per frozen server.
#[test]
fn release_force_without_a_majority_is_unavailable_and_bounded() {
    let servers = start_servers(3);
    for server in &servers {
        let _: () = server.cmd(&["SET", &keys("q").lock, "stale-token", "PX", "60000"]);
    }
    servers[1].freeze();
    servers[2].freeze();
    let started = Instant::now();
    let output = redlock(&urls(&servers))
        .args(["release", "-n", "q", "--force"])
        .output()
        .unwrap();
    let took = started.elapsed();
    servers[1].thaw();
    servers[2].thaw();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code::UNAVAILABLE), "{stderr}");
    for frozen in &servers[1..] {
        assert!(
            stderr.contains(&format!("Redis at 127.0.0.1:{}: timed out", frozen.port)),
            "{stderr}"
        );
    }
    assert!(stderr.contains("deleted on 1 of 3 server(s)"), "{stderr}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(servers[0].cmd::<i64>(&["EXISTS", &keys("q").lock]), 0);

    // With one of three frozen, two confirm it gone: no majority can hold it.
    for server in &servers[..2] {
        let _: () = server.cmd(&["SET", &keys("q").lock, "stale-token", "PX", "60000"]);
    }
    servers[2].freeze();
    let output = redlock(&urls(&servers))
        .args(["release", "-n", "q", "--force"])
        .output()
        .unwrap();
    servers[2].thaw();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.starts_with("redlock: broke lock 'q' on 2 of 3 server(s); not reached: Redis at"),
        "{stderr}"
    );
}

/// The tid of the thread named `name` in process `pid`.
fn thread_named(pid: u32, name: &str) -> Option<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .map(|task| task.file_name().to_string_lossy().into_owned())
}

/// Whether that thread sits in a system call other than a futex wait: the heartbeat thread
/// waits for its next turn on a futex, and for a server's answer on its socket.
fn blocked_on_io(pid: u32, tid: &str) -> bool {
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall"));
    let number = syscall
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok());
    number.is_some_and(|n| n != nix::libc::SYS_futex)
}

/// The server freezes while an extension is on its way, and the command ends then: redlock
/// exits within one request time-out (3 s) of the command's end, not once the extension's own
/// time-out (about 21 s here) has run out.
#[test]
fn an_extension_in_flight_does_not_hold_up_the_exit() {
    let server = RedisServer::start();
    let mut holder = Holder::start(
        &server.url(),
        &["-n", "in-flight", "--ttl", "30s", "--heartbeat", "1s"],
    );
    let pid = holder.process.id();
    server.freeze();
    wait_until("an extension is in flight", || {
        thread_named(pid, "heartbeat").is_some_and(|tid| blocked_on_io(pid, &tid))
    });
    let ended = Instant::now();
    let (status, stderr) = holder.finish();
    let took = ended.elapsed();
    server.thaw();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("redlock: could not release 'in-flight'"),
        "{stderr}"
    );
    // 3 s and a bit; far from the 21 s of the extension.
    assert!(took < Duration::from_secs(10), "{took:?}");
}
