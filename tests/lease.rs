//! Lease safety: the heartbeat keeps a short lease alive, and a lost lease stops the command
//! before the lease could end on the server.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::support::{
    Holder, RedisServer, code, is_dead, keys, read_pid, redlock, start_servers, succeeded, urls,
    wait_until,
};

#[test]
fn a_one_second_ttl_is_kept_alive_for_several_seconds() {
    let server = RedisServer::start();
    let output = redlock(&server.url())
        .args([
            "run", "-v", "-n", "short", "--ttl", "1s", "--", "sleep", "3.5",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // One extension every third of a second over 3.5 s.
    let extensions = stderr.matches("redlock: extended the lease").count();
    assert!(extensions >= 8, "only {extensions} extensions:\n{stderr}");
    assert!(!stderr.contains("lost"), "{stderr}");
}

#[test]
fn an_overwritten_key_stops_the_command_and_is_left_alone() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "stolen", "--ttl", "3s"]);
    let command = holder.command_pid();
    let _: () = server.cmd(&["SET", &keys("stolen").lock, "another-owner", "PX", "60000"]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(
        stderr.contains("redlock: lock lost: the lock was deleted or taken by another holder"),
        "{stderr}"
    );
    assert!(is_dead(command));
    let value: String = server.cmd(&["GET", &keys("stolen").lock]);
    assert_eq!(value, "another-owner");
    assert!(server.cmd::<i64>(&["PTTL", &keys("stolen").lock]) > 50_000);
}

#[test]
fn a_deleted_key_is_a_lost_lock() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "gone", "--ttl", "2s"]);
    let _: () = server.cmd(&["DEL", &keys("gone").lock]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    // Extend never re-creates the key.
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("gone").lock]), 0);
}

#[test]
fn a_frozen_server_gets_the_command_killed_before_the_lease_ends() {
    let server = RedisServer::start();
    let ttl = Duration::from_secs(3);
    let mut holder = Holder::start(&server.url(), &["-n", "frozen", "--ttl", "3s"]);
    let command = holder.command_pid();
    let frozen = Instant::now();
    server.freeze();
    // Whatever extension the server accepted was sent before `frozen`, so the lease ends on the
    // server no later than frozen + ttl. The command must be dead by then.
    wait_until("the command is stopped", || is_dead(command));
    let stopped = frozen.elapsed();
    let (status, stderr) = holder.wait();
    server.thaw();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(
        stopped < ttl,
        "the command outlived its lease: stopped {stopped:?} after the freeze"
    );
    assert!(
        stderr.contains("redlock: lock lost: the lease could not be extended"),
        "{stderr}"
    );
}

#[test]
fn grandchildren_are_stopped_when_the_lock_is_lost() {
    let server = RedisServer::start();
    // One grandchild stops on SIGTERM; the other ignores it and needs the SIGKILL.
    let script = "sleep 1000 & echo $! > soft.pid; (trap '' TERM; exec sleep 1000) & echo $! > hard.pid; \
                  echo $$ > pid; echo ready; wait";
    let mut holder = Holder::start_script(&server.url(), &["-n", "tree", "--ttl", "2s"], script);
    let soft = read_pid(&holder.path("soft.pid"));
    let hard = read_pid(&holder.path("hard.pid"));
    let _: () = server.cmd(&["SET", &keys("tree").lock, "thief"]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(is_dead(soft), "the grandchild survived");
    assert!(is_dead(hard), "the TERM-ignoring grandchild survived");
}

#[test]
fn grandchildren_left_behind_are_stopped_before_release() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let status = redlock(&server.url())
        .args([
            "run",
            "-n",
            "orphans",
            "--",
            "sh",
            "-c",
            "sleep 1000 & echo $! > orphan.pid",
        ])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let orphan = read_pid(&dir.path().join("orphan.pid"));
    wait_until("the orphan is stopped", || is_dead(orphan));
}

