//! The signal policy: which signals redlock takes, how it receives them, which it forwards to
//! the command, and why. Every signal redlock receives is decided here; what it sends on its
//! own is said where it is sent: TERM, a grace period, then KILL to stop the command
//! (`group.rs`), job control with a terminal (`terminal.rs`), the guard's SIGKILL
//! (`guard.rs`), and the command's signals at start (`spawn.rs`).
//!
//! The command runs in its own process group, so that on a lost lease one `killpg` reaches
//! everything it started. The price is that signals aimed at redlock (by `kill`, by systemd, by
//! a shell killing a job) no longer reach the command on their own, so redlock catches the ones
//! that mean "shut down" or "do something" and passes them to the command's group:
//! TERM, INT, HUP, QUIT, USR1 and USR2. redlock itself does not die of them: it keeps the lease
//! alive while the command shuts down, then releases the lock and exits with the command's status.
//!
//! A terminal is different: when redlock runs in the foreground of a terminal it hands the
//! terminal to the command's group (see `spawn.rs`), so Ctrl-C and Ctrl-\ go straight to the
//! command. A signal the terminal generated is therefore not forwarded again when the command's
//! group is the terminal's foreground group: the command would see it twice.
//!
//! A signal that was ignored when redlock started (`nohup` ignores SIGHUP, a non-interactive
//! shell ignores SIGINT and SIGQUIT in its background jobs) stays ignored, by redlock and by the
//! command, as it would for any program run there: it neither ends a wait nor is forwarded.
//! `Signals::take_over` leaves it unblocked and out of the signalfd, so the kernel discards it;
//! blocked, it would be queued for the signalfd all the same (Linux keeps a blocked signal even
//! when it is ignored: `sig_ignored` in kernel/signal.c). Its disposition is left alone, and an
//! ignored disposition survives exec, so the command starts with it ignored too
//! (`spawn::spawn` resets only SIGPIPE).
//!
//! SIGKILL and SIGSTOP cannot be caught; for a SIGKILLed redlock the command's group gets
//! SIGKILL from the guard (see `guard.rs`).

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::Result;
use nix::libc;
use nix::sys::signal::{SigHandler, SigSet, Signal, killpg, signal};
use nix::sys::signalfd::{SfdFlags, SignalFd, siginfo};
use nix::unistd::{Pid, tcgetpgrp};

pub const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A caught signal: its number, and whether the kernel (a terminal) generated it.
#[derive(Debug, Clone, Copy)]
pub struct Caught {
    pub signal: i32,
    pub from_kernel: bool,
}

/// The signals redlock takes, read from a non-blocking signalfd on the main thread (see
/// `events.rs`).
pub struct Signals(SignalFd);

/// What a read from the signalfd says.
pub enum Received {
    Caught(Caught),
    /// SIGCHLD: a child exited, stopped or continued (see `reap.rs`).
    ChildChanged,
}

impl Signals {
    /// Blocks the forwarded signals that were not ignored at start, and SIGCHLD, in this
    /// thread, and so in every thread it starts later, and reads them from a signalfd. No
    /// handler runs for them on any thread: a handler would cut short a blocking read on a
    /// Redis socket with EINTR, which a socket with a timeout does not restart (signal(7)). The
    /// command starts with nothing blocked (see `spawn::spawn`).
    ///
    /// Call this before starting any thread.
    pub fn take_over() -> Result<Signals> {
        // An ignored SIGCHLD (inherited from a parent that ignores it) would have the kernel
        // reap the command itself, and its exit would never be seen.
        // SAFETY: SIG_DFL installs no handler.
        unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) }?;
        let mut set = SigSet::empty();
        let taken = FORWARDED.iter().filter(|&&signal| !ignored(signal));
        for signal in taken.chain(&[libc::SIGCHLD]) {
            set.add(Signal::try_from(*signal).expect("a valid signal number"));
        }
        set.thread_block()?;
        Ok(Signals(SignalFd::with_flags(
            &set,
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )?))
    }

    /// The next signal received, if one is there.
    pub fn read(&mut self) -> Option<Received> {
        let info = self.0.read_signal().ok()??;
        Some(if info.ssi_signo == libc::SIGCHLD as u32 {
            Received::ChildChanged
        } else {
            Received::Caught(caught(&info))
        })
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Whether `signal` is ignored (SIG_IGN), as it is at start when redlock's parent left it so.
fn ignored(signal: i32) -> bool {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: a null new action only reads the current one into `current` (sigaction(2)).
    let read = unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) };
    // SAFETY: sigaction filled `current` in when it succeeded.
    read == 0 && unsafe { current.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// What a signalfd read says of a signal.
fn caught(info: &siginfo) -> Caught {
    Caught {
        signal: info.ssi_signo as i32,
        from_kernel: info.ssi_code == libc::SI_KERNEL,
    }
}

/// Passes a caught signal to the command's process group, unless it has it already. A stopped
/// command cannot act on a request to end, so it is continued after one (as systemd does).
pub fn forward(group: Pid, caught: Caught, stopped: bool) {
    let delivered_by_terminal =
        caught.from_kernel && tcgetpgrp(std::io::stdin()).ok() == Some(group);
    if delivered_by_terminal {
        return;
    }
    let Ok(signal) = Signal::try_from(caught.signal) else {
        return;
    };
    // ESRCH: the group is already gone, which is what the signal asked for.
    let _ = killpg(group, signal);
    let ends = matches!(
        signal,
        Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT
    );
    if stopped && ends {
        let _ = killpg(group, Signal::SIGCONT);
    }
}
