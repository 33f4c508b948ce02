//! Signals sent to redlock reach the command, except those ignored when it started; the
//! command's status is kept and the lock is freed at once.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::unistd::Pid;

use crate::support::{
    FORWARDED, Holder, RedisServer, Terminal, is_dead, keys, read_pid, redlock,
    wait_for_subscriber, wait_until,
};

#[test]
fn each_forwarded_signal_reaches_the_command() {
    let server = RedisServer::start();
    for signal in FORWARDED {
        let name = &signal.as_str()[3..];
        // `wait` returns as soon as a trapped signal arrives; the trap chooses the exit status.
        let script = format!(
            "trap 'echo got-{name} > got; exit 42' {name}; sleep 1000 & echo $$ > pid; echo ready; wait"
        );
        // A long TTL: a lock still there after exit would be there for a minute.
        let mut holder =
            Holder::start_script(&server.url(), &["-n", "sig", "--ttl", "60s"], &script);
        kill(holder.redlock_pid(), signal).unwrap();
        let got = holder.path("got");
        let (status, stderr) = holder.wait();
        assert_eq!(status.code(), Some(42), "{name}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(got).unwrap(),
            format!("got-{name}\n")
        );
        assert_eq!(
            server.cmd::<i64>(&["EXISTS", &keys("sig").lock]),
            0,
            "{name}: lock not released"
        );
    }
}

#[test]
fn a_signal_that_kills_the_command_gives_128_plus_n() {
    let server = RedisServer::start();
    let mut holder = Holder::start_script(
        &server.url(),
        &["-n", "sig"],
        "echo $$ > pid; echo ready; exec sleep 1000",
    );
    kill(holder.redlock_pid(), Signal::SIGTERM).unwrap();
    let (status, _) = holder.wait();
    assert_eq!(status.code(), Some(143));
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("sig").lock]), 0);
}

#[test]
fn a_signal_while_waiting_ends_the_wait_with_128_plus_n() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "queue"]);
    let waiter = redlock(&server.url())
        .args(["run", "-n", "queue", "--wait", "5m", "--", "echo", "ran"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "queue");
    kill(Pid::from_raw(waiter.id() as i32), Signal::SIGINT).unwrap();
    let output = waiter.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "redlock: interrupted by SIGINT while waiting for the lock\n"
    );
    // It left the queue: a release will not name it.
    assert_eq!(server.cmd::<i64>(&["ZCARD", &keys("queue").waiters]), 0);
    assert!(holder.finish().0.success());
}

/// `command`, started with `ignored` ignored, as `nohup` starts its command with SIGHUP ignored
/// and a non-interactive shell its background jobs with SIGINT ignored.
fn ignoring(ignored: Signal, command: &mut Command) -> &mut Command {
    // SAFETY: sigaction is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            signal(ignored, SigHandler::SigIgn)?;
            Ok(())
        })
    }
}

#[test]
fn sighup_ignored_at_start_does_not_end_a_wait() {
    ignored_at_start_does_not_end_a_wait(Signal::SIGHUP);
}

#[test]
fn sigint_ignored_at_start_does_not_end_a_wait() {
    ignored_at_start_does_not_end_a_wait(Signal::SIGINT);
}

/// A signal ignored when redlock started does not end a wait (issue 10): the waiter takes the
/// lock when the holder is done and runs its command.
fn ignored_at_start_does_not_end_a_wait(ignored: Signal) {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["-n", "y"]);
    let dir = tempfile::tempdir().unwrap();
    let waiter = ignoring(ignored, &mut redlock(&server.url()))
        .args(["run", "-n", "y", "--wait", "60s", "--", "sh", "-c"])
        .arg("echo x > took-over")
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_subscriber(&server, "y");
    for _ in 0..3 {
        kill(Pid::from_raw(waiter.id() as i32), ignored).unwrap();
    }
    // Had a signal ended the wait, the waiter would be gone when the lock is released.
    assert!(holder.finish().0.success());
    let output = waiter.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{ignored}: {:?} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("took-over").exists());
}

