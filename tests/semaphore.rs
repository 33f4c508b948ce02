//! `--limit N`: a counting semaphore. Up to N runs at once, each with its own place, lease and
//! fencing token; never more, whatever is killed or frozen.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{
    Holder, RedisServer, code, exits_with, is_dead, keys, redlock, start_servers, succeeded, urls,
    wait_for_subscriber, wait_until,
};

/// The holder's command, with its place and fence in files beside it.
const HOLD_PLACE: &str = "echo $REDLOCK_SLOT > slot; echo $REDLOCK_FENCE > fence; echo $$ > pid; \
                          echo ready; read line; echo done";

fn holder(url: &str, name: &str, args: &[&str]) -> Holder {
    let args = [&["-n", name, "--limit", "3"][..], args].concat();
    Holder::start_script(url, &args, HOLD_PLACE)
}

fn read(holder: &Holder, file: &str) -> String {
    std::fs::read_to_string(holder.path(file))
        .unwrap()
        .trim()
        .to_string()
}

/// Three runs hold the three places at once, each with its own REDLOCK_SLOT and fence; a fourth
/// is busy, and its message names all three; `status`, `list` and `release --slot` see each.
#[test]
fn three_runs_hold_the_three_places_and_a_fourth_is_busy() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holders: Vec<Holder> = (0..3).map(|_| holder(&url, "nas", &[])).collect();
    let mut places: Vec<String> = holders.iter().map(|h| read(h, "slot")).collect();
    places.sort();
    assert_eq!(places, ["0", "1", "2"]);
    let mut fences: Vec<u64> = holders
        .iter()
        .map(|h| read(h, "fence").parse().unwrap())
        .collect();
    fences.sort();
    fences.dedup();
    assert_eq!(fences.len(), 3, "each place has its own fence: {fences:?}");

    let stderr = exits_with(
        redlock(&url).args(["run", "-n", "nas", "--limit", "3", "--", "true"]),
        code::BUSY,
    );
    assert!(
        stderr.contains("lock 'nas' has all 3 places held (--limit 3): place 0 held by"),
        "{stderr}"
    );
    for holder in &holders {
        assert!(
            stderr.contains(&format!("pid {}", holder.process.id())),
            "{stderr}"
        );
    }

    let status: serde_json::Value = serde_json::from_slice(&succeeded(
        redlock(&url).args(["status", "-n", "nas", "--json"]),
    ))
    .unwrap();
    assert_eq!(status["limit"], 3);
    assert_eq!(status["places_held"], 3);
    assert_eq!(status["held"], true);
    for (place, view) in status["places"].as_array().unwrap().iter().enumerate() {
        let holder = holders
            .iter()
            .find(|h| read(h, "slot") == place.to_string())
            .unwrap();
        assert_eq!(view["holder"]["pid"], holder.process.id(), "{status}");
        assert_eq!(view["holder"]["fence"].to_string(), read(holder, "fence"));
    }
    let text = String::from_utf8(succeeded(redlock(&url).args(["status", "-n", "nas"]))).unwrap();
    assert!(
        text.starts_with("lock 'nas' has 3 of 3 places held (--limit 3)\n"),
        "{text}"
    );
    assert!(text.contains("place 2 is held by"), "{text}");

    let list: serde_json::Value =
        serde_json::from_slice(&succeeded(redlock(&url).args(["list", "--json"]))).unwrap();
    let slots: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert_eq!(entry["name"], "nas");
            assert_eq!(entry["limit"], 3);
            entry["slot"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(slots, [0, 1, 2]);

    // Breaking place 1 stops its holder only.
    let output = redlock(&url)
        .args(["release", "-n", "nas", "--force", "--slot", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("'nas' place 1"), "{stderr}");
    let broken = holders.iter().position(|h| read(h, "slot") == "1").unwrap();
    let (status, stderr) = holders[broken].wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    let mut others = holders;
    others.remove(broken);
    for holder in &mut others {
        assert!(holder.process.try_wait().unwrap().is_none());
    }
    // The free place is taken by the next run.
    let next = holder(&url, "nas", &[]);
    assert_eq!(read(&next, "slot"), "1");
    for mut holder in others.into_iter().chain([next]) {
        assert!(holder.finish().0.success());
    }
    // The last holder took the stored limit with it.
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("nas").limit]), 0);
}

