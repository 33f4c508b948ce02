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
//! (`nested.rs`); several locks at once (`several.rs`); the exit status (`ending.rs`). What the
//! run finds out goes to `report::Facts`: the history, metrics and
//! pings are made from it.

mod control;
mod deadman;
mod ending;
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
mod several;
// Public for exit.rs, which names a signal in its messages.
pub mod signals;
mod spawn;
mod supervise;
mod terminal;
mod wait;

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
use ending::exit_status;
use guard::Guard;
use heartbeat::{Heartbeat, Held, LeaseEnd};
use lapse::Lapse;
use nested::{inside, outer_run};
use release::release_all;
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
    // Not safety features (docs/safety.md, "What the kernel must provide"): said, and gone on
    // without. qemu-user refuses the subreaper.
    if let Err(e) = reap::pdeathsig_works() {
        crate::say::warning(
            format!(
                "the kernel refused PR_SET_PDEATHSIG ({e}); only a helper process of the \
                 command's guard, which pauses for a moment, may be left behind should the guard \
                 be killed then (docs/safety.md); nothing to do"
            ),
            &[],
        );
    }
    if let Err(e) = reap::adopt_orphans() {
        crate::say::warning(
            format!(
                "the kernel refused to make redlock the reaper of the command's orphans \
                 (PR_SET_CHILD_SUBREAPER: {e}); init reaps them instead, and they are still \
                 stopped with the command's process group before the lock is released \
                 (docs/safety.md); nothing to do"
            ),
            &[],
        );
    }
    // Signals are blocked before any thread starts, and so in all of them.
    let mut events = Events::new()
        .context("cannot set up event handling")
        .kind(Kind::Internal)?;
    let (mut locks, me) = open(plan, facts)?;
    let deadman = DeadMan::new().kind(Kind::Internal)?;
    let taken = match take(&mut locks, plan, &me, &mut events) {
        Err(failure) if failure.kind == Kind::Unavailable => {
            facts.unavailable = true;
            return Err(unavailable(plan, failure, facts, pings));
        }
        taken => taken?,
    };
    facts.acquired = Some((Moment::now(), taken.0[0].fence));
    if let Some(pings) = pings {
        pings.start();
    }
    hold(plan, facts, locks, taken, deadman, events)
}

/// The locks over the servers (one, or several with one token), and what this run records of
/// itself in each. A run nested in a run of the same lock does not return: it becomes its
/// command (`nested.rs`).
fn open(plan: &Plan, facts: &Facts) -> Result<(Vec<Lock>, HolderInfo), Failure> {
    // The servers' connections are opened at once, without waiting for them.
    let mut locks: Vec<Lock> = Vec::new();
    for target in &plan.locks {
        let (servers, keys, timing) =
            (plan.servers.clone(), target.keys.clone(), plan.lease.timing);
        let mut lock = match locks.first() {
            None => Lock::new(servers, keys, plan.limit, timing),
            Some(first) => Lock::with_token(servers, keys, plan.limit, timing, first.token.clone()),
        };
        lock.shared = plan.shared;
        locks.push(lock);
    }
    if let ([lock], Some(outer)) = (&mut locks[..], outer_run(plan))
        && let Some(holder) = lock.holder_with(&outer.token, outer.place, REQUEST_TIMEOUT)
        && inside(&holder)
    {
        // A run inside a run of the same lock: the outer lease covers this command too.
        return Err(spawn::exec_nested(&plan.command, &outer.env));
    }
    let me = HolderInfo {
        time_limit: plan.time_limit,
        ..HolderInfo::current(
            &plan.command,
            plan.holder_label.as_deref(),
            plan.lease.kill_after,
        )
    };
    for lock in &mut locks {
        lock.record = plan.history.map(|cap| Record {
            cap,
            began: facts.began_at(),
            me: me.clone(),
            busy_exit: plan.busy_exit,
            unavailable_exit: plan.unavailable_exit(),
        });
    }
    Ok((locks, me))
}