#[test]
fn sighup_ignored_at_start_is_not_forwarded() {
    ignored_at_start_is_not_forwarded(Signal::SIGHUP);
}

#[test]
fn sigint_ignored_at_start_is_not_forwarded() {
    ignored_at_start_is_not_forwarded(Signal::SIGINT);
}

/// A signal ignored when redlock started is not forwarded while the command runs, and the
/// command starts with it ignored too (issue 10).
fn ignored_at_start_is_not_forwarded(ignored: Signal) {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The command notes what it ignores, then takes the signal back at its default, as a
    // program with a handler of its own would: a forwarded signal would kill it.
    let outer = "grep ^SigIgn: /proc/$$/status > ignored; \
                 exec env --default-signal=\"$1\" sh -c \"$2\"";
    let inner = "trap 'exit 3' USR1; echo > ready; sleep 1000 & wait";
    let command = ignoring(ignored, &mut redlock(&server.url()))
        .args(["run", "-n", "fwd", "--", "sh", "-c", outer, "sh"])
        .args([&ignored.as_str()[3..], inner])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the command is ready", || dir.path().join("ready").exists());
    let redlock_pid = Pid::from_raw(command.id() as i32);
    for _ in 0..3 {
        kill(redlock_pid, ignored).unwrap();
    }
    // USR1 is forwarded after them, had they been caught: a signalfd hands out the
    // lowest-numbered pending signal first, and HUP and INT come before USR1.
    kill(redlock_pid, Signal::SIGUSR1).unwrap();
    let output = command.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{ignored}: {:?} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = std::fs::read_to_string(dir.path().join("ignored")).unwrap();
    let mask = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:\t"), 16).unwrap();
    assert_ne!(mask & (1 << (ignored as i32 - 1)), 0, "{ignored}: {line}");
}

/// In a terminal the command gets the terminal: it can read it (a background process group
/// would be stopped by SIGTTIN), and Ctrl-C reaches it directly.
#[test]
fn in_a_terminal_the_command_reads_it_and_gets_ctrl_c() {
    let server = RedisServer::start();
    let redlock = env!("CARGO_BIN_EXE_redlock");
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    let inner = format!(
        "'{redlock}' run -n tty -- sh -c 'echo $$ > {}; read line; echo \"got $line\"; echo ready; exec sleep 1000'; echo \"status $?\"",
        pid.display()
    );
    let mut terminal = Terminal::start(&inner, &server.url());
    terminal.type_in("typed\n");
    terminal.expect("got typed");
    terminal.expect("ready");
    terminal.press_until("\x03", "status 130", &pid); // Ctrl-C
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("tty").lock]), 0);
}

/// Ctrl-Z stops the command and redlock with it, as a job; `fg` brings both back.
#[test]
fn ctrl_z_suspends_the_job_and_fg_resumes_it() {
    let server = RedisServer::start();
    let redlock = env!("CARGO_BIN_EXE_redlock");
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    let mut terminal = Terminal::start("bash --norc --noprofile -i", &server.url());
    terminal.type_in(&format!(
        "'{redlock}' run -n job -- sh -c 'echo $$ > {}; echo rea''dy; read line; echo \"got $line\"'\n",
        pid.display()
    ));
    terminal.expect("ready");
    terminal.press_until("\x1a", "Stopped", &pid); // Ctrl-Z
    assert_eq!(
        server.cmd::<i64>(&["EXISTS", &keys("job").lock]),
        1,
        "a suspended job keeps its lease"
    );
    // Ctrl-U first: a repeated Ctrl-Z may have left a character on the shell's line.
    terminal.type_in("\x15fg\n");
    terminal.type_in("typed\n");
    terminal.expect("got typed");
    terminal.type_in("echo \"sta\"\"tus $?\"\n");
    terminal.expect("status 0");
    assert_eq!(server.cmd::<i64>(&["EXISTS", &keys("job").lock]), 0);
    terminal.type_in("exit\n");
}

