//! Several locks at once (`run --name a --name b`): all or none. The locks are tried in one
//! order (sorted, `Locks::each`), each once without waiting. When one is busy (or its servers
//! cannot be reached), those taken are given back, and the run waits for that one alone, as a
//! run of it would (its queue, its release notices, `--wait`), holding nothing else; once it has
//! it, it tries the others again. A run never waits while it holds part of its set, so runs that
//! ask for overlapping sets in any order cannot deadlock, and none blocks another with a lock
//! it cannot use yet.

use std::time::Duration;

use anyhow::anyhow;

use crate::clock::Moment;
use crate::duration::human;
use crate::exit::{Failure, Kind};
use crate::lock::{Everywhere, Extension, HolderInfo, Lock};
use crate::plan::Plan;
use crate::run::events::Events;
use crate::run::wait::{self, Granted};
use crate::say::ms;

/// Takes every lock of the plan, waiting up to `--wait` in all, or none of them.
/// `in_flight` runs while a request is on its way (see `Lock::try_acquire`).
pub fn take_all(
    locks: &mut [Lock],
    plan: &Plan,
    me: &HolderInfo,
    events: &mut Events,
    in_flight: &mut dyn FnMut(),
) -> Result<Vec<Granted>, Failure> {
    let deadline = Moment::now() + plan.wait;
    let mut granted: Vec<Option<Granted>> = locks.iter().map(|_| None).collect();
    // A try that finds a lock busy ends the run only without --wait: otherwise the history
    // records the run once, when it gives up waiting or at its release.
    let records: Vec<_> = match plan.wait.is_zero() {
        true => Vec::new(),
        false => locks.iter_mut().map(|lock| lock.record.take()).collect(),
    };
    // Once a lock of the set was taken or found held, servers that fail are no reason to run
    // the command without the locks (`--on-unavailable`): another run may hold some of them.
    let mut seen_held = false;
    let taken = loop {
        let tried = try_each(locks, plan, me, events, &mut granted, in_flight);
        seen_held |= granted.iter().any(Option::is_some);
        let Some((busy, mut refused)) = tried else {
            break refresh(locks, plan, &mut granted);
        };
        give_back(locks, plan, &mut granted);
        if refused.kind == Kind::Unavailable && seen_held {
            refused.kind = Kind::UnavailableNoPolicy;
        }
        seen_held |= refused.kind == Kind::Busy;
        let left = deadline.saturating_duration_since(Moment::now());
        let passes = matches!(
            refused.kind,
            Kind::Busy | Kind::Unavailable | Kind::UnavailableNoPolicy
        );
        if left.is_zero() && refused.kind == Kind::Busy && !records.is_empty() {
            // The wait is over: recorded as a waiter that gave up, on the lock that was busy.
            locks[busy].record = records[busy].clone();
            locks[busy].leave_queue(plan.request_timeout, true);
            break Err(gave_up(refused, plan.wait));
        }
        if left.is_zero() || !passes {
            break Err(refused);
        }
        // The one that was refused, waited for alone: with its record, as a run of it.
        if let Some(record) = records.get(busy) {
            locks[busy].record = record.clone();
        }
        let policy = super::policy(plan, &plan.locks[busy].label, left);
        let waited = wait::acquire(&mut locks[busy], me, &policy, events, in_flight);
        if !records.is_empty() {
            locks[busy].record = None;
        }
        match waited {
            Ok(one) => granted[busy] = Some(one),
            Err(mut failure) => {
                if failure.kind == Kind::Unavailable && seen_held {
                    failure.kind = Kind::UnavailableNoPolicy;
                }
                break Err(failure);
            }
        }
    };
    for (lock, record) in locks.iter_mut().zip(records) {
        lock.record = record;
    }
    taken.map(|()| granted.into_iter().flatten().collect())
}

/// Tries each lock not taken yet, in order, without waiting. `None` once all are taken; else
/// the first refused, and why.
fn try_each(
    locks: &mut [Lock],
    plan: &Plan,
    me: &HolderInfo,
    events: &mut Events,
    granted: &mut [Option<Granted>],
    in_flight: &mut dyn FnMut(),
) -> Option<(usize, Failure)> {
    for (i, lock) in locks.iter_mut().enumerate() {
        if granted[i].is_some() {
            continue;
        }
        let policy = super::policy(plan, &plan.locks[i].label, Duration::ZERO);
        match wait::acquire(lock, me, &policy, events, in_flight) {
            Ok(one) => granted[i] = Some(one),
            Err(failure) => return Some((i, failure)),
        }
    }
    None
}

/// Once all are taken: a lease taken first has run down while the others were taken (each
/// try may take a request's time-out), and is extended if less than half of it is left, so
/// that the command starts with the time to run a heartbeat's worth. One that cannot be
/// extended gives every lock back, before any command ran (69).
fn refresh(
    locks: &mut [Lock],
    plan: &Plan,
    granted: &mut [Option<Granted>],
) -> Result<(), Failure> {
    for i in 0..locks.len() {
        let Some(one) = &mut granted[i] else {
            continue;
        };
        if one.lease_end > Moment::now() + plan.lease.timing.ttl / 2 {
            continue;
        }
        let why = match locks[i].extend(plan.request_timeout, false) {
            Extension::Confirmed { lease_end, .. } => {
                one.lease_end = lease_end;
                continue;
            }
            Extension::Lost | Extension::Refused => "it was lost (deleted or taken)".to_string(),
            Extension::Unconfirmed(e) => format!("{e:#}"),
        };
        give_back(locks, plan, granted);
        let label = &plan.locks[i].label;
        let message = anyhow!("cannot keep lock '{label}' while the others were taken: {why}");
        return Err(Failure::new(Kind::UnavailableNoPolicy, message));
    }
    Ok(())
}

/// A busy refusal, said as a wait that gave up (as `wait.rs` says it).
fn gave_up(refused: Failure, wait: Duration) -> Failure {
    let mut fields = refused.fields;
    fields.push(("waited_ms", ms(wait)));
    let message = anyhow!("gave up after {}: {:#}", human(wait), refused.error);
    Failure::new(Kind::Busy, message).with_fields(fields)
}

/// Gives back the locks taken so far, before any command ran, and tells their waiters.
fn give_back(locks: &mut [Lock], plan: &Plan, granted: &mut [Option<Granted>]) {
    for (lock, one) in locks.iter_mut().zip(granted.iter_mut()) {
        if one.take().is_some() {
            lock.release(Duration::ZERO, plan.request_timeout, Everywhere::Yes, None);
        }
    }
}

/// REDLOCK_FENCES: each lock's name (or key) and fence, as a JSON object in the order taken:
/// `{"a":17,"b":4}`.
pub fn fences<'a>(each: impl Iterator<Item = (&'a str, u64)>) -> String {
    let object: serde_json::Map<String, serde_json::Value> = each
        .map(|(label, fence)| (label.to_string(), fence.into()))
        .collect();
    serde_json::Value::Object(object).to_string()
}
