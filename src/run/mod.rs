//! `redlock run`: acquire → spawn → wait for {exit | lost lease | signal} → release → exit code.

mod control;
mod deadman;
mod events;
mod group;
mod guard;
mod heartbeat;
mod reap;
pub mod signals;
mod spawn;
mod subscription;
mod terminal;
mod wait;

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

use crate::cli::RunArgs;
use crate::clock::Moment;
use crate::duration::human;
use crate::exit::{self, Classify, Failure, Kind};
use crate::lock::{Everywhere, HolderInfo, Keys, Lock, Released};
use crate::settings::{self, Lease};
use control::{CONFIRMED, Control, Listener};
use deadman::DeadMan;
use events::{Event, Events};
use guard::Guard;
use heartbeat::{Heartbeat, LeaseEnd};
use spawn::Spawned;
use wait::Policy;

/// Upper bound for one request to the servers while taking the lock.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(args: &RunArgs) -> Result<u8, Failure> {
    let lease = settings::check_run(args).kind(Kind::Usage)?;
    let servers = settings::servers(&args.servers.redis, args.wait_replicas).kind(Kind::Usage)?;
    reap::adopt_orphans()
        .context("cannot become the reaper of the command's orphans")
        .kind(Kind::Internal)?;
    // Signals are blocked before any thread starts, and so in all of them.
    let mut events = Events::new()
        .context("cannot set up event handling")
        .kind(Kind::Internal)?;
    // With several servers, their connections are opened at once, without waiting for them.
    let mut lock = Lock::new(
        servers,
        Keys::new(&args.servers.prefix, &args.name),
        lease.timing,
    );
    let deadman = DeadMan::new().kind(Kind::Internal)?;

    let me = HolderInfo::current(&args.command, lease.kill_after);
    // A reply later than this could not leave time to run the command safely.
    let usable = lease.timing.ttl - lease.timing.drift - lease.timing.min_validity;
    let policy = Policy {
        name: &args.name,
        wait: args.wait,
        timeout: request_timeout(lease.timing.ttl, usable, args.servers.redis.len()),
        verbose: args.verbose,
    };
    // The guard is forked while the first request is on its way: the fork then costs no time.
    // That is before the lock is ours, so taking over from a holder does not wait for it either.
    let mut guard: Option<std::io::Result<Guard>> = None;
    let granted = wait::acquire(&mut lock, &me, &policy, &mut events, &mut || {
        guard.get_or_insert_with(Guard::start);
    })?;
    // Not forked above only if no request could be sent (and a later attempt then succeeded).
    let guard = guard.unwrap_or_else(Guard::start);
    let mut guard = match guard.context("cannot start the command's guard") {
        Ok(guard) => guard,
        Err(e) => {
            release(&mut lock, args, Duration::ZERO, REQUEST_TIMEOUT, false);
            return Err(Failure::new(Kind::Internal, e));
        }
    };
    events.watch_guard(guard.pid());
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
    // Armed before the command starts: from here the kernel kills us if we stop running.
    let lease_end = Arc::new(LeaseEnd::new(
        granted.lease_end,
        deadman,
        lease.kill_margin(),
    ));
    let spawned = if events.children().guard_gone() {
        Err(Failure::new(
            Kind::Internal,
            anyhow::anyhow!("the command's guard died before the command could start"),
        ))
    } else {
        spawn::spawn(&args.command, &env, &guard)
    };
    let spawned = match spawned {
        Ok(spawned) => spawned,
        Err(failure) => {
            lease_end.command_gone();
            // The command never ran: --min-hold has nothing to protect.
            release(&mut lock, args, Duration::ZERO, REQUEST_TIMEOUT, false);
            return Err(failure);
        }
    };
    events.watch(spawned.pid);
    let mut listener = Listener::new(lock.targets(), &lock.keys.control);
    let token = lock.token.clone();
    let mut heartbeat = Heartbeat::new(
        lock,
        lease,
        granted.sent,
        lease_end.clone(),
        events.sender(),
        args.verbose,
    );

    let (status, stopped) = supervise(
        spawned,
        &guard,
        lease,
        &lease_end,
        &mut heartbeat,
        &mut events,
        &mut listener,
        &token,
        args.verbose,
    );
    // The command and what it left behind are gone: the guard can go while we release.
    guard.dismiss();
    if spawned.has_terminal {
        terminal::reclaim_terminal(spawned.group);
    }
    // From here to the exit, at most one request time-out: an extension still in flight (to a
    // frozen server) is not waited for.
    let gone = Moment::now();
    let mut lock = heartbeat.stop(HAND_BACK_PATIENCE);
    // --min-hold: leave the lock to expire on its own when the command ended early; not when
    // an operator asked for the lock.
    let keep = match stopped {
        Some(Stop::Asked) => Duration::ZERO,
        _ => args.min_hold.saturating_sub(granted.sent.elapsed()),
    };
    let left = REQUEST_TIMEOUT.saturating_sub(gone.elapsed());
    let lost_before = matches!(stopped, Some(Stop::Lost(_)));
    let released = release(&mut lock, args, keep, left, lost_before);
    // Only now: the server handles our hang-up after the release, not ahead of it.
    listener.stop(&mut events);
    let own = exit::describe_status(status);
    let why = match stopped {
        Some(Stop::Lost(_)) => "the lock was lost".to_string(),
        Some(Stop::Asked) if released.lost() => {
            "the lock was broken by `redlock release --force` (it deleted the lock before this \
             run could let it go)"
                .to_string()
        }
        Some(Stop::Asked) => {
            "the lock was broken by `redlock release --force` (this run let it go)".to_string()
        }
        None if released.lost() => {
            eprintln!(
                "redlock: lock lost: found at release that the lock was no longer ours \
                 (deleted, broken or taken by another holder); the command's own status was {own}"
            );
            return Ok(exit::LOCK_LOST);
        }
        None => return Ok(exit::status_code(status)),
    };
    eprintln!("redlock: exiting with 76: {why}; the command's own status was {own}");
    Ok(exit::LOCK_LOST)
}