/// Ctrl-C in a terminal reaches the command once: from the terminal, not again from redlock.
#[test]
fn ctrl_c_in_a_terminal_is_delivered_once() {
    let server = RedisServer::start();
    let redlock = env!("CARGO_BIN_EXE_redlock");
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    let inner = format!(
        "'{redlock}' run -n once -- bash -c 'echo $$ > {}; trap \"echo got-INT\" INT; echo ready; read -r line; echo \"line $line\"'; echo \"status $?\"",
        pid.display()
    );
    let mut terminal = Terminal::start(&inner, &server.url());
    terminal.expect("ready");
    terminal.press_until("\x03", "got-INT", &pid);
    terminal.type_in("one\n");
    terminal.expect("status 0");
    assert_eq!(
        terminal.seen.matches("got-INT").count(),
        1,
        "{}",
        terminal.seen
    );
}

/// A job stopped for longer than its lease: the dead-man switch kills redlock before the lease
/// ends, and the guard takes the command with it, though both were stopped.
#[test]
fn a_job_stopped_longer_than_its_lease_is_killed() {
    let server = RedisServer::start();
    let redlock = env!("CARGO_BIN_EXE_redlock");
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let mut terminal = Terminal::start("bash --norc --noprofile -i", &server.url());
    terminal.type_in(&format!(
        "'{redlock}' run -n nap --ttl 1s -- sh -c 'echo $$ > {}; echo rea''dy; read line'\n",
        pid_file.display()
    ));
    terminal.expect("ready");
    let command = read_pid(&pid_file);
    terminal.press_until("\x1a", "Stopped", &pid_file); // Ctrl-Z
    wait_until("the stopped command is killed", || is_dead(command));
    // (That this happens before the lease ends is checked with a contender in lease.rs.)
    wait_until("the lease runs out", || {
        server.cmd::<i64>(&["EXISTS", &keys("nap").lock]) == 0
    });
    terminal.type_in("\n");
    terminal.expect("Killed");
    terminal.type_in("exit\n");
}

/// After Ctrl-Z and `bg` the job runs on in the background, and the shell keeps its terminal.
#[test]
fn bg_leaves_the_terminal_to_the_shell() {
    let server = RedisServer::start();
    let redlock = env!("CARGO_BIN_EXE_redlock");
    let dir = tempfile::tempdir().unwrap();
    // The command waits on a FIFO, with no process forked: a Ctrl-Z that lands while dash
    // vforks (a `sleep` in a loop) stops the child before its exec and leaves dash in the
    // kernel, unable to stop until it is continued, and no shell then sees the job stop.
    let go = dir.path().join("go");
    nix::unistd::mkfifo(&go, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let pid = dir.path().join("pid");
    let mut terminal = Terminal::start("bash --norc --noprofile -i", &server.url());
    terminal.type_in(&format!(
        "'{redlock}' run -n bgjob -- sh -c 'echo $$ > {}; echo rea''dy; read line < {}; echo cmd''-done'\n",
        pid.display(),
        go.display()
    ));
    terminal.expect("ready");
    terminal.press_until("\x1a", "Stopped", &pid); // Ctrl-Z
    // Ctrl-U first: a repeated Ctrl-Z may have left a character on the shell's line.
    terminal.type_in("\x15bg\n");
    terminal.expect("# ");
    std::fs::write(&go, "").unwrap();
    terminal.expect("cmd-done");
    terminal.type_in("echo \"shell-\"\"alive\"\n");
    terminal.expect("shell-alive");
    wait_until("the lock is released", || {
        server.cmd::<i64>(&["EXISTS", &keys("bgjob").lock]) == 0
    });
    terminal.type_in("exit\n");
}