#[test]
fn a_killed_redlock_takes_its_command_down_and_the_lock_expires() {
    let server = RedisServer::start();
    // The command's own children must go too, not only the command.
    let script = "sleep 1000 & echo $! > background.pid; echo $$ > pid; echo ready; sleep 1000";
    let mut holder = Holder::start_script(&server.url(), &["-n", "crash", "--ttl", "2s"], script);
    let command = holder.command_pid();
    let background = read_pid(&holder.path("background.pid"));
    kill(holder.redlock_pid(), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    holder.process.wait().unwrap();
    wait_until("the command dies with redlock", || is_dead(command));
    wait_until("its background child dies too", || is_dead(background));
    wait_until("the lock expires", || {
        server.cmd::<i64>(&["EXISTS", &keys("crash").lock]) == 0
    });
    // The last extension was sent before the kill, so the key ends within the TTL of it.
    assert!(killed.elapsed() < Duration::from_secs(2) + Duration::from_millis(500));
    let status = redlock(&server.url())
        .args(["run", "-n", "crash", "--", "true"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The guard is what kills the command's process group if redlock dies: if the guard itself is
/// killed, nothing would, so redlock kills the command at once.
#[test]
fn a_killed_guard_takes_the_command_down() {
    let server = RedisServer::start();
    let script = "cut -d' ' -f5 /proc/$$/stat > group; echo $$ > pid; echo ready; sleep 1000";
    let mut holder = Holder::start_script(&server.url(), &["-n", "unguarded"], script);
    let command = holder.command_pid();
    let guard = read_pid(&holder.path("group"));
    kill(Pid::from_raw(guard), Signal::SIGKILL).unwrap();
    wait_until("the command is killed", || is_dead(command));
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(128 + 9), "{stderr}");
    assert!(
        stderr.contains("redlock: the command's guard died; killing the command"),
        "{stderr}"
    );
    // The run ended normally otherwise: the lock is free.
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("unguarded").lock]), 0);
}

/// `redlock run` as a shell runs a job: in a process group of its own, whose ID is redlock's
/// PID. Its command sleeps; returns redlock and the command's PID.
fn job(url: &str, name: &str, ttl: &str, dir: &std::path::Path) -> (std::process::Child, i32) {
    let run = redlock(url)
        .args(["run", "-n", name, "--ttl", ttl, "--", "sh", "-c"])
        .arg("echo $$ > pid; exec sleep 1000")
        .current_dir(dir)
        .process_group(0)
        .spawn()
        .unwrap();
    (run, read_pid(&dir.join("pid")))
}

/// `kill -9 %1`, `timeout -s KILL` and supervisors kill a job's whole process group. The guard
/// is in a group of its own, so it survives to take the command down with redlock.
#[test]
fn killing_redlocks_process_group_takes_the_command_down() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (mut run, command) = job(&server.url(), "group-kill", "60s", dir.path());
    killpg(Pid::from_raw(run.id() as i32), Signal::SIGKILL).unwrap();
    run.wait().unwrap();
    wait_until("the command dies with redlock", || is_dead(command));
}

/// A job stopped as a whole (SIGSTOP to its process group) for longer than its lease: the
/// dead-man switch kills redlock, and the guard, in a group of its own, is not stopped with
/// the job and kills the command.
#[test]
fn stopping_redlocks_process_group_past_the_lease_kills_the_command() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (mut run, command) = job(&server.url(), "group-stop", "2s", dir.path());
    let group = Pid::from_raw(run.id() as i32);
    killpg(group, Signal::SIGSTOP).unwrap();
    wait_until("the command is killed", || is_dead(command));
    killpg(group, Signal::SIGCONT).unwrap();
    assert_eq!(run.wait().unwrap().signal(), Some(9), "the dead-man timer");
}

/// A redlock stopped (not past its lease) while its command ends: when it runs again, the
/// command's exit comes first, not the deadlines it slept through, and the run ends as the
/// command did.
#[test]
fn a_command_that_ended_while_redlock_was_stopped_is_not_a_lost_lock() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The first extension is due 2 s after the acquire, the command must be signalled by
    // about 11.8 s, and the dead-man timer fires at about 19.3 s.
    let run = redlock(&server.url())
        .args(["run", "-n", "paused", "--ttl", "20s", "--kill-after", "8s"])
        .args([
            "--heartbeat",
            "2s",
            "--",
            "sh",
            "-c",
            "echo $$ > pid; sleep 1",
        ])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let command = read_pid(&dir.path().join("pid"));
    let stopped = Instant::now();
    kill(Pid::from_raw(run.id() as i32), Signal::SIGSTOP).unwrap();
    wait_until("the command ends", || is_dead(command));
    // The point is the length of the pause: past the first two deadlines, well before the
    // dead-man timer (2.7 s and 4.5 s of slack, for a loaded machine).
    std::thread::sleep(Duration::from_millis(14_500).saturating_sub(stopped.elapsed()));
    kill(Pid::from_raw(run.id() as i32), Signal::SIGCONT).unwrap();
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("lock lost"), "{stderr}");
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_before_the_lease_ends() {
    let server = RedisServer::start();
    let ttl = Duration::from_secs(3);
    let script = "trap '' TERM; echo $$ > pid; echo ready; while :; do sleep 0.1; done";
    let mut holder =
        Holder::start_script(&server.url(), &["-n", "stubborn", "--ttl", "3s"], script);
    let command = holder.command_pid();
    let frozen = Instant::now();
    server.freeze();
    wait_until("the command is killed", || is_dead(command));
    let stopped = frozen.elapsed();
    let (status, stderr) = holder.wait();
    server.thaw();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    assert!(
        stopped < ttl,
        "the command outlived its lease: killed {stopped:?} after the freeze"
    );
}