/// How long the heartbeat thread may take to hand the lock back once the command is gone: an
/// extension in flight to a healthy server is answered well within this.
const HAND_BACK_PATIENCE: Duration = Duration::from_millis(100);

/// Why the command was stopped before it ended on its own.
#[derive(Debug)]
enum Stop {
    /// The lease was lost: the lock may already be another holder's.
    Lost(String),
    /// `redlock release --force` asked for the lock: it stays ours, and extended, until the
    /// command is gone and we release it.
    Asked,
}

/// Waits for the command to end, forwarding signals, following job control, and stopping it
/// if the lease is lost (or an operator asks for the lock): SIGTERM `kill_after` before the
/// lease ends (or at once, when an extension finds the lock gone or on request), SIGKILL when
/// it ends. Returns the command's status and, if the command was stopped, why.
#[allow(clippy::too_many_arguments)]
fn supervise(
    spawned: Spawned,
    guard: &Guard,
    lease: Lease,
    lease_end: &LeaseEnd,
    heartbeat: &mut Heartbeat,
    events: &mut Events,
    listener: &mut Listener,
    token: &str,
    verbose: bool,
) -> (ExitStatus, Option<Stop>) {
    let group = spawned.group;
    let mut stop: Option<Stop> = None;
    let mut stopped = false;
    // Once the command is being stopped: when it gets SIGKILL (None once it has).
    let mut kill_at: Option<Moment> = None;
    // What a control notice said, to say why an extension then found the lock gone.
    let mut heard: Option<&'static str> = None;
    let status = loop {
        let lost = matches!(stop, Some(Stop::Lost(_)));
        let wake = match (&stop, kill_at) {
            (None, _) => lease_end.get() - lease.kill_after,
            (Some(_), Some(at)) => at,
            // SIGKILL is out: only the exit is left to wait for.
            (Some(_), None) => Moment::now() + Duration::from_secs(3600),
        };
        let wake = match heartbeat.due() {
            Some(due) if !lost => due.min(wake),
            _ => wake,
        };
        // A run whose command is being stopped has nothing left to hear.
        let listen_at = listener.due().filter(|_| stop.is_none());
        let wake = listen_at.map_or(wake, |at| at.min(wake));
        let event = events.recv_timeout(wake.saturating_duration_since(Moment::now()));
        let reason = match event {
            Some(Event::Exited(status)) => break status,
            Some(Event::Signal(caught)) => {
                signals::forward(group, caught, stopped);
                continue;
            }
            Some(Event::Stopped) if spawned.has_terminal => {
                terminal::suspend_with(group);
                continue;
            }
            Some(Event::Stopped) => {
                stopped = true;
                continue;
            }
            Some(Event::Continued) => {
                stopped = false;
                continue;
            }
            Some(Event::Lost(reason)) if !lost => match heard {
                Some(heard) => Stop::Lost(format!("{reason} ({heard})")),
                None => Stop::Lost(reason),
            },
            Some(Event::Notice(notice)) if stop.is_none() => {
                let control = match notice {
                    Some(payload) => Control::parse(&payload, token),
                    None => CONFIRMED,
                };
                match control {
                    Control::Stop => {
                        // `release --force` waits for it to know it was heard; if it cannot be
                        // said, it deletes the lock after a moment, as for a holder that is gone.
                        let _ = heartbeat.acknowledge();
                        Stop::Asked
                    }
                    Control::Check(what) => match heartbeat.check_now() {
                        Ok(()) => {
                            heard = Some(what);
                            continue;
                        }
                        Err(e) => Stop::Lost(format!(
                            "{what}, and the heartbeat thread could not start to check: {e}"
                        )),
                    },
                    Control::Ignore => continue,
                }
            }
            Some(Event::Unguarded) => {
                eprintln!("redlock: the command's guard died; killing the command");
                group::signal_group(group, Signal::SIGKILL);
                continue;
            }
            Some(_) => continue,
            None => {
                let now = Moment::now();
                if listen_at.is_some_and(|at| now >= at) {
                    listener.listen_if_due(events);
                    continue;
                }
                if !lost && heartbeat.due().is_some_and(|due| now >= due) {
                    match heartbeat.start_if_due() {
                        Ok(()) => continue,
                        Err(e) => Stop::Lost(format!("cannot start the heartbeat thread: {e}")),
                    }
                } else if stop.is_some() {
                    if kill_at.is_some_and(|at| now >= at) {
                        group::signal_group(group, Signal::SIGKILL);
                        kill_at = None;
                    }
                    continue;
                } else if now < lease_end.get() - lease.kill_after {
                    continue; // extended meanwhile
                } else {
                    Stop::Lost(format!(
                        "the lease could not be extended before {} of it was left",
                        human(lease.kill_after)
                    ))
                }
            }
        };
        match &reason {
            Stop::Lost(why) => eprintln!("redlock: lock lost: {why}; stopping the command"),
            Stop::Asked => eprintln!(
                "redlock: `redlock release --force` asked for the lock; stopping the command"
            ),
        }
        group::terminate(group);
        // Never later than set already: a lease lost while the command stops on request.
        let kill = (Moment::now() + lease.kill_after).min(lease_end.kill_by());
        kill_at = Some(kill_at.map_or(kill, |at| at.min(kill)));
        stop = Some(reason);
    };
    // What the command left behind in its group must not outlive the lease either.
    let deadline = match (&stop, kill_at) {
        (Some(_), Some(at)) => at,
        (Some(_), None) => Moment::now(),
        (None, _) => Moment::now() + lease.kill_after,
    };
    guard.await_step_out();
    if group::stop_leftovers(group, deadline) && verbose {
        eprintln!("redlock: stopped the processes the command left in its process group");
    }
    lease_end.command_gone();
    (status, stop)
}

