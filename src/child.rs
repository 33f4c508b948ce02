//! The command: spawned in its own process group, tied to redlock's life, and stopped with
//! TERM, a grace period, then KILL.

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, killpg, pthread_sigmask};
use nix::unistd::{Pid, getpgrp, getpid, getppid, tcgetpgrp, tcsetpgrp};

use crate::exit::{Failure, Kind};

/// Spawns the command. Call this from the main thread: `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the child exits (prctl(2)), and the main thread lives as long as redlock.
pub fn spawn(argv: &[OsString], env: &[(&str, String)]) -> Result<(Child, bool), Failure> {
    let parent = getpid();
    // Hand the terminal to the command only if redlock holds it: then the command can read it,
    // and Ctrl-C reaches the command directly.
    let take_terminal = io::stdin().is_terminal() && tcgetpgrp(io::stdin()).ok() == Some(getpgrp());
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid, kill, sigprocmask, tcsetpgrp)
    // run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // redlock may have died before the line above: then nothing would kill us later.
            if getppid() != parent {
                let _ = kill(getpid(), Signal::SIGKILL);
            }
            if take_terminal {
                with_sigttou_blocked(|| tcsetpgrp(io::stdin(), getpid()))?;
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| {
        let program = argv[0].to_string_lossy();
        let kind = if e.kind() == io::ErrorKind::NotFound {
            Kind::NotFound
        } else {
            Kind::CannotExecute
        };
        Failure::new(
            kind,
            anyhow::anyhow!("cannot run '{program}': {}", describe_spawn(&e)),
        )
    })?;
    if take_terminal {
        // Also from this side, as shells do: whichever runs first wins the race with exec.
        let _ = with_sigttou_blocked(|| tcsetpgrp(io::stdin(), Pid::from_raw(child.id() as i32)));
    }
    Ok((child, take_terminal))
}

/// Takes the terminal back after the command's group had it.
pub fn reclaim_terminal() {
    let _ = with_sigttou_blocked(|| tcsetpgrp(io::stdin(), getpgrp()));
}

/// A background group that calls tcsetpgrp gets SIGTTOU unless it is blocked (tcsetpgrp(3)).
fn with_sigttou_blocked<T>(op: impl FnOnce() -> nix::Result<T>) -> nix::Result<T> {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old))?;
    let result = op();
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    result
}

fn describe_spawn(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "command not found".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

/// Signals the process group; returns false once no process of it is left.
pub fn signal_group(group: Pid, signal: Signal) -> bool {
    killpg(group, signal) != Err(Errno::ESRCH)
}

/// Stops whatever is left of a group whose leader has exited and been reaped: TERM, then KILL
/// at `deadline`. Its members are not our children, so we poll for them with signal 0.
pub fn stop_leftovers(group: Pid, deadline: Instant) {
    if !signal_group(group, Signal::SIGTERM) {
        return;
    }
    while Instant::now() < deadline {
        if killpg(group, None) == Err(Errno::ESRCH) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    signal_group(group, Signal::SIGKILL);
}