#[test]
fn kill_after_is_the_grace_given_to_leftovers() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // A leftover that ignores SIGTERM holds redlock up for exactly the grace period.
    // The command ends only once the leftover ignores SIGTERM (it writes its pid after the trap).
    let script = "sh -c 'trap \"\" TERM; echo $$ > hard.pid.tmp; mv hard.pid.tmp hard.pid; exec sleep 1000' & \
                  while [ ! -e hard.pid ]; do sleep 0.01; done";
    let run = |grace: &str| {
        let started = Instant::now();
        let status = redlock(&server.url())
            .args([
                "run",
                "-n",
                "grace",
                "--ttl",
                "60s",
                "--kill-after",
                grace,
                "--",
                "sh",
                "-c",
                script,
            ])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        assert!(is_dead(read_pid(&dir.path().join("hard.pid"))));
        started.elapsed()
    };
    // 3 s against the default of 15 s (a quarter of the TTL): far apart on any machine.
    let short = run("3s");
    assert!(short >= Duration::from_secs(3), "{short:?}");
    assert!(short < Duration::from_secs(14), "{short:?}");
}

/// A redlock frozen with SIGSTOP cannot stop its command, so the kernel's dead-man timer kills
/// redlock and the guard kills the command, before the lease ends: a contender waiting for the
/// lock never finds the old command still running.
#[test]
fn a_frozen_redlock_and_its_command_die_before_the_lease_ends() {
    let server = RedisServer::start();
    let script = "echo $$ > pid; echo ready; while :; do sleep 0.05; done";
    let mut holder =
        Holder::start_script(&server.url(), &["-n", "frozen-self", "--ttl", "2s"], script);
    let command = holder.command_pid();
    kill(holder.redlock_pid(), Signal::SIGSTOP).unwrap();
    // A zombie waiting for init to reap it runs no code: it counts as gone.
    let check = format!(
        "if grep -qs '^State:.*[RSD]' /proc/{command}/status; then echo still-running; else echo gone; fi"
    );
    let output = redlock(&server.url())
        .args([
            "run",
            "-n",
            "frozen-self",
            "--wait",
            "30s",
            "--",
            "sh",
            "-c",
            &check,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "gone\n");
    let status = holder.process.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "redlock itself was killed by its dead-man timer"
    );
}

/// While redlock waits for the command's leftovers to stop, the guard still watches it: if
/// redlock is killed then, the leftovers die at once instead of running on without a lease.
#[test]
fn leftovers_die_with_redlock_during_their_grace() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let script = "sh -c 'trap \"\" TERM; echo $$ > hard.pid.tmp; mv hard.pid.tmp hard.pid; exec sleep 1000' & \
                  while [ ! -e hard.pid ]; do sleep 0.01; done; echo $$ > pid";
    let mut run = redlock(&server.url())
        .args([
            "run",
            "-n",
            "grace-kill",
            "--ttl",
            "60s",
            "--kill-after",
            "50s",
            "--heartbeat",
            "2s",
            "--",
            "sh",
            "-c",
            script,
        ])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let command = read_pid(&dir.path().join("pid"));
    let leftover = read_pid(&dir.path().join("hard.pid"));
    wait_until("the command has exited", || is_dead(command));
    assert!(
        !is_dead(leftover),
        "the leftover ignores SIGTERM and is inside its grace"
    );
    kill(Pid::from_raw(run.id() as i32), Signal::SIGKILL).unwrap();
    run.wait().unwrap();
    wait_until("the leftover dies with redlock", || is_dead(leftover));
}

/// How many times a server answered NOSCRIPT (INFO errorstats).
fn noscript_answers(server: &RedisServer) -> usize {
    let errors: String = server.cmd(&["INFO", "errorstats"]);
    errors
        .lines()
        .find_map(|line| line.strip_prefix("errorstat_NOSCRIPT:count="))
        .map_or(0, |count| count.trim().parse().unwrap())
}