/// Every run of a name must use the same N: another one is refused with 78 while the lock is
/// held, whichever way round; once it is free, any N may start anew.
#[test]
fn a_mismatched_limit_is_refused_with_78() {
    let server = RedisServer::start();
    let url = server.url();
    let refused = |args: &[&str], held_with: &str| {
        let stderr = exits_with(
            redlock(&url)
                .args(["run", "-n", "m"])
                .args(args)
                .args(["--", "true"]),
            code::LIMIT_MISMATCH,
        );
        assert!(
            stderr.contains(&format!(
                "lock 'm' is held with --limit {held_with}, and this run"
            )),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    };
    let mut semaphore = holder(&url, "m", &[]);
    refused(&[], "3");
    refused(&["--limit", "2"], "3");
    refused(&["--limit", "2", "--wait", "30s"], "3");
    assert!(semaphore.finish().0.success());

    let mut plain = Holder::start(&url, &["-n", "m"]);
    refused(&["--limit", "2"], "1");
    assert!(plain.finish().0.success());
    succeeded(redlock(&url).args(["run", "-n", "m", "--limit", "2", "--", "true"]));
    // Nothing of a refused run was left behind: no waiter in the queue, no place.
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("m").waiters]), 0);
}

/// A holder whose redlock is SIGKILLed cannot release its place: its command dies with it, and
/// the place frees when its lease runs out (no extension comes any more), for the next run.
#[test]
fn a_crashed_holder_frees_its_place_within_its_ttl() {
    let server = RedisServer::start();
    let url = server.url();
    let args = ["-n", "c", "--limit", "2", "--ttl", "3s"];
    let mut first = Holder::start_script(&url, &args, HOLD_PLACE);
    let mut second = Holder::start_script(&url, &args, HOLD_PLACE);
    let place = read(&first, "slot");
    let key = match place.as_str() {
        "0" => keys("c").lock,
        _ => keys("c").slot(place.parse().unwrap()).lock,
    };
    let dir = tempfile::tempdir().unwrap();
    let waiter = redlock(&url)
        .args(["run", "-n", "c", "--limit", "2", "--wait", "60s", "--"])
        .args(["sh", "-c", "echo $REDLOCK_SLOT > took-over"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "c");
    let command = first.command_pid();
    let token: String = server.cmd(&["GET", &key]);
    kill(first.redlock_pid(), Signal::SIGKILL).unwrap();
    first.wait();
    wait_until("the crashed holder's command is gone", || is_dead(command));
    // Never extended again: its time left only goes down until the place is free (and the
    // waiter takes it).
    let mut last = i64::MAX;
    loop {
        let (held, left): (Option<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query(&mut server.connection())
            .unwrap();
        if held.as_ref() != Some(&token) {
            break;
        }
        assert!(
            left <= last && left <= 3000,
            "extended after the crash: {left} after {last}"
        );
        last = left;
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = wait_for_exit(waiter);
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("took-over"))
            .unwrap()
            .trim(),
        place
    );
    assert!(second.finish().0.success());
}

/// A release wakes a waiter at once: it does not wait for a lease to run out.
#[test]
fn a_release_wakes_a_waiter() {
    let server = RedisServer::start();
    let url = server.url();
    let args = ["-n", "w", "--limit", "2", "--ttl", "60s"];
    let mut first = Holder::start_script(&url, &args, HOLD_PLACE);
    let mut second = Holder::start_script(&url, &args, HOLD_PLACE);
    let dir = tempfile::tempdir().unwrap();
    let waiter = redlock(&url)
        .args(["run", "-n", "w", "--limit", "2", "--wait", "120s", "--"])
        .args(["sh", "-c", "echo $REDLOCK_SLOT > took-over"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "w");
    let place = read(&second, "slot");
    let released = std::time::Instant::now();
    assert!(second.finish().0.success());
    assert!(wait_for_exit(waiter).success());
    // Far below the 60 s lease: the notice woke it, not the expiry.
    assert!(released.elapsed() < Duration::from_secs(20));
    let took = std::fs::read_to_string(dir.path().join("took-over")).unwrap();
    assert_eq!(took.trim(), place);
    assert!(first.finish().0.success());
}

/// A run inside a semaphore's run of the same name runs under the outer place: same fence and
/// place, no second place taken.
#[test]
fn a_nested_run_keeps_the_outer_place() {
    let server = RedisServer::start();
    let url = server.url();
    let redlock_bin = env!("CARGO_BIN_EXE_redlock");
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "echo $REDLOCK_SLOT $REDLOCK_FENCE > outer; '{redlock_bin}' run -n n --limit 2 -- \
         sh -c 'echo $REDLOCK_SLOT $REDLOCK_FENCE > inner; \
         \"{redlock_bin}\" status -n n > status'"
    );
    succeeded(
        redlock(&url)
            .args(["run", "-n", "n", "--limit", "2", "--", "sh", "-c", &script])
            .current_dir(dir.path()),
    );
    let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap();
    assert_eq!(read("inner"), read("outer"));
    assert!(
        read("status").starts_with("lock 'n' has 1 of 2 places held"),
        "{}",
        read("status")
    );
}

/// A plain run inside a semaphore's run is not nested in it (it is another lock: it would think
/// itself alone beside the others), nor the other way round: each is refused with 78.
#[test]
fn a_run_with_another_limit_is_not_nested() {
    let server = RedisServer::start();
    let redlock_bin = env!("CARGO_BIN_EXE_redlock");
    for (outer, inner) in [("3", "1"), ("1", "3")] {
        let script = format!("'{redlock_bin}' run -n x --limit {inner} -- echo inner; echo $?");
        let output = succeeded(redlock(&server.url()).args([
            "run", "-n", "x", "--limit", outer, "--", "sh", "-c", &script,
        ]));
        assert_eq!(output, b"78\n", "outer {outer}, inner {inner}");
    }
}

/// Servers that lost some places (restarted empty, frozen past a TTL) may each give a run a
/// different place, none on a majority; the run then asks for a place a majority has free,
/// and gets it, rather than waiting for ever beside a free place.
#[test]
fn servers_that_disagree_still_give_a_place_a_majority_has_free() {
    let servers = start_servers(3);
    let hold = |server: &RedisServer, key: &str| {
        let _: () = server.cmd(&["SET", key, "someone", "PX", "60000"]);
    };
    // Place 0 held on servers 0 and 1, place 1 on servers 1 and 2: first-free would give 1, 2
    // and 0; place 2 is free on all three.
    hold(&servers[0], &keys("d").lock);
    hold(&servers[1], &keys("d").lock);
    hold(&servers[1], "redlock:{d}:slot:1");
    hold(&servers[2], "redlock:{d}:slot:1");
    for server in &servers {
        let _: () = server.cmd(&["SET", &keys("d").limit, "3", "PX", "60000"]);
    }
    let output = succeeded(
        redlock(&urls(&servers))
            .args(["run", "-n", "d", "--limit", "3", "--", "sh", "-c"])
            .arg("echo $REDLOCK_SLOT"),
    );
    assert_eq!(output, b"2\n");
}

/// A stored N whose holders are gone (crashed, then broken by `release --force`, which cannot
/// see the other places) does not refuse runs with another N: the first such run clears it.
#[test]
fn a_limit_no_holder_keeps_is_cleared() {
    let server = RedisServer::start();
    let _: () = server.cmd(&["SET", &keys("g").limit, "3", "PX", "600000"]);
    succeeded(redlock(&server.url()).args(["run", "-n", "g", "--", "true"]));
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("g").limit]), 0);
    // One that a holder keeps stands.
    let _: () = server.cmd(&["SET", &keys("g").limit, "3", "PX", "600000"]);
    let _: () = server.cmd(&["SET", "redlock:{g}:slot:2", "someone", "PX", "600000"]);
    let output = redlock(&server.url())
        .args(["run", "-n", "g", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::LIMIT_MISMATCH));
    // And `release` without --force says what it would do, as for a lock (64).
    let stderr = exits_with(
        redlock(&server.url()).args(["release", "-n", "g"]),
        code::USAGE,
    );
    assert!(
        stderr.contains("not breaking lock 'g' (--limit 3, 1 place(s) held) without --force"),
        "{stderr}"
    );
}

