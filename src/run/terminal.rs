//! The terminal: when redlock runs in the foreground of one, the command's group gets it, so
//! that the command can read it and Ctrl-C, Ctrl-\ and Ctrl-Z reach the command directly; and
//! redlock follows the command's job-control stops as a shell expects of a job.

use std::io::{self, IsTerminal};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, killpg, pthread_sigmask};
use nix::unistd::{Pid, getpgrp, getpid, tcgetpgrp, tcsetpgrp};

/// Whether redlock holds the terminal: then the command gets it (see `spawn::spawn`).
pub fn held() -> bool {
    io::stdin().is_terminal() && tcgetpgrp(io::stdin()).ok() == Some(getpgrp())
}

/// Gives the terminal to the command's group.
pub fn give_terminal(group: Pid) {
    let _ = with_sigttou_blocked(|| tcsetpgrp(io::stdin(), group));
}

/// Takes the terminal back if the command's group has it (after `bg` it does not, and then
/// taking it would steal it from the shell).
pub fn reclaim_terminal(group: Pid) {
    if tcgetpgrp(io::stdin()).ok() == Some(group) {
        let _ = with_sigttou_blocked(|| tcsetpgrp(io::stdin(), getpgrp()));
    }
}

/// The command was stopped from the terminal (Ctrl-Z): stop redlock too, as a shell expects of
/// a job, and carry on where we were when the shell continues us (`fg`, `bg`). The lease is
/// not extended while we are stopped: a stop longer than it loses the lock, as any pause does.
pub fn suspend_with(group: Pid) {
    reclaim_terminal(group);
    let _ = kill(getpid(), Signal::SIGSTOP);
    // Running again: in the foreground after `fg`, in the background after `bg`.
    if tcgetpgrp(io::stdin()).ok() == Some(getpgrp()) {
        give_terminal(group);
    }
    let _ = killpg(group, Signal::SIGCONT);
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
