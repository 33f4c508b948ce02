//! Taking the lock, waiting for it if asked: no blind polling. A waiter subscribes to the lock's
//! release channel on every server, tries, and when busy sleeps until a release notice or until
//! the holder's lease would run out (plus jitter), whichever comes first.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use crate::clock::Moment;

use anyhow::anyhow;

use crate::duration::human;
use crate::exit::{Failure, Kind};
use crate::lock::view::{ASK_MARGIN, UNKNOWN_KILL_AFTER};
use crate::lock::{
    Attempt, Everywhere, Holder, HolderInfo, Lock, NotTaken, Notices, busy_message_for,
};
use crate::run::events::Events;
use crate::run::heard::{
    Heard, Heed, KEY_POLL, Turn, drain, interrupted, keyspace_heard, sleep_until,
};
use crate::say::{self, ms, say};

/// Longest random pause before retrying after a split vote.
const SPLIT_RETRY: Duration = Duration::from_millis(50);
/// How long waiters let the one a release notice names try first: a moment, should it be
/// unable to (stopped, or gone); it normally has the lock well within a millisecond.
const OTHERS_FIRST: Duration = Duration::from_millis(20);
/// How often a holder asked to let go for `--replace` is asked again, until it answers.
const REPLACE_POLL: Duration = Duration::from_millis(100);
/// Retry interval when the holder's key has no expiry, which redlock itself never leaves.
const NO_EXPIRY_RETRY: Duration = Duration::from_secs(5);
/// The first pause before trying again servers that could not be reached, within `--wait`;
/// it doubles up to `UNREACHABLE_MOST`. A Sentinel or Cluster failover takes seconds: a try a
/// second at most finds the new primary soon after it is named, without a stream of connections.
const UNREACHABLE_FIRST: Duration = Duration::from_millis(50);
const UNREACHABLE_MOST: Duration = Duration::from_secs(1);

/// A granted lease.
pub struct Granted {
    pub fence: u64,
    /// The place of the lock: 0, or one of a semaphore's N.
    pub place: usize,
    pub sent: Moment,
    pub lease_end: Moment,
}

/// How to take the lock.
pub struct Policy<'a> {
    /// The lock's name, for messages.
    pub name: &'a str,
    /// How long to wait for a busy lock.
    pub wait: Duration,
    /// Bound on each request to the servers.
    pub timeout: Duration,
    /// Say when we start waiting, and for whom.
    pub verbose: bool,
    /// `--replace`: ask the holder to stop its command and let go.
    pub replace: bool,
}

impl Policy<'_> {
    /// Whether a busy lock is waited for, so that the run joins (and, giving up, leaves) the
    /// queue of waiters: with `--wait`, and with `--replace`.
    fn queues(&self) -> bool {
        !self.wait.is_zero() || self.replace
    }
}

/// Takes the lock, waiting up to `policy.wait` for it. Stale events are drained and ignored.
/// `in_flight` runs while each attempt's request is on its way (see `Lock::try_acquire`).
pub fn acquire(
    lock: &mut Lock,
    me: &HolderInfo,
    policy: &Policy,
    events: &mut Events,
    in_flight: &mut dyn FnMut(),
) -> Result<Granted, Failure> {
    let granted = take(lock, me, policy, events, in_flight);
    // The release notices were for this wait only.
    events.stop_listening();
    // A waiter that gives up (or is interrupted) leaves the queue: a release would name it,
    // and the others would wait for it. Not when the servers failed: that would only wait for
    // them once more.
    if let Err(failure) = &granted
        && policy.queues()
        && matches!(
            failure.kind,
            Kind::Busy | Kind::LimitMismatch | Kind::Signal(_)
        )
    {
        lock.leave_queue(policy.timeout, failure.kind == Kind::Busy);
    }
    granted
}

