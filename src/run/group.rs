//! The command's process group, and how redlock stops it: TERM, and CONT so that a stopped
//! process can act on it; a grace period; then KILL, to the whole group (as nextest does). The
//! command runs in a group of its own so that one `killpg` reaches everything it started (see
//! `guard.rs` for who creates the group, `signals.rs` for the signals passed on to it).

use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::clock::Moment;

/// Signals the process group; returns false once no process of it is left.
pub fn signal_group(group: Pid, signal: Signal) -> bool {
    killpg(group, signal) != Err(Errno::ESRCH)
}

/// Asks the group to end: TERM, then CONT for its stopped members, which could not act on it.
/// Returns false when no process of it was left.
pub fn terminate(group: Pid) -> bool {
    if !signal_group(group, Signal::SIGTERM) {
        return false;
    }
    signal_group(group, Signal::SIGCONT);
    true
}

/// How long to wait for SIGKILLed processes to disappear before giving up on them.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// Stops whatever is left of a group whose leader has exited and been reaped: TERM (and CONT,
/// for stopped ones), then KILL at `deadline`. Returns whether anything was left. The members
/// are orphans we adopted (see `reap::adopt_orphans`), or their children: we reap the former and poll
/// for the rest with signal 0.
pub fn stop_leftovers(group: Pid, deadline: Moment) -> bool {
    if !terminate(group) {
        return false;
    }
    let mut killed = false;
    loop {
        while let Ok(status) = waitpid(Pid::from_raw(-group.as_raw()), Some(WaitPidFlag::WNOHANG)) {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        if killpg(group, None) == Err(Errno::ESRCH) {
            return true;
        }
        if !killed && Moment::now() >= deadline {
            signal_group(group, Signal::SIGKILL);
            killed = true;
        }
        // Only a process stuck in the kernel outlives SIGKILL this long; it dies on its way out.
        if killed && Moment::now() >= deadline + KILL_PATIENCE {
            return true;
        }
        thread::sleep(Duration::from_millis(2));
    }
}
