//! `redlock run`, step by step: check the settings, take the lock (waiting for it if asked,
//! `wait.rs`) while the guard is forked (`guard.rs`), start the command (`spawn.rs`), watch it
//! until it ends (`supervise.rs`), release the lock (`release.rs`), and exit with the
//! command's status, or with 76 if the lock was lost.
//!
//! The other files are what these steps stand on: the main thread's one queue of events
//! (`events.rs`), the signal policy (`signals.rs`), reaping (`reap.rs`), the process group
//! (`group.rs`), the terminal (`terminal.rs`), random pauses (`jitter.rs`), the heartbeat and
//! the dead-man switch (`heartbeat.rs`, `deadman.rs`), the lock's channels (`control.rs`;
//! `heard.rs` for what a waiter hears), and a run nested in a run of the same lock
//! (`nested.rs`). What the run finds out goes to `report::Facts`: the history, metrics and
//! pings are made from it.

mod control;
mod deadman;
mod events;
mod group;
mod guard;
mod heard;
mod heartbeat;
mod holders;
mod jitter;
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

use crate::cli::OnUnavailable;
use crate::clock::Moment;
use crate::duration::human;
use crate::exit::{self, Classify, Failure, Kind};
use crate::lock::history::Record;
use crate::lock::{HolderInfo, Lock, REQUEST_TIMEOUT};
use crate::plan::Plan;
use crate::report::{self, Facts, Outcome, pings::Pings};
use crate::say::{Event, ms, say};
use control::Listener;
use deadman::DeadMan;
use guard::Guard;
use heartbeat::{Heartbeat, LeaseEnd};
use lapse::Lapse;
use nested::{inside, outer_token};
use release::release;
use spawn::Spawned;
use supervise::{Stop, Supervisor};
use wait::Granted;
// For `redlock acquire` (ops/steps.rs), which takes the lock as a run does.
pub use events::Events;
pub use jitter::fair_start;
pub use wait::{Policy, acquire as wait_for_lock};

/// How long the heartbeat thread may take to hand the lock back once the command is gone: an
/// extension in flight to a healthy server is answered well within this.
const HAND_BACK_PATIENCE: Duration = Duration::from_millis(100);

pub fn run(plan: &Plan) -> Result<u8, Failure> {
    let mut facts = Facts::default();
    let mut pings =
        (plan.ping.as_ref()).map(|ping| Pings::new(&ping.url, ping.timeout, ping.busy_ok));
    let result = run_with(plan, &mut facts, pings.as_mut());
    if let Some(report) = facts.report(&plan.label, &result, plan.busy_exit) {
        report::finished(&report, plan.metrics_dir.as_deref(), pings.as_mut());
    }
    result
}

/// The steps of a run, with what they find out kept in `facts`; `pings` is told when the
/// command starts.
fn run_with(plan: &Plan, facts: &mut Facts, pings: Option<&mut Pings>) -> Result<u8, Failure> {
    reap::adopt_orphans()
        .context("cannot become the reaper of the command's orphans")
        .kind(Kind::Internal)?;
    // Signals are blocked before any thread starts, and so in all of them.
    let mut events = Events::new()
        .context("cannot set up event handling")
        .kind(Kind::Internal)?;
    let (mut lock, me) = open(plan, facts)?;
    let deadman = DeadMan::new().kind(Kind::Internal)?;
    let taken = match take(&mut lock, plan, &me, &mut events) {
        Err(failure) if failure.kind == Kind::Unavailable => {
            facts.unavailable = true;
            return Err(unavailable(plan, failure, facts, pings));
        }
        taken => taken?,
    };
    facts.acquired = Some((Moment::now(), taken.0.fence));
    if let Some(pings) = pings {
        pings.start();
    }
    hold(plan, facts, lock, taken, deadman, events)
}