fn take(
    lock: &mut Lock,
    me: &HolderInfo,
    policy: &Policy,
    events: &mut Events,
    in_flight: &mut dyn FnMut(),
) -> Result<Granted, Failure> {
    let Policy {
        name,
        wait,
        timeout,
        verbose,
        replace,
    } = *policy;
    let started = Moment::now();
    let mut deadline = started + wait;
    let mut replacing = Replacing::default();
    let mut subscribed = false;
    // Whether another run was seen holding the lock: servers that fail after that are no
    // reason to run without it (`--on-unavailable`).
    let mut seen_held = false;
    // With -v and --key: whether the way of waiting was said.
    let mut keyspace_said = false;
    // The pause before trying unreachable servers again.
    let mut unreachable_pause = UNREACHABLE_FIRST;
    loop {
        let attempt = lock.try_acquire(me, policy.queues(), timeout, in_flight);
        let me_token = lock.token.clone();
        let mut heed = Heed::after(&attempt, &me_token);
        let (signal, notice) = drain(events, &mut heed);
        // A signal that came in during the request ends the run as it would have ended a wait;
        // a lease granted meanwhile is given back before any command started.
        if let Some(signal) = signal {
            if let Ok(Attempt::Acquired { .. }) = attempt {
                lock.release(Duration::ZERO, timeout, Everywhere::Yes, None);
            }
            return Err(interrupted(signal));
        }
        let (holders, split) = match attempt {
            Ok(Attempt::Acquired {
                fence,
                sent,
                lease_end,
                place,
            }) => {
                return Ok(Granted {
                    fence,
                    place,
                    sent,
                    lease_end,
                });
            }
            Ok(Attempt::Busy { holders, split, .. }) => {
                seen_held = true;
                (holders, split)
            }
            Ok(Attempt::Mismatch { limit }) => {
                return Err(Failure::new(
                    Kind::LimitMismatch,
                    anyhow!(
                        "lock '{name}' is held with --limit {limit}, and this run has --limit {}: \
                         every run of a name must use the same limit",
                        lock.limit()
                    ),
                ));
            }
            Err(e) if passes(&e) && Moment::now() < deadline => {
                // Servers that cannot be reached now may be within the wait: a failover, a
                // restart, a dropped connection.
                let pause = unreachable_pause.min(deadline - Moment::now());
                unreachable_pause = (unreachable_pause * 2).min(UNREACHABLE_MOST);
                pause_to_retry(&e, pause, deadline, verbose, events, &mut heed)?;
                continue;
            }
            Err(e) => {
                let unreachable = e.downcast_ref::<NotTaken>().is_none_or(|e| e.unreachable);
                let kind = if seen_held || !unreachable {
                    Kind::UnavailableNoPolicy
                } else {
                    Kind::Unavailable
                };
                return Err(Failure::new(kind, e.context("cannot take the lock")));
            }
        };
        let now = Moment::now();
        // A replacing run subscribes before it asks: the holder's release names it, and it
        // must hear that at once, before the other waiters try (`OTHERS_FIRST`).
        if !subscribed && (replace || now < deadline) {
            listen(lock, events, name, wait, &holders, verbose);
            subscribed = true;
        }
        if replace && !split {
            // Its answer may take the holder's --kill-after: the wait lasts at least that long.
            // Not while the servers' votes are split: the holder asked must be the one most of
            // them name.
            let until = replacing.ask(lock, &holders, now, timeout, verbose);
            deadline = deadline.max(until.unwrap_or(deadline));
        } else if replace {
            // A split vote settles within moments (its contenders give their minorities back):
            // a replacing run gives the servers that long to name a holder.
            deadline = deadline.max(started + ASK_MARGIN);
        }
        if now >= deadline {
            let mut fields = holder_fields(&holders);
            let waited = if wait.is_zero() {
                String::new()
            } else {
                fields.push(("waited_ms", ms(wait)));
                format!("gave up after {}: ", human(wait))
            };
            return Err(Failure::new(
                Kind::Busy,
                anyhow!("{waited}{}", busy_message_for(name, &holders)),
            )
            .with_fields(fields));
        }
        let keyspace = keyspace_heard(lock, events, verbose, &mut keyspace_said);
        // The first place whose lease runs out.
        let remaining = holders.iter().filter_map(|h| h.remaining()).min();
        let retry_at = match remaining {
            Some(remaining) => now + remaining + jitter(remaining),
            None => now + NO_EXPIRY_RETRY,
        };
        // While a replaced holder may still answer, it is asked again now and then.
        let retry_at = if replacing.answering(&holders, now) {
            retry_at.min(now + REPLACE_POLL)
        } else {
            retry_at
        };
        // An application's key that a library may release unheard is tried again now and then
        // (a redlock holder publishes its release: no retry for it).
        let retry_at = match keyspace {
            Heard::Unheard if heed.key_events => retry_at.min(now + KEY_POLL),
            _ => retry_at,
        }
        .min(deadline);
        let mut notice = match notice {
            None | Some(Turn::Moved) => sleep_until(retry_at, events, &mut heed)?,
            turn => turn,
        };
        // While notices name others, the queue moves and our turn comes. A waiter named that
        // took the lock says so (`Moved`): sleep on until the next release, as a named waiter
        // is being served. A pause without it means the one named could not take the lock.
        loop {
            notice = match notice {
                Some(Turn::Soon) => {
                    let until = (Moment::now() + OTHERS_FIRST).min(deadline);
                    sleep_until(until, events, &mut heed)?
                }
                Some(Turn::Moved) => sleep_until(retry_at, events, &mut heed)?,
                _ => break,
            };
        }
        if split {
            // Contenders split the votes and are giving their minorities back (the notices
            // that woke us): try again after a random pause, so that they do not all come
            // back at once and split them again (no livelock).
            let until = (Moment::now() + random_below(SPLIT_RETRY)).min(deadline);
            while sleep_until(until, events, &mut heed)?.is_some() {}
        }
    }
}