/// A server that failed while `release --force` broke one place of a semaphore is not asked
/// about the next place, and may still hold it: it counts as unreached there too. Here each of
/// two servers refuses the control channel of one place (an ACL), so asking its holder fails
/// there; the third server breaks both places. Place 1 is then still held on two of three
/// servers, and the break must not call it broken (it did, with 0: "on 1 of 3 server(s)").
#[test]
fn a_server_that_failed_on_one_place_is_unreached_on_the_next() {
    let servers = start_servers(3);
    let s = keys("s");
    for server in &servers {
        for (key, token) in [(&s.lock, "t0"), (&s.slot(1).lock, "t1"), (&s.limit, "2")] {
            let _: () = server.cmd(&["SET", key, token, "PX", "600000"]);
        }
    }
    // Server 0 refuses place 0's control channel; server 1, place 1's.
    for (server, refused) in [(&servers[0], 0), (&servers[1], 1)] {
        let allowed = s.slot(1 - refused).control;
        let allowed = format!("&{allowed}");
        let channel = format!("&{}", s.channel);
        let _: () = server.cmd(&[
            "ACL",
            "SETUSER",
            "default",
            "resetchannels",
            &channel,
            &allowed,
        ]);
    }
    let stderr = exits_with(
        redlock(&urls(&servers)).args(["release", "-n", "s", "--force"]),
        code::UNAVAILABLE,
    );
    assert!(
        stderr.contains("cannot tell whether lock 's' place 1 is broken"),
        "{stderr}"
    );
    let held: Vec<i64> = (servers.iter())
        .map(|server| server.cmd(&["EXISTS", &s.slot(1).lock]))
        .collect();
    assert_eq!(held, [1, 1, 0]);
}

