//! `redlock run`, step by step: check the settings, take the lock (waiting for it if asked,
//! `wait.rs`) while the guard is forked (`guard.rs`), start the command (`spawn.rs`), watch it
//! until it ends (`supervise.rs`), release the lock (`release.rs`), and exit with the
//! command's status, or with 76 if the lock was lost.
//!
//! The other files are what these steps stand on: the main thread's one queue of events
//! (`events.rs`), the signal policy (`signals.rs`), reaping (`reap.rs`), the process group
//! (`group.rs`), the terminal (`terminal.rs`), the heartbeat and the dead-man switch
//! (`heartbeat.rs`, `deadman.rs`), the lock's channels (`control.rs`; `heard.rs` for what a
//! waiter hears), and a run nested in a run of the same lock (`nested.rs`). What the run
//! finds out goes to `report::Facts`: the history, metrics and pings are made from it.

mod control;
mod deadman;
mod events;
mod group;
mod guard;
mod heard;
mod heartbeat;
mod holders;
mod lapse;
mod nested;
mod reap;
mod release;
mod replacing;
// Public for exit.rs, which names a signal in its messages.
pub mod signals;
mod spawn;
mod supervise;
mod terminal;
mod wait;

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{OnUnavailable, RunArgs};
use crate::clock::Moment;
use crate::duration::human;
use crate::exit::{self, Classify, Failure, Kind};
use crate::lock::history::Record;
use crate::lock::{HolderInfo, Lock, REQUEST_TIMEOUT};
use crate::report::{self, Facts, Outcome, pings::Pings};
use crate::say::{Event, ms, say};
use crate::settings::{self, Lease};
use control::Listener;
use deadman::DeadMan;
use events::Events;
use guard::Guard;
use heartbeat::{Heartbeat, LeaseEnd};
use lapse::Lapse;
use nested::{inside, outer_token};
use release::release;
use spawn::Spawned;
use supervise::{Stop, Supervisor};
use wait::{Granted, Policy};

/// How long the heartbeat thread may take to hand the lock back once the command is gone: an
/// extension in flight to a healthy server is answered well within this.
const HAND_BACK_PATIENCE: Duration = Duration::from_millis(100);

pub fn run(args: &RunArgs) -> Result<u8, Failure> {
    let mut facts = Facts::default();
    let mut pings = args
        .ping
        .as_deref()
        .map(|url| Pings::new(url, args.ping_timeout, args.ping_busy));
    let result = run_with(args, &mut facts, pings.as_mut());
    if let Some(report) = facts.report(args.lock.label(), &result, args.conflict_exit_code) {
        report::finished(&report, args.metrics_dir.as_deref(), pings.as_mut());
    }
    result
}

/// The steps of a run, with what they find out kept in `facts`; `pings` is told when the
/// command starts.
fn run_with(args: &RunArgs, facts: &mut Facts, pings: Option<&mut Pings>) -> Result<u8, Failure> {
    let lease = settings::check_run(args).kind(Kind::Usage)?;
    reap::adopt_orphans()
        .context("cannot become the reaper of the command's orphans")
        .kind(Kind::Internal)?;
    // Signals are blocked before any thread starts, and so in all of them.
    let mut events = Events::new()
        .context("cannot set up event handling")
        .kind(Kind::Internal)?;
    let (mut lock, me) = open(args, lease, facts)?;
    let deadman = DeadMan::new().kind(Kind::Internal)?;
    let taken = match take(&mut lock, args, &me, lease, &mut events) {
        Err(failure) if failure.kind == Kind::Unavailable => {
            facts.unavailable = true;
            return Err(unavailable(args, failure, facts, pings));
        }
        taken => taken?,
    };
    facts.acquired = Some((Moment::now(), taken.0.fence));
    if let Some(pings) = pings {
        pings.start();
    }
    hold(args, lease, facts, lock, taken, deadman, events)
}

/// The lock over the servers, and what this run records of itself in it. A run nested in a
/// run of the same lock does not return: it becomes its command (`nested.rs`).
fn open(args: &RunArgs, lease: Lease, facts: &Facts) -> Result<(Lock, HolderInfo), Failure> {
    let servers = settings::servers(&args.servers.redis, args.wait_replicas).kind(Kind::Usage)?;
    // The servers' connections are opened at once, without waiting for them.
    let mut lock = Lock::new(
        servers,
        args.lock.keys(&args.servers.prefix()).kind(Kind::Usage)?,
        usize::from(args.limit),
        lease.timing,
    );
    if let Some((token, place)) = outer_token(args)
        && let Some(outer) = lock.holder_with(&token, place, REQUEST_TIMEOUT)
        && inside(&outer)
    {
        // A run inside a run of the same lock: the outer lease covers this command too.
        return Err(spawn::exec_nested(&args.command));
    }
    let me = HolderInfo {
        time_limit: args.timeout,
        ..HolderInfo::current(&args.command, args.label.as_deref(), lease.kill_after)
    };
    lock.record = (args.history > 0).then(|| Record {
        cap: args.history as usize,
        began: facts.began_at(),
        me: me.clone(),
        busy_exit: args.conflict_exit_code,
        unavailable_exit: match args.on_unavailable {
            OnUnavailable::Fail => Some(exit::UNAVAILABLE),
            OnUnavailable::Skip => Some(args.conflict_exit_code),
            OnUnavailable::Run => None,
        },
    });
    Ok((lock, me))
}