/// How long one server may take to answer while we take the lock. With several servers it is
/// kept small next to the TTL: a slow server must not eat the lease the others granted.
fn request_timeout(ttl: Duration, usable: Duration, servers: usize) -> Duration {
    let timeout = REQUEST_TIMEOUT.min(usable);
    match servers {
        1 => timeout,
        _ => timeout.min((ttl / 10).max(Duration::from_millis(50))),
    }
}

/// Releases the lock within `timeout`, or with `keep` leaves it to expire then, and says what
/// it found. After a lost lease there is normally nothing left to release, so failures are
/// only reported when `verbose`.
fn release(
    lock: &mut Lock,
    args: &RunArgs,
    keep: Duration,
    timeout: Duration,
    lost: bool,
) -> Released {
    let started = Moment::now();
    let released = lock.release(keep, timeout, Everywhere::No);
    // With several servers, a majority releasing frees the lock: the rest is for --verbose.
    let freed = released.ours >= lock.quorum();
    if !released.errors.is_empty() && ((!lost && !freed) || args.verbose) {
        eprintln!(
            "redlock: could not release '{}' ({}); it expires within {}",
            args.name,
            released.errors.join("; "),
            human(lock.timing.ttl)
        );
    } else if args.verbose {
        let held = if released.ours > 0 {
            ""
        } else {
            " (it was no longer ours)"
        };
        eprint!(
            "redlock: released '{}'{held} in {}",
            args.name,
            human(started.elapsed())
        );
        if keep.is_zero() {
            eprintln!();
        } else {
            eprintln!("; --min-hold keeps it locked for {} more", human(keep));
        }
    }
    released
}