/// Subscribes to the lock's release notices (and with `--key`, its keyspace channel), saying
/// with `-v` that the run waits, and for whom. Subscribing wakes the run once more when it is
/// confirmed, so that a release between its attempt and the subscription is not missed.
fn listen(
    lock: &Lock,
    events: &mut Events,
    name: &str,
    wait: Duration,
    holders: &[Holder],
    verbose: bool,
) {
    if verbose {
        let fields = [vec![("wait_ms", ms(wait))], holder_fields(holders)].concat();
        say(
            say::Event::Waiting,
            format!(
                "waiting up to {}: {}",
                human(wait),
                busy_message_for(name, holders)
            ),
            &fields,
        );
    }
    let servers = lock.targets();
    let keyspace =
        (lock.keys.app_key).then(|| servers.iter().map(|s| lock.keys.keyspace(s.db)).collect());
    events.listen(Notices::subscribe_with(
        &servers,
        &lock.keys.channel,
        keyspace,
    ));
}

/// With --replace: the holder asked (the one found holding the lock), and until when it is
/// asked again, while it may still answer. Only that holder is replaced: a waiter that gets the
/// lock after it (its lease ran out) came before this run, and keeps its turn.
#[derive(Default)]
struct Replacing {
    asked: Option<(String, Moment)>,
}

impl Replacing {
    /// Asks the holder of the lock to let go (again, on each attempt: a holder that took the
    /// lock a moment ago may not listen yet, see `control::LISTEN_AFTER`), if it is the one
    /// first found and may still answer; the first time, returns until when it may.
    /// `--replace` is refused with `--limit` above 1: there is one holder to replace.
    fn ask(
        &mut self,
        lock: &mut Lock,
        holders: &[Holder],
        now: Moment,
        timeout: Duration,
        verbose: bool,
    ) -> Option<Moment> {
        let token = holders[0].token.as_ref()?;
        if self.asked.is_some() {
            if self.answering(holders, now) {
                lock.ask_to_replace(token, timeout);
            }
            return None;
        }
        let (kill_after, refused) = lock.ask_to_replace(token, timeout);
        if let Some(refused) = refused {
            // A timed-out answer is asked again; a refusal would be refused again.
            say::warning(
                format!("--replace could not ask the holder to let go: {refused:#}"),
                &[],
            );
        }
        let until = now + kill_after.unwrap_or(UNKNOWN_KILL_AFTER) + ASK_MARGIN;
        self.asked = Some((token.clone(), until));
        if verbose {
            let fields = [vec![("wait_ms", ms(until - now))], holder_fields(holders)];
            say(
                say::Event::Replacing,
                format!(
                    "asked the holder to stop its command (--replace); waiting up to {}",
                    human(until - now)
                ),
                &fields.concat(),
            );
        }
        Some(until)
    }

    /// Whether the holder asked still holds the lock (of `holders`) and may still answer.
    fn answering(&self, holders: &[Holder], now: Moment) -> bool {
        self.asked
            .as_ref()
            .is_some_and(|(asked, until)| now < *until && holders[0].token.as_ref() == Some(asked))
    }
}

/// Sleeps `pause` (and a little jitter, not past `deadline`) before trying unreachable servers
/// again, saying so with `-v`; a signal ends the wait.
fn pause_to_retry(
    error: &anyhow::Error,
    pause: Duration,
    deadline: Moment,
    verbose: bool,
    events: &mut Events,
    heed: &mut Heed,
) -> Result<(), Failure> {
    if verbose {
        say(
            say::Event::Retrying,
            format!("{error:#}; trying again in {}", human(pause)),
            &[
                ("error", format!("{error:#}").into()),
                ("retry_ms", ms(pause)),
            ],
        );
    }
    let until = (Moment::now() + pause + jitter(pause)).min(deadline);
    while sleep_until(until, events, heed)?.is_some() {}
    Ok(())
}

/// Whether a failed attempt is worth trying again within `--wait`: servers that could not be
/// reached, or were failing over (`NotTaken::passing`).
fn passes(error: &anyhow::Error) -> bool {
    error.downcast_ref::<NotTaken>().is_some_and(|e| e.passing)
}

/// Who holds the lock, for a `busy` or `waiting` line: `holder`, as `status --json` shows it
/// without its token; for a semaphore, `limit` and each place's in
/// `holders`.
fn holder_fields(holders: &[Holder]) -> Vec<say::Field> {
    let view = |holder: &Holder| {
        let mut view = serde_json::to_value(holder).unwrap_or_default();
        if let Some(view) = view.as_object_mut() {
            view.remove("token");
        }
        view
    };
    match holders {
        [holder] => vec![("holder", view(holder))],
        _ => vec![
            ("limit", holders.len().into()),
            ("holders", holders.iter().map(view).collect()),
        ],
    }
}

/// Up to a tenth of the wait, at most 50 ms: contenders waking on expiry do not all collide.
fn jitter(remaining: Duration) -> Duration {
    random_below((remaining / 10).min(Duration::from_millis(50)))
}

fn random_below(limit: Duration) -> Duration {
    let span = limit.as_micros() as u64;
    let random = RandomState::new().hash_one(Moment::now());
    Duration::from_micros(if span == 0 { 0 } else { random % span })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_small() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(30)) < Duration::from_millis(50));
            assert!(jitter(Duration::from_millis(100)) < Duration::from_millis(10));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