/// The lock over the servers, and what this run records of itself in it. A run nested in a
/// run of the same lock does not return: it becomes its command (`nested.rs`).
fn open(plan: &Plan, facts: &Facts) -> Result<(Lock, HolderInfo), Failure> {
    // The servers' connections are opened at once, without waiting for them.
    let mut lock = Lock::new(
        plan.servers.clone(),
        plan.keys.clone(),
        plan.limit,
        plan.lease.timing,
    );
    lock.shared = plan.shared;
    if let Some((token, place)) = outer_token(plan)
        && let Some(outer) = lock.holder_with(&token, place, REQUEST_TIMEOUT)
        && inside(&outer)
    {
        // A run inside a run of the same lock: the outer lease covers this command too.
        return Err(spawn::exec_nested(&plan.command));
    }
    let me = HolderInfo {
        time_limit: plan.time_limit,
        ..HolderInfo::current(
            &plan.command,
            plan.holder_label.as_deref(),
            plan.lease.kill_after,
        )
    };
    lock.record = plan.history.map(|cap| Record {
        cap,
        began: facts.began_at(),
        me: me.clone(),
        busy_exit: plan.busy_exit,
        unavailable_exit: plan.unavailable_exit(),
    });
    Ok((lock, me))
}

/// The lock is ours: starts the command, supervises it, and releases the lock once it is
/// gone; every path ends in `release`.
fn hold(
    plan: &Plan,
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
        plan.lease.kill_margin(),
    ));
    let spawned = match start(plan, &lock, &granted, &guard, &events) {
        Ok(spawned) => spawned,
        Err(failure) => {
            lease_end.command_gone();
            // The command never ran: --min-hold has nothing to protect.
            let code = failure.exit_code(plan.busy_exit);
            let ending = facts.not_started(code);
            release(
                &mut lock,
                plan,
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
        plan.lease,
        granted.sent,
        lease_end.clone(),
        events.sender(),
        plan.verbose,
    );

    let (status, stopped) = Supervisor {
        spawned,
        guard: &guard,
        lease: plan.lease,
        lease_end: &lease_end,
        heartbeat: &mut heartbeat,
        events: &mut events,
        listener: &mut listener,
        token: &token,
        verbose: plan.verbose,
        time_limit: plan.time_limit.map(|limit| (started + limit, limit)),
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
        _ => plan.min_hold.saturating_sub(granted.sent.elapsed()),
    };
    let left = REQUEST_TIMEOUT.saturating_sub(gone.elapsed());
    let lost_before = matches!(stopped, Some(Stop::Lost(_)));
    let ending = facts.ending(exit::status_code(status));
    let released = release(&mut lock, plan, keep, left, lost_before, Some(ending));
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
    plan: &Plan,
    failure: Failure,
    facts: &mut Facts,
    pings: Option<&mut Pings>,
) -> Failure {
    match plan.on_unavailable {
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
                    plan.label
                ),
                &[],
            );
            let result = Err(Failure::new(
                Kind::Unavailable,
                anyhow::anyhow!("{failure}"),
            ));
            if let Some(report) = facts.report(&plan.label, &result, plan.busy_exit) {
                report::finished(&report, plan.metrics_dir.as_deref(), pings);
            }
            spawn::exec_unlocked(&plan.command, &plan.label, plan.variables)
        }
    }
}

/// Takes the lock, waiting for it if asked, and forks the guard meanwhile.
fn take(
    lock: &mut Lock,
    plan: &Plan,
    me: &HolderInfo,
    events: &mut Events,
) -> Result<(Granted, Guard), Failure> {
    let policy = Policy {
        name: &plan.label,
        wait: plan.wait,
        replace: plan.replace,
        timeout: plan.request_timeout,
        verbose: plan.verbose,
    };
    jitter::fair_start(plan.jitter, plan.verbose, events)?;
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
            release(lock, plan, Duration::ZERO, REQUEST_TIMEOUT, false, None);
            return Err(Failure::new(Kind::Internal, e));
        }
    };
    events.watch_guard(guard.pid());
    if plan.verbose {
        let took = granted.sent.elapsed();
        say(
            Event::Acquired,
            format!(
                "acquired '{}' (fence {}) in {}",
                plan.label,
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
    plan: &Plan,
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
    let (variable, other) = plan.variables;
    let env = [
        (variable, plan.label.clone()),
        (other, String::new()),
        ("REDLOCK_TOKEN", lock.token.clone()),
        ("REDLOCK_FENCE", granted.fence.to_string()),
        ("REDLOCK_SLOT", granted.place.to_string()),
        (
            "REDLOCK_SHARED",
            if plan.shared { "1" } else { "" }.to_string(),
        ),
    ];
    spawn::spawn(&plan.command, &env, guard)
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