/// The lock is ours: starts the command, supervises it, and releases the lock once it is
/// gone; every path ends in `release`.
fn hold(
    args: &RunArgs,
    lease: Lease,
    facts: &mut Facts,
    mut lock: Lock,
    (granted, mut guard): (Granted, Guard),
    deadman: DeadMan,
    mut events: Events,
) -> Result<u8, Failure> {
    // Armed before the command starts: from here the kernel kills us if we stop running.
    let lease_end = Arc::new(LeaseEnd::new(
        granted.lease_end,
        deadman,
        lease.kill_margin(),
    ));
    let spawned = match start(args, &lock, &granted, &guard, &events) {
        Ok(spawned) => spawned,
        Err(failure) => {
            lease_end.command_gone();
            // The command never ran: --min-hold has nothing to protect.
            let code = failure.exit_code(args.conflict_exit_code);
            let ending = facts.not_started(code);
            release(
                &mut lock,
                args,
                Duration::ZERO,
                REQUEST_TIMEOUT,
                false,
                Some(ending),
            );
            return Err(failure);
        }
    };
    // --timeout counts from here: the command's start.
    let started = Moment::now();
    facts.started = Some((std::time::SystemTime::now(), started));
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

    let (status, stopped) = Supervisor {
        spawned,
        guard: &guard,
        lease,
        lease_end: &lease_end,
        heartbeat: &mut heartbeat,
        events: &mut events,
        listener: &mut listener,
        token: &token,
        verbose: args.verbose,
        time_limit: args.timeout.map(|limit| (started + limit, limit)),
    }
    .supervise();
    facts.ended = Some((Moment::now(), exit::status_code(status)));
    facts.stopped = match stopped {
        Some(Stop::Lost(_) | Stop::Asked) => Some(Outcome::Lost),
        Some(Stop::TimedOut) => Some(Outcome::Timeout),
        Some(Stop::Replaced) => Some(Outcome::Replaced),
        None => None,
    };
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
        Some(Stop::Asked | Stop::Replaced | Stop::TimedOut) => Duration::ZERO,
        _ => args.min_hold.saturating_sub(granted.sent.elapsed()),
    };
    let left = REQUEST_TIMEOUT.saturating_sub(gone.elapsed());
    let lost_before = matches!(stopped, Some(Stop::Lost(_)));
    let ending = facts.ending(exit::status_code(status));
    let released = release(&mut lock, args, keep, left, lost_before, Some(ending));
    // Only now: the server handles our hang-up after the release, not ahead of it.
    listener.stop(&mut events);
    facts.lost_at_release = released.lost();
    let failures = lease_end.failures();
    let lapse = Lapse::found_gone(Moment::now(), lease_end.get(), failures.as_deref());
    Ok(exit_status(status, stopped, facts, &lapse))
}

/// `--on-unavailable`: the servers could not be reached (the lock was not taken). With `run`,
/// the metrics and the final ping are written before redlock gives the command its place.
fn unavailable(
    args: &RunArgs,
    failure: Failure,
    facts: &mut Facts,
    pings: Option<&mut Pings>,
) -> Failure {
    match args.on_unavailable {
        OnUnavailable::Fail => failure,
        OnUnavailable::Skip => Failure::new(
            Kind::Busy,
            anyhow::anyhow!("{failure}; skipped, as if busy (--on-unavailable skip)"),
        ),
        OnUnavailable::Run => {
            say(
                Event::Unlocked,
                format!(
                    "WARNING: running the command WITHOUT the lock '{}' \
                     (--on-unavailable run): {failure}",
                    args.lock.label()
                ),
                &[],
            );
            let result = Err(Failure::new(
                Kind::Unavailable,
                anyhow::anyhow!("{failure}"),
            ));
            if let Some(report) = facts.report(args.lock.label(), &result, args.conflict_exit_code)
            {
                report::finished(&report, args.metrics_dir.as_deref(), pings);
            }
            spawn::exec_unlocked(&args.command, &args.lock)
        }
    }
}