/// A script goes by its hash, and in full to a server that does not know it (new, restarted,
/// or flushed: NOSCRIPT), once: every script of the run runs (its fences raised, extended,
/// released), and a second run sends none in full.
#[test]
fn a_server_that_does_not_know_a_script_is_sent_it_in_full_once() {
    let servers = start_servers(3);
    // Three fences that disagree: the run raises them (fence.lua) before its command starts.
    for (server, fence) in servers.iter().zip(["1", "5", "9"]) {
        let _: () = server.cmd(&["SET", &keys("trips").fence, fence]);
    }
    let run = || {
        let stdout = succeeded(
            redlock(&urls(&servers))
                .args([
                    "run",
                    "-n",
                    "trips",
                    "--ttl",
                    "1s",
                    "--heartbeat",
                    "100ms",
                    "--",
                ])
                .args(["sh", "-c", "echo $REDLOCK_FENCE; sleep 0.5"]),
        );
        String::from_utf8(stdout).unwrap().trim().to_string()
    };
    let fence = run();
    // The command's fence (the largest of the majority that granted the lock first) was
    // raised on a majority before the command started.
    let raised = servers
        .iter()
        .filter(|s| s.cmd::<String>(&["GET", &keys("trips").fence]) == fence)
        .count();
    assert!(raised >= 2, "the fence was raised on {raised} servers");
    for server in &servers {
        // Only the acquire and the extensions go by hash; after a NOSCRIPT, every script
        // goes in full on the connection (two, should the first extension be on its way).
        let noscript = noscript_answers(server);
        assert!(noscript <= 2, "{noscript} NOSCRIPT answers");
        let stats: String = server.cmd(&["INFO", "commandstats"]);
        assert!(stats.contains("cmdstat_eval:"), "{stats}");
    }
    // One server, whose every answer the run waits for: after a first run, the acquire goes by
    // hash (the release always in full); after SCRIPT FLUSH, in full again.
    let server = &servers[0];
    let _: () = server.cmd(&["SCRIPT", "FLUSH"]);
    let once = |expected_noscript: bool| {
        let before = noscript_answers(server);
        succeeded(redlock(&server.url()).args(["run", "-n", "one", "--", "true"]));
        assert_eq!(noscript_answers(server) > before, expected_noscript);
        assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("one").lock]), 0);
    };
    once(true);
    let stats = || server.cmd::<String>(&["INFO", "commandstats"]);
    let evalsha_calls = |stats: String| {
        let line = stats.lines().find(|l| l.starts_with("cmdstat_evalsha:"));
        line.map_or(0, |l| {
            l.split(['=', ',']).nth(1).unwrap().parse::<u64>().unwrap()
        })
    };
    let before = evalsha_calls(stats());
    once(false);
    assert_eq!(evalsha_calls(stats()), before + 1, "the acquire by hash");
    let _: () = server.cmd(&["SCRIPT", "FLUSH"]);
    once(true);
}

/// A release goes in full: redlock returns once a majority has answered it, and a server that
/// had forgotten the script (restarted with its data, a promoted replica, SCRIPT FLUSH) and
/// answered late (frozen here) would answer NOSCRIPT to its hash after redlock had gone,
/// keeping the lock for its TTL. Sent by hash, the frozen server kept it.
#[test]
fn a_release_reaches_servers_that_forgot_the_scripts() {
    let servers = start_servers(3);
    // The servers know the scripts: the acquire goes by hash, and is answered.
    succeeded(redlock(&urls(&servers)).args(["run", "-n", "forgot", "--", "true"]));
    let dir = tempfile::tempdir().unwrap();
    let mut run = redlock(&urls(&servers))
        .args(["run", "-n", "forgot", "--ttl", "60s", "--", "sh", "-c"])
        .arg("touch started; while [ ! -e go ]; do sleep 0.01; done")
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    wait_until("the command has started", || {
        dir.path().join("started").exists()
    });
    for server in &servers {
        let _: () = server.cmd(&["SCRIPT", "FLUSH"]);
    }
    servers[2].freeze();
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(run.wait().unwrap().success());
    servers[2].thaw();
    // Within moments (20 s at most): its lease had 60 s to run.
    for server in &servers {
        wait_until("the release has freed the lock", || {
            server.cmd::<i64>(&["EXISTS", &keys("forgot").lock]) == 0
        });
    }
}
