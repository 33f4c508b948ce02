//! Which signals redlock forwards to the command, and why.
//!
//! The command runs in its own process group, so that on a lost lease one `killpg` reaches
//! everything it started. The price is that signals aimed at redlock (by `kill`, by systemd, by
//! a shell killing a job) no longer reach the command on their own, so redlock catches the ones
//! that mean "shut down" or "do something" and passes them to the command's group:
//! TERM, INT, HUP, QUIT, USR1 and USR2. redlock itself does not die of them: it keeps the lease
//! alive while the command shuts down, then releases the lock and exits with the command's status.
//!
//! A terminal is different: when redlock runs in the foreground of a terminal it hands the
//! terminal to the command's group (see `child.rs`), so Ctrl-C and Ctrl-\ go straight to the
//! command. A signal the terminal generated is therefore not forwarded again when the command's
//! group is the terminal's foreground group: the command would see it twice.
//!
//! SIGKILL and SIGSTOP cannot be caught; for a SIGKILLed redlock the command gets SIGKILL from
//! the kernel through `PR_SET_PDEATHSIG`.

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread;

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::unistd::{Pid, tcgetpgrp};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::low_level::siginfo::Cause;

use crate::child::Children;
use crate::run::Event;

pub const FORWARDED: [i32; 6] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2];

/// A caught signal: its number, and whether the kernel (a terminal) generated it.
#[derive(Debug, Clone, Copy)]
pub struct Caught {
    pub signal: i32,
    pub from_kernel: bool,
}

/// The signal handlers, installed, before their thread starts (see `listen`).
pub struct Handlers(SignalsInfo<WithOrigin>);

/// Catches the forwarded signals and SIGCHLD from now on, and blocks them in this thread, and
/// so in every thread it starts later: only the signal thread (`listen`) takes them. A handler
/// that ran on another thread would cut short its blocking read on a Redis socket with EINTR,
/// which a socket with a timeout does not restart (signal(7)). Nothing but the self-pipe write
/// happens inside the handler. The command gets a clean mask (see `unblocked`).
///
/// Call this before starting any other thread. Signals that arrive before `listen` wait in the
/// self-pipe.
pub fn install() -> Result<Handlers> {
    let signals = SignalsInfo::<WithOrigin>::new(FORWARDED.iter().chain(&[SIGCHLD]))
        .context("cannot install signal handlers")?;
    blocked_set()
        .thread_block()
        .context("cannot block signals")?;
    Ok(Handlers(signals))
}

/// Starts the signal thread: it reports each forwarded signal on `events`, and on SIGCHLD has
/// `children` reaped. It is started late on purpose: forking the guard is cheaper while redlock
/// has a single thread.
pub fn listen(handlers: Handlers, events: Sender<Event>, children: Arc<Children>) -> Result<()> {
    let Handlers(mut signals) = handlers;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if blocked_set().thread_unblock().is_err() {
                return;
            }
            for origin in signals.forever() {
                let listening = if origin.signal == SIGCHLD {
                    children.reap(&events)
                } else {
                    let caught = Caught {
                        signal: origin.signal,
                        from_kernel: origin.cause == Cause::Kernel,
                    };
                    events.send(Event::Signal(caught)).is_ok()
                };
                if !listening {
                    break;
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Runs `op` with the handled signals unblocked on this thread: for starting the command, which
/// inherits the mask of the thread that spawns it (std resets it only when it forks). One
/// arriving meanwhile is caught here instead of on the signal thread, and handled all the same.
pub fn unblocked<T>(op: impl FnOnce() -> T) -> T {
    let mask = blocked_set();
    let _ = mask.thread_unblock();
    let result = op();
    let _ = mask.thread_block();
    result
}

/// The signals only the signal thread takes: the forwarded ones and SIGCHLD.
fn blocked_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED.iter().chain(&[SIGCHLD]) {
        set.add(Signal::try_from(*signal).expect("a valid signal number"));
    }
    set
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

/// The signal's name for messages: `SIGINT`.
pub fn name(signal: i32) -> String {
    Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}
