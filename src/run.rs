//! `redlock run`: acquire → spawn → wait for {exit | lost lease | signal} → release → exit code.

use std::process::ExitStatus;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::acquire::{self, Granted, Policy};
use crate::child;
use crate::cli::RunArgs;
use crate::duration::human;
use crate::exit::{self, Classify, Failure, Kind};
use crate::heartbeat::Heartbeat;
use crate::lock::{HolderInfo, Keys, Lock};
use crate::settings::{self, Lease};
use crate::signals::{self, Caught};

/// Everything the main thread waits for, from every other thread.
#[derive(Debug)]
pub enum Event {
    Signal(Caught),
    /// A release notice (or a subscription confirmed): worth trying the lock again.
    Released,
    Exited(std::io::Result<ExitStatus>),
    Lost(String),
}

/// Upper bound for one request to the servers while taking the lock.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(args: &RunArgs) -> Result<u8, Failure> {
    let lease = settings::check_run(args).kind(Kind::Usage)?;
    let servers = settings::servers(&args.redis).kind(Kind::Usage)?;
    let (sender, events) = channel();
    signals::listen(sender.clone()).kind(Kind::Internal)?;

    let mut lock = Lock::new(servers, Keys::new(&args.prefix, &args.name), lease.timing);
    let me = HolderInfo::current(&args.command);
    // A reply later than this could not leave time to run the command safely.
    let usable = lease.timing.ttl - lease.timing.drift - lease.timing.min_validity;
    let policy = Policy {
        name: &args.name,
        wait: args.wait,
        timeout: REQUEST_TIMEOUT.min(usable),
        verbose: args.verbose,
    };
    let granted = acquire::acquire(&mut lock, &me, &policy, (&sender, &events))?;
    if args.verbose {
        eprintln!(
            "redlock: acquired '{}' (fence {}) in {}",
            args.name,
            granted.fence,
            human(granted.sent.elapsed())
        );
    }

    // From here the lock is ours: every path below ends in `release`.
    let env = [
        ("REDLOCK_NAME", args.name.clone()),
        ("REDLOCK_TOKEN", lock.token.clone()),
        ("REDLOCK_FENCE", granted.fence.to_string()),
    ];
    let (child, took_terminal) = match child::spawn(&args.command, &env) {
        Ok(spawned) => spawned,
        Err(failure) => {
            release(&mut lock, args, &granted);
            return Err(failure);
        }
    };
    let group = Pid::from_raw(child.id() as i32);
    let exit_sender = sender.clone();
    let mut child = child;
    thread::Builder::new()
        .name("waiter".into())
        .spawn(move || {
            let _ = exit_sender.send(Event::Exited(child.wait()));
        })
        .kind(Kind::Internal)?;
    let heartbeat = Heartbeat::start(
        lock,
        lease,
        granted.sent,
        granted.lease_end,
        sender,
        args.verbose,
    )
    .kind(Kind::Internal)?;

    let (status, lost) = supervise(group, lease, &events);
    if took_terminal {
        child::reclaim_terminal();
    }
    let mut lock = heartbeat.stop();
    release(&mut lock, args, &granted);
    match (status, lost) {
        (_, Some(_)) => Ok(exit::LOCK_LOST),
        (Ok(status), None) => Ok(exit::status_code(status)),
        (Err(e), None) => Err(Failure::new(
            Kind::Internal,
            anyhow::anyhow!("cannot wait for the command: {e}"),
        )),
    }
}

/// Waits for the command to end, forwarding signals, and stopping it if the lease is lost.
/// Returns its status and, if the lease was lost, why.
fn supervise(
    group: Pid,
    lease: Lease,
    events: &Receiver<Event>,
) -> (std::io::Result<ExitStatus>, Option<String>) {
    let mut lost: Option<String> = None;
    // Set once the command was sent SIGTERM for a lost lease: when SIGKILL follows.
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        let event = match kill_at {
            None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => events.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match event {
            Ok(Event::Exited(status)) => break status,
            Ok(Event::Signal(caught)) => signals::forward(group, caught),
            Ok(Event::Lost(reason)) if lost.is_none() => {
                eprintln!("redlock: lock lost: {reason}; stopping the command");
                child::signal_group(group, Signal::SIGTERM);
                kill_at = Some(Instant::now() + lease.kill_after);
                lost = Some(reason);
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                child::signal_group(group, Signal::SIGKILL);
                kill_at = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                break Err(std::io::Error::other(
                    "the waiter thread ended without a status",
                ));
            }
        }
    };
    // What the command left behind in its group must not outlive the lease either.
    let deadline = kill_at.unwrap_or_else(|| Instant::now() + lease.kill_after);
    child::stop_leftovers(group, deadline);
    (status, lost)
}

fn release(lock: &mut Lock, args: &RunArgs, granted: &Granted) {
    let started = Instant::now();
    // --min-hold: leave the lock to expire on its own when the command ended early.
    let keep = args.min_hold.saturating_sub(granted.sent.elapsed());
    let (released, errors) = lock.release(keep, REQUEST_TIMEOUT);
    if !errors.is_empty() {
        eprintln!(
            "redlock: could not release '{}' ({}); it expires within {}",
            args.name,
            errors.join("; "),
            human(lock.timing.ttl)
        );
    } else if args.verbose {
        let how = if keep.is_zero() {
            String::new()
        } else {
            format!(", kept for {} more", human(keep))
        };
        let held = if released > 0 {
            ""
        } else {
            " (it was no longer ours)"
        };
        eprintln!(
            "redlock: released '{}'{held}{how} in {}",
            args.name,
            human(started.elapsed())
        );
    }
}
