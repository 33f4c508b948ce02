//! Reaping: redlock is the parent of the guard and of the command, and the reaper of the
//! orphans the command leaves. What became of them is read here, on the main thread, when
//! SIGCHLD says something changed (see `events.rs`).

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::libc;
use nix::sys::wait::WaitPidFlag;
use nix::unistd::Pid;

/// Makes redlock the reaper of orphans its command leaves (instead of init), so that they can be
/// waited for and reaped when they are stopped: a zombie nobody reaps still counts as a member of
/// the process group (PR_SET_CHILD_SUBREAPER, prctl(2)).
pub fn adopt_orphans() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Whether the kernel takes `PR_SET_PDEATHSIG`, which the guard's helper process sets for itself
/// (`guard.rs`): asked here by setting redlock's own to what it is (whoever started redlock may
/// have set one, which execve keeps).
pub fn pdeathsig_works() -> nix::Result<()> {
    let mut signal: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int where it is told; PR_SET_PDEATHSIG takes an int.
    unsafe {
        Errno::result(libc::prctl(
            libc::PR_GET_PDEATHSIG,
            &mut signal as *mut libc::c_int,
        ))?;
        Errno::result(libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong))?;
    }
    Ok(())
}

/// What became of a child redlock watches.
#[derive(Debug)]
pub enum Change {
    /// The command was stopped (SIGTSTP, SIGSTOP...), or continued after that.
    Stopped,
    Continued,
    Exited(ExitStatus),
    /// The guard died.
    GuardGone,
}

/// The children redlock waits for: the guard and, once it runs, the command. They are reaped
/// on SIGCHLD (`reap`), on the main thread.
#[derive(Debug, Default)]
pub struct Children {
    guard: Option<Pid>,
    command: Option<Pid>,
    guard_gone: bool,
}

impl Children {
    pub fn watch_guard(&mut self, guard: Pid) {
        self.guard = Some(guard);
    }

    /// From now on the command's stops, continues and exit are reported.
    pub fn watch(&mut self, command: Pid) {
        self.command = Some(command);
    }

    pub fn guard_gone(&self) -> bool {
        self.guard_gone
    }

    /// Reaps what has changed and hands it to `report`: the command's stops, continues and
    /// exit, and the guard's death. Orphans of the command's that redlock adopted are reaped
    /// too, so they do not linger as zombies.
    pub fn reap(&mut self, mut report: impl FnMut(Change)) {
        // Until the command's PID is known, only the guard is looked at: a status reaped then
        // could be the command's, and would be lost.
        let target = match (self.command, self.guard) {
            (Some(_), _) => -1,
            (None, Some(guard)) => guard.as_raw(),
            (None, None) => return,
        };
        let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
        loop {
            let mut raw = 0;
            // SAFETY: waitpid with a valid pointer to the status.
            let reaped = unsafe { libc::waitpid(target, &mut raw, flags.bits()) };
            if reaped < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            // 0: nothing more has changed; ECHILD: no child left to wait for.
            if reaped <= 0 {
                return;
            }
            let reaped = Pid::from_raw(reaped);
            let stopped_or_continued = libc::WIFSTOPPED(raw) || libc::WIFCONTINUED(raw);
            report(if Some(reaped) == self.guard {
                if stopped_or_continued {
                    continue;
                }
                self.guard_gone = true;
                Change::GuardGone
            } else if Some(reaped) != self.command {
                continue; // an orphan of the command's, adopted
            } else if libc::WIFSTOPPED(raw) {
                Change::Stopped
            } else if libc::WIFCONTINUED(raw) {
                Change::Continued
            } else {
                Change::Exited(ExitStatus::from_raw(raw))
            });
        }
    }
}