/// The locks are ours: starts the command, supervises it, and releases the locks once it is
/// gone; every path ends in `release_all`.
fn hold(
    plan: &Plan,
    facts: &mut Facts,
    mut locks: Vec<Lock>,
    (granted, mut guard): (Vec<Granted>, Guard),
    deadman: DeadMan,
    mut events: Events,
) -> Result<u8, Failure> {
    // The leases end together, with the first to end; the first was granted first.
    let first_end = Moment::earliest(granted.iter().map(|g| g.lease_end));
    let first_sent = Moment::earliest(granted.iter().map(|g| g.sent));
    // Armed before the command starts: from here the kernel kills us if we stop running.
    let lease_end = Arc::new(LeaseEnd::new(first_end, deadman, plan.lease.kill_margin()));
    let spawned = match start(plan, &locks[0], &granted, &guard, &events) {
        Ok(spawned) => spawned,
        Err(failure) => {
            lease_end.command_gone();
            // The command never ran: --min-hold has nothing to protect.
            let code = failure.exit_code(plan.busy_exit);
            let ending = facts.not_started(code);
            release_all(
                &mut locks,
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
    let (mut listener, token) = (listen(&locks), locks[0].token.clone());
    let held = (plan.locks.iter().zip(locks).zip(&granted))
        .map(|((target, lock), granted)| Held {
            label: target.label.clone(),
            lock,
            lease_end: granted.lease_end,
        })
        .collect();
    let (sender, verbose) = (events.sender(), plan.verbose);
    let mut heartbeat = Heartbeat::new(
        held,
        plan.lease,
        first_sent,
        lease_end.clone(),
        sender,
        verbose,
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
    // From here to the exit, at most one request time-out for each lock: an extension still in
    // flight (to a frozen server) is not waited for.
    let gone = Moment::now();
    let mut locks = heartbeat.stop(HAND_BACK_PATIENCE);
    // --min-hold: leave the lock to expire on its own when the command ended early; not when
    // an operator asked for the lock.
    let keep = match stopped {
        Some(Stop::Asked | Stop::Replaced | Stop::TimedOut) => Duration::ZERO,
        _ => plan.min_hold.saturating_sub(first_sent.elapsed()),
    };
    let left = REQUEST_TIMEOUT.saturating_sub(gone.elapsed());
    let lost_before = matches!(stopped, Some(Stop::Lost(_)));
    let ending = facts.ending(exit::status_code(status));
    let lost_at_release = release_all(&mut locks, plan, keep, left, lost_before, Some(ending));
    // Only now: the server handles our hang-up after the release, not ahead of it.
    listener.stop(&mut events);
    facts.lost_at_release = lost_at_release;
    let failures = lease_end.failures();
    let lapse = Lapse::found_gone(Moment::now(), lease_end.get(), failures.as_deref());
    Ok(exit_status(status, stopped, facts, &lapse))
}

/// What listens on the control channel of each lock held: one token is in all of them.
fn listen(locks: &[Lock]) -> Listener {
    let controls = locks.iter().map(|lock| lock.keys.control.clone()).collect();
    Listener::new(locks[0].targets(), controls)
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
            let name = if plan.locks.len() == 1 {
                &plan.label
            } else {
                ""
            };
            spawn::exec_unlocked(&plan.command, name, plan.variables)
        }
    }
}

/// Takes the lock (or all the locks: `several.rs`), waiting for it if asked, and forks the
/// guard meanwhile.
fn take(
    locks: &mut [Lock],
    plan: &Plan,
    me: &HolderInfo,
    events: &mut Events,
) -> Result<(Vec<Granted>, Guard), Failure> {
    jitter::fair_start(plan.jitter, plan.verbose, events)?;
    // The guard is forked while the first request is on its way: the fork then costs no time.
    // That is before the lock is ours, so taking over from a holder does not wait for it either.
    let mut guard: Option<std::io::Result<Guard>> = None;
    let mut fork = || {
        guard.get_or_insert_with(Guard::start);
    };
    let granted = match locks {
        [lock] => vec![wait::acquire(
            lock,
            me,
            &policy(plan, &plan.label, plan.wait),
            events,
            &mut fork,
        )?],
        _ => several::take_all(locks, plan, me, events, &mut fork)?,
    };
    // Not forked above only if no request could be sent (and a later attempt then succeeded).
    let guard = guard.unwrap_or_else(Guard::start);
    let guard = match guard.context("cannot start the command's guard") {
        Ok(guard) => guard,
        Err(e) => {
            release_all(locks, plan, Duration::ZERO, REQUEST_TIMEOUT, false, None);
            return Err(Failure::new(Kind::Internal, e));
        }
    };
    events.watch_guard(guard.pid());
    if plan.verbose {
        for (target, granted) in plan.locks.iter().zip(&granted) {
            let took = granted.sent.elapsed();
            say(
                Event::Acquired,
                format!(
                    "acquired '{}' (fence {}) in {}",
                    target.label,
                    granted.fence,
                    human(took)
                ),
                &[("fence", granted.fence.into()), ("took_ms", ms(took))],
            );
        }
    }
    Ok((granted, guard))
}

/// How to take the lock named `name`, waiting up to `wait`.
fn policy<'a>(plan: &Plan, name: &'a str, wait: Duration) -> Policy<'a> {
    Policy {
        name,
        wait,
        asked: plan.wait,
        replace: plan.replace,
        timeout: plan.request_timeout,
        verbose: plan.verbose,
    }
}

/// Starts the command, with the lock's name, token and fence in its environment (and each
/// lock's fence, `several::fences`); not if its guard is gone already.
fn start(
    plan: &Plan,
    lock: &Lock,
    granted: &[Granted],
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
    // One lock is named, and its fence given, as ever; several only in REDLOCK_FENCES (an
    // empty value leaves the variable unset).
    let one = |value: String| {
        if granted.len() == 1 {
            value
        } else {
            String::new()
        }
    };
    let env = [
        (variable, one(plan.label.clone())),
        (other, String::new()),
        ("REDLOCK_TOKEN", lock.token.clone()),
        ("REDLOCK_FENCE", one(granted[0].fence.to_string())),
        (
            "REDLOCK_FENCES",
            several::fences(
                plan.locks
                    .iter()
                    .map(|t| t.label.as_str())
                    .zip(granted.iter().map(|g| g.fence)),
            ),
        ),
        ("REDLOCK_SLOT", granted[0].place.to_string()),
        (
            "REDLOCK_SHARED",
            if plan.shared { "1" } else { "" }.to_string(),
        ),
        // An outer run's, which ran its command without the lock.
        ("REDLOCK_UNLOCKED", String::new()),
    ];
    spawn::spawn(&plan.command, &env, guard)
}