/// --replace takes over from the one holder of a lock: with several, it is refused.
#[test]
fn replace_and_out_of_range_limits_are_usage_errors() {
    let server = RedisServer::start();
    for (args, says) in [
        (
            &["--limit", "2", "--replace"][..],
            "--replace cannot be used with --limit 2",
        ),
        (&["--limit", "0"][..], "--limit"),
        (&["--limit", "101"][..], "--limit"),
    ] {
        let output = redlock(&server.url())
            .args(["run", "-n", "r"])
            .args(args)
            .args(["--", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(code::USAGE),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.starts_with("redlock: ") && stderr.contains(says),
            "{stderr}"
        );
    }
}

/// `--limit 3`, 8 loops of 10 runs over one server, while redlocks are SIGKILLed and the server
/// is frozen at random: the commands' own marks never show more than 3 running at once, and
/// each place's fences increase.
#[test]
fn no_more_than_three_at_once_through_kills_and_freezes_over_one_server() {
    let mut servers = start_servers(1);
    chaos(&mut servers, 20_261_130);
}

/// The same over three servers: each place is a quorum lock of its own.
#[test]
fn no_more_than_three_at_once_through_kills_and_freezes_over_three_servers() {
    let mut servers = start_servers(3);
    chaos(&mut servers, 1_796_008_112);
}

fn wait_for_exit(mut child: Child) -> std::process::ExitStatus {
    child.wait().unwrap()
}

/// Runs 8 loops × 10 runs of `--limit 3` over `servers` while a chaos thread (seeded: the seed
/// is in a failure's message) SIGKILLs running redlocks and freezes a server for up to a
/// second and a half; then checks the marks.
fn chaos(servers: &mut [RedisServer], seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let url = urls(servers);
    let redlock_bin = env!("CARGO_BIN_EXE_redlock");
    // Each command: start, five life-signs 40 ms apart, end; each line names the run.
    let critical = format!(
        "id=$$.$REDLOCK_FENCE; echo \"start $id $REDLOCK_SLOT $REDLOCK_FENCE\" >> {log}; \
         for i in 1 2 3 4 5; do echo \"alive $id\" >> {log}; sleep 0.04; done; \
         echo \"end $id\" >> {log}",
        log = log.display()
    );
    let script = format!(
        "for i in $(seq 10); do '{redlock_bin}' run -n chaos --limit 3 --ttl 1s --wait 60s \
         -- sh -c '{critical}'; done; true"
    );
    let shells: Vec<Child> = (0..8)
        .map(|_| {
            Command::new("sh")
                .args(["-c", &script])
                .env("REDLOCK_URL", &url)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let shell_pids: Vec<u32> = shells.iter().map(Child::id).collect();
    let done = AtomicBool::new(false);
    let pids: Vec<Pid> = servers.iter().map(RedisServer::pid).collect();
    let (kills, freezes) = std::thread::scope(|scope| {
        let chaos = scope.spawn(|| {
            let mut random = Random(seed);
            let (mut kills, mut freezes) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100 + random.below(300)));
                if random.below(3) == 0 {
                    let server = pids[random.below(pids.len() as u64) as usize];
                    kill(server, Signal::SIGSTOP).unwrap();
                    std::thread::sleep(Duration::from_millis(200 + random.below(1300)));
                    kill(server, Signal::SIGCONT).unwrap();
                    freezes += 1;
                } else {
                    let running = redlocks_of(&shell_pids);
                    if !running.is_empty() {
                        let victim = running[random.below(running.len() as u64) as usize];
                        let _ = kill(Pid::from_raw(victim), Signal::SIGKILL);
                        kills += 1;
                    }
                }
            }
            (kills, freezes)
        });
        for mut shell in shells {
            assert!(shell.wait().unwrap().success());
        }
        done.store(true, Ordering::Relaxed);
        chaos.join().unwrap()
    });
    check_marks(
        &log,
        3,
        &format!("seed {seed}, {kills} kills, {freezes} freezes"),
    );
}