/// Takes the lock, waiting for it if asked, and forks the guard meanwhile.
fn take(
    lock: &mut Lock,
    args: &RunArgs,
    me: &HolderInfo,
    lease: Lease,
    events: &mut Events,
) -> Result<(Granted, Guard), Failure> {
    // A reply later than this could not leave time to run the command safely.
    let usable = lease.timing.ttl - lease.timing.drift - lease.timing.min_validity;
    let policy = Policy {
        name: args.lock.label(),
        wait: args.wait,
        replace: args.replace,
        timeout: request_timeout(lease.timing.ttl, usable, args.servers.redis.len()),
        verbose: args.verbose,
    };
    // The guard is forked while the first request is on its way: the fork then costs no time.
    // That is before the lock is ours, so taking over from a holder does not wait for it either.
    let mut guard: Option<std::io::Result<Guard>> = None;
    let granted = wait::acquire(lock, me, &policy, events, &mut || {
        guard.get_or_insert_with(Guard::start);
    })?;
    // Not forked above only if no request could be sent (and a later attempt then succeeded).
    let guard = guard.unwrap_or_else(Guard::start);
    let guard = match guard.context("cannot start the command's guard") {
        Ok(guard) => guard,
        Err(e) => {
            release(lock, args, Duration::ZERO, REQUEST_TIMEOUT, false, None);
            return Err(Failure::new(Kind::Internal, e));
        }
    };
    events.watch_guard(guard.pid());
    if args.verbose {
        let took = granted.sent.elapsed();
        say(
            Event::Acquired,
            format!(
                "acquired '{}' (fence {}) in {}",
                args.lock.label(),
                granted.fence,
                human(took)
            ),
            &[("fence", granted.fence.into()), ("took_ms", ms(took))],
        );
    }
    Ok((granted, guard))
}

/// Starts the command, with the lock's name, token and fence in its environment; not if its
/// guard is gone already.
fn start(
    args: &RunArgs,
    lock: &Lock,
    granted: &Granted,
    guard: &Guard,
    events: &Events,
) -> Result<Spawned, Failure> {
    if events.children().guard_gone() {
        return Err(Failure::new(
            Kind::Internal,
            anyhow::anyhow!("the command's guard died before the command could start"),
        ));
    }
    let (variable, other) = args.lock.variables();
    let env = [
        (variable, args.lock.label().to_string()),
        (other, String::new()),
        ("REDLOCK_TOKEN", lock.token.clone()),
        ("REDLOCK_FENCE", granted.fence.to_string()),
        ("REDLOCK_SLOT", granted.place.to_string()),
    ];
    spawn::spawn(&args.command, &env, guard)
}

/// redlock's exit status, from how the run ended (`Facts::held`): the command's own, or 76 if
/// the lock was lost (and then why: `lapse`, for a lock the release found gone), 77 when
/// replaced, 124 at --timeout; said in an `exiting` line unless it is the command's.
fn exit_status(status: ExitStatus, stopped: Option<Stop>, facts: &Facts, lapse: &Lapse) -> u8 {
    let outcome = facts.held();
    let code = outcome.held_exit(exit::status_code(status));
    let own = exit::describe_status(status);
    let lost = |why: &str| format!("exiting with 76: {why}; the command's own status was {own}");
    let (reason, message) = match (outcome, stopped) {
        (Outcome::Ran | Outcome::Busy | Outcome::Unavailable, _) => return code,
        (Outcome::Timeout, _) => (
            "timeout",
            format!(
                "exiting with 124: the command ran for its --timeout; its own status was {own}"
            ),
        ),
        (Outcome::Replaced, _) => (
            "replaced",
            format!(
                "exiting with 77: replaced by another run (--replace); the command's own status \
                 was {own}"
            ),
        ),
        (Outcome::Lost, Some(Stop::Lost(_))) => ("lost", lost("the lock was lost")),
        (Outcome::Lost, Some(Stop::Asked)) if facts.lost_at_release => (
            "broken",
            lost(
                "the lock was broken by `redlock release --force` (it deleted the lock before \
                 this run could let it go)",
            ),
        ),
        (Outcome::Lost, Some(Stop::Asked)) => (
            "broken",
            lost("the lock was broken by `redlock release --force` (this run let it go)"),
        ),
        (Outcome::Lost, Some(Stop::Replaced)) => (
            "lost",
            lost("the lock was lost (found at release, after --replace asked for it)"),
        ),
        (Outcome::Lost, Some(Stop::TimedOut)) => (
            "lost",
            lost("the lock was lost (found at release, after --timeout stopped the command)"),
        ),
        (Outcome::Lost, None) => (
            "lost",
            format!("lock lost: found at release that {lapse}; the command's own status was {own}"),
        ),
    };
    let fields = [
        ("exit_code", code.into()),
        ("reason", reason.into()),
        ("status", exit::status_code(status).into()),
    ];
    say(Event::Exiting, message, &fields);
    code
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
