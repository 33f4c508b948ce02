//! `redlock run`: acquire → spawn → wait for {exit | lost lease | signal} → release → exit code.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Moment;

use anyhow::Context;
use nix::sys::signal::Signal;

use crate::acquire::{self, Policy};
use crate::child::{self, Spawned};
use crate::cli::RunArgs;
use crate::deadman::DeadMan;
use crate::duration::human;
use crate::events::{Event, Events};
use crate::exit::{self, Classify, Failure, Kind};
use crate::guard::Guard;
use crate::heartbeat::{Heartbeat, LeaseEnd};
use crate::lock::{Everywhere, HolderInfo, Keys, Lock};
use crate::settings::{self, Lease};
use crate::signals;

/// Upper bound for one request to the servers while taking the lock.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(args: &RunArgs) -> Result<u8, Failure> {
    let lease = settings::check_run(args).kind(Kind::Usage)?;
    let servers = settings::servers(&args.servers.redis, args.wait_replicas).kind(Kind::Usage)?;
    child::adopt_orphans()
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

    let me = HolderInfo::current(&args.command);
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
    let granted = acquire::acquire(&mut lock, &me, &policy, &mut events, &mut || {
        guard.get_or_insert_with(Guard::start);
    })?;
    // Not forked above only if no request could be sent (and a later attempt then succeeded).
    let guard = guard.unwrap_or_else(Guard::start);
    let mut guard = match guard.context("cannot start the command's guard") {
        Ok(guard) => guard,
        Err(e) => {
            release(&mut lock, args, Duration::ZERO, false);
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
        child::spawn(&args.command, &env, &guard)
    };
    let spawned = match spawned {
        Ok(spawned) => spawned,
        Err(failure) => {
            lease_end.command_gone();
            // The command never ran: --min-hold has nothing to protect.
            release(&mut lock, args, Duration::ZERO, false);
            return Err(failure);
        }
    };
    events.watch(spawned.pid);
    let mut heartbeat = Heartbeat::new(
        lock,
        lease,
        granted.sent,
        lease_end.clone(),
        events.sender(),
        args.verbose,
    );

    let (status, lost) = supervise(
        spawned,
        &guard,
        lease,
        &lease_end,
        &mut heartbeat,
        &mut events,
        args.verbose,
    );
    // The command and what it left behind are gone: the guard can go while we release.
    guard.dismiss();
    if spawned.has_terminal {
        child::reclaim_terminal(spawned.group);
    }
    let mut lock = heartbeat.stop();
    // --min-hold: leave the lock to expire on its own when the command ended early.
    let keep = args.min_hold.saturating_sub(granted.sent.elapsed());
    release(&mut lock, args, keep, lost.is_some());
    Ok(match lost {
        Some(_) => exit::LOCK_LOST,
        None => exit::status_code(status),
    })
}

/// Waits for the command to end, forwarding signals, following job control, and stopping it
/// if the lease is lost: SIGTERM `kill_after` before the lease ends (or at once, when an
/// extension finds the lock gone), SIGKILL when it ends. Returns the command's status and, if
/// the lease was lost, why.
fn supervise(
    spawned: Spawned,
    guard: &Guard,
    lease: Lease,
    lease_end: &LeaseEnd,
    heartbeat: &mut Heartbeat,
    events: &mut Events,
    verbose: bool,
) -> (ExitStatus, Option<String>) {
    let group = spawned.group;
    let mut lost: Option<String> = None;
    let mut stopped = false;
    // Once the lease is lost: when the command gets SIGKILL (None once it has).
    let mut kill_at: Option<Moment> = None;
    let status = loop {
        let wake = match (&lost, kill_at) {
            (None, _) => lease_end.get() - lease.kill_after,
            (Some(_), Some(at)) => at,
            // SIGKILL is out: only the exit is left to wait for.
            (Some(_), None) => Moment::now() + Duration::from_secs(3600),
        };
        let wake = heartbeat.due().map_or(wake, |due| due.min(wake));
        let event = events.recv_timeout(wake.saturating_duration_since(Moment::now()));
        let reason = match event {
            Some(Event::Exited(status)) => break status,
            Some(Event::Signal(caught)) => {
                signals::forward(group, caught, stopped);
                continue;
            }
            Some(Event::Stopped) if spawned.has_terminal => {
                child::suspend_with(spawned);
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
            Some(Event::Lost(reason)) if lost.is_none() => reason,
            Some(Event::Unguarded) => {
                eprintln!("redlock: the command's guard died; killing the command");
                child::signal_group(group, Signal::SIGKILL);
                continue;
            }
            Some(_) => continue,
            None if heartbeat.due().is_some() && lost.is_none() => match heartbeat.start_if_due() {
                Ok(()) => continue,
                Err(e) => format!("cannot start the heartbeat thread: {e}"),
            },
            None if lost.is_some() => {
                child::signal_group(group, Signal::SIGKILL);
                kill_at = None;
                continue;
            }
            None => {
                let end = lease_end.get();
                if Moment::now() < end - lease.kill_after {
                    continue; // extended meanwhile
                }
                format!(
                    "the lease could not be extended before {} of it was left",
                    human(lease.kill_after)
                )
            }
        };
        eprintln!("redlock: lock lost: {reason}; stopping the command");
        child::signal_group(group, Signal::SIGTERM);
        child::signal_group(group, Signal::SIGCONT);
        kill_at = Some((Moment::now() + lease.kill_after).min(lease_end.kill_by()));
        lost = Some(reason);
    };
    // What the command left behind in its group must not outlive the lease either.
    let deadline = match (&lost, kill_at) {
        (Some(_), Some(at)) => at,
        (Some(_), None) => Moment::now(),
        (None, _) => Moment::now() + lease.kill_after,
    };
    guard.await_step_out();
    if child::stop_leftovers(group, deadline) && verbose {
        eprintln!("redlock: stopped the processes the command left in its process group");
    }
    lease_end.command_gone();
    (status, lost)
}

/// Releases the lock, or with `keep` leaves it to expire then. After a lost lease there is
/// normally nothing left to release, so failures are only reported when `verbose`.
/// How long one server may take to answer while we take the lock. With several servers it is
/// kept small next to the TTL: a slow server must not eat the lease the others granted.
fn request_timeout(ttl: Duration, usable: Duration, servers: usize) -> Duration {
    let timeout = REQUEST_TIMEOUT.min(usable);
    match servers {
        1 => timeout,
        _ => timeout.min((ttl / 10).max(Duration::from_millis(50))),
    }
}

fn release(lock: &mut Lock, args: &RunArgs, keep: Duration, lost: bool) {
    let started = Moment::now();
    let (released, errors) = lock.release(keep, REQUEST_TIMEOUT, Everywhere::No);
    // With several servers, a majority releasing frees the lock: the rest is for --verbose.
    let freed = released >= lock.quorum();
    if !errors.is_empty() && ((!lost && !freed) || args.verbose) {
        eprintln!(
            "redlock: could not release '{}' ({}); it expires within {}",
            args.name,
            errors.join("; "),
            human(lock.timing.ttl)
        );
    } else if args.verbose {
        let held = if released > 0 {
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
}