/// The redlocks the shell loops run now: their children named redlock.
fn redlocks_of(shells: &[u32]) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let parent: Option<u32> = rest.split(' ').nth(1).and_then(|p| p.parse().ok());
        if head.ends_with("(redlock") && parent.is_some_and(|p| shells.contains(&p)) {
            found.push(pid);
        }
    }
    found
}

/// Checks the marks in `log`: each run's interval runs from its start line to its last line
/// (a killed command writes no end); at no line are more than `limit` intervals open, and
/// each place's fences increase in the order the runs started.
fn check_marks(log: &Path, limit: usize, context: &str) {
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let mut last_line: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        last_line.insert(line[1], i);
    }
    let mut open: Vec<&str> = Vec::new();
    let mut most = 0;
    let mut fences: BTreeMap<&str, u64> = BTreeMap::new();
    let mut runs = 0;
    for (i, line) in lines.iter().enumerate() {
        if line[0] == "start" {
            runs += 1;
            open.push(line[1]);
            let (place, fence) = (line[2], line[3].parse::<u64>().unwrap());
            let last = fences.insert(place, fence).unwrap_or(0);
            assert!(
                fence > last,
                "place {place}: fence {fence} after {last} ({context}):\n{text}"
            );
        }
        most = most.max(open.len());
        assert!(
            open.len() <= limit,
            "{} runs at once at line {i} ({context}):\n{text}",
            open.len()
        );
        open.retain(|id| last_line[id] > i);
    }
    eprintln!("{runs} runs, at most {most} at once ({context})");
    assert!(runs >= 40, "too few runs got through ({context}):\n{text}");
    assert!(
        most >= 2,
        "the runs never overlapped: not a semaphore ({context})"
    );
}

/// A small deterministic generator (xorshift), so a failing schedule can be replayed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A frozen server costs `status` of a semaphore one request time-out (3 s), not one per
/// place: 5 places took 15 s before. The bound is the point; 9 s leaves room on a loaded
/// machine.
#[test]
fn a_frozen_server_costs_status_one_timeout_not_one_per_place() {
    let servers = start_servers(3);
    for server in &servers {
        let _: () = server.cmd(&["SET", &keys("f").limit, "5", "PX", "60000"]);
        let _: () = server.cmd(&["SET", "redlock:{f}:slot:4", "someone", "PX", "60000"]);
    }
    servers[2].freeze();
    let started = std::time::Instant::now();
    let output = redlock(&urls(&servers))
        .args(["status", "-n", "f"])
        .output()
        .unwrap();
    let took = started.elapsed();
    servers[2].thaw();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("lock 'f' has 1 of 5 places held"),
        "{stdout}"
    );
    assert!(took < Duration::from_secs(9), "{took:?}");
}
