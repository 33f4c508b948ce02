//! Taking the lock, waiting for it if asked: no blind polling. A waiter joins the queue,
//! subscribes to a channel of its own on every server (`Keys::wake`), and when busy sleeps until
//! a release wakes it (the first of the queue, and no other: notify.lua's `wake`), or until the
//! holder's lease would run out (plus jitter), whichever comes first.

use std::time::Duration;

use crate::clock::Moment;

use anyhow::anyhow;

use crate::duration::human;
use crate::exit::{Failure, Kind};
use crate::lock::view::ASK_MARGIN;
use crate::lock::{
    Attempt, Everywhere, Holder, HolderInfo, Lock, NotTaken, Notices, busy_message_for,
};
use crate::run::events::Events;
use crate::run::heard::{
    Heard, Heed, KEY_POLL, Turn, drain, interrupted, keyspace_heard, sleep_until,
};
use crate::run::holders::holder_fields;
use crate::run::jitter::{jitter, random_below};
use crate::run::replacing::Replacing;
use crate::say::{self, ms, say};

/// Longest random pause before retrying after a split vote.
const SPLIT_RETRY: Duration = Duration::from_millis(50);
/// How long the next waiter lets the one a release woke take the lock before it tries itself,
/// should that one be unable to (stopped): it normally has the lock within a millisecond, and a
/// try that finds it taken costs a request. A moment to people, long to a short command: the
/// next release (which wakes this one) usually comes first.
const STANDBY: Duration = Duration::from_millis(200);
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
    /// The --wait the run was given, which a run that gives up says it waited: more than
    /// `wait` for a run of several locks, which waits for one with what is left.
    pub asked: Duration,
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
    let mut waiting = Waiting::new(policy);
    loop {
        let attempt = lock.try_acquire(me, policy.queues(), policy.timeout, in_flight);
        let mut heed = Heed::after(&attempt);
        let (signal, notice) = drain(events, &mut heed);
        // A signal that came in during the request ends the run as it would have ended a wait;
        // a lease granted meanwhile is given back before any command started.
        if let Some(signal) = signal {
            if let Ok(Attempt::Acquired { .. }) = attempt {
                lock.release(Duration::ZERO, policy.timeout, Everywhere::Yes, None);
            }
            return Err(interrupted(signal));
        }
        let (holders, split) = match waiting.judge(lock, attempt, events, &mut heed)? {
            Found::Granted(granted) => return Ok(granted),
            Found::Retry => continue,
            Found::Busy { holders, split } => (holders, split),
        };
        let now = Moment::now();
        waiting.prepare(lock, events, &holders, split, now)?;
        let retry_at = waiting.retry_at(lock, events, &holders, &heed, now);
        waiting.sleep(notice, retry_at, split, events, &mut heed)?;
    }
}

/// What an attempt means for the wait.
enum Found {
    Granted(Granted),
    /// Servers that could not be reached are tried again (after a pause).
    Retry,
    /// Held by others: wait, unless the wait is over.
    Busy {
        holders: Vec<Holder>,
        split: bool,
    },
}

/// The state of one wait for the lock, across its attempts.
struct Waiting<'a> {
    policy: &'a Policy<'a>,
    started: Moment,
    /// When the run gives up: `--wait` after it started, later while a replaced holder stops.
    deadline: Moment,
    replacing: Replacing,
    subscribed: bool,
    /// Whether another run was seen holding the lock: servers that fail after that are no
    /// reason to run without it (`--on-unavailable`).
    seen_held: bool,
    /// With -v and --key: whether the way of waiting was said.
    keyspace_said: bool,
    /// The pause before trying unreachable servers again.
    unreachable_pause: Duration,
}

impl<'a> Waiting<'a> {
    fn new(policy: &'a Policy<'a>) -> Self {
        let started = Moment::now();
        Waiting {
            policy,
            started,
            deadline: started + policy.wait,
            replacing: Replacing::default(),
            subscribed: false,
            seen_held: false,
            keyspace_said: false,
            unreachable_pause: UNREACHABLE_FIRST,
        }
    }

    /// Granted, busy, worth trying again after a pause (which it sleeps), or the run's end.
    fn judge(
        &mut self,
        lock: &Lock,
        attempt: anyhow::Result<Attempt>,
        events: &mut Events,
        heed: &mut Heed,
    ) -> Result<Found, Failure> {
        match attempt {
            Ok(Attempt::Acquired {
                fence,
                sent,
                lease_end,
                place,
            }) => Ok(Found::Granted(Granted {
                fence,
                place,
                sent,
                lease_end,
            })),
            Ok(Attempt::Busy { holders, split, .. }) => {
                self.seen_held = true;
                Ok(Found::Busy { holders, split })
            }
            Ok(Attempt::Mismatch { limit }) => Err(Failure::new(
                Kind::LimitMismatch,
                anyhow!(
                    "lock '{}' is held with --limit {limit}, and this run has --limit {}: \
                     every run of a name must use the same limit",
                    self.policy.name,
                    lock.limit()
                ),
            )),
            Err(e) if passes(&e) && Moment::now() < self.deadline => {
                // Servers that cannot be reached now may be within the wait: a failover, a
                // restart, a dropped connection.
                let pause = self.unreachable_pause.min(self.deadline - Moment::now());
                self.unreachable_pause = (self.unreachable_pause * 2).min(UNREACHABLE_MOST);
                let (deadline, verbose) = (self.deadline, self.policy.verbose);
                pause_to_retry(&e, pause, deadline, verbose, events, heed)?;
                Ok(Found::Retry)
            }
            Err(e) => {
                let unreachable = e.downcast_ref::<NotTaken>().is_none_or(|e| e.unreachable);
                let kind = if self.seen_held || !unreachable {
                    Kind::UnavailableNoPolicy
                } else {
                    Kind::Unavailable
                };
                Err(Failure::new(kind, e.context("cannot take the lock")))
            }
        }
    }

    /// Before waiting for a busy lock: subscribes to its notices, asks the holder to let go
    /// with `--replace`, and gives up once the wait is over.
    fn prepare(
        &mut self,
        lock: &mut Lock,
        events: &mut Events,
        holders: &[Holder],
        split: bool,
        now: Moment,
    ) -> Result<(), Failure> {
        let Policy {
            name,
            wait,
            asked,
            timeout,
            verbose,
            replace,
        } = *self.policy;
        // A replacing run subscribes before it asks: the holder's release wakes it, the first
        // of the queue, and it must hear that. (A release that came before its subscription
        // was confirmed would pass it over: the holder first stops its command, which takes
        // longer than a round trip.)
        if !self.subscribed && (replace || now < self.deadline) {
            listen(lock, events, name, wait, holders, verbose);
            self.subscribed = true;
        }
        if replace && !split {
            // Its answer may take the holder's --kill-after: the wait lasts at least that long.
            // Not while the servers' votes are split: the holder asked must be the one most of
            // them name.
            let until = self.replacing.ask(lock, holders, now, timeout, verbose);
            self.deadline = self.deadline.max(until.unwrap_or(self.deadline));
        } else if replace {
            // A split vote settles within moments (its contenders give their minorities back):
            // a replacing run gives the servers that long to name a holder.
            self.deadline = self.deadline.max(self.started + ASK_MARGIN);
        }
        if now < self.deadline {
            return Ok(());
        }
        let mut fields = holder_fields(holders);
        let waited = if asked.is_zero() {
            String::new()
        } else {
            fields.push(("waited_ms", ms(asked)));
            format!("gave up after {}: ", human(asked))
        };
        Err(Failure::new(
            Kind::Busy,
            anyhow!("{waited}{}", busy_message_for(name, holders)),
        )
        .with_fields(fields))
    }

    /// When to try again without a notice: when the first place's lease runs out (and a
    /// jitter), sooner while a replaced holder may answer or a key's release may go unheard.
    fn retry_at(
        &mut self,
        lock: &Lock,
        events: &Events,
        holders: &[Holder],
        heed: &Heed,
        now: Moment,
    ) -> Moment {
        let verbose = self.policy.verbose;
        let keyspace = keyspace_heard(lock, events, verbose, &mut self.keyspace_said);
        let remaining = holders.iter().filter_map(|h| h.remaining()).min();
        let mut retry_at = match remaining {
            Some(remaining) => now + remaining + jitter(remaining),
            None => now + NO_EXPIRY_RETRY,
        };
        // While a replaced holder may still answer, it is asked again now and then.
        if self.replacing.answering(holders, now) {
            retry_at = retry_at.min(now + REPLACE_POLL);
        }
        // An application's key that a library may release unheard is tried again now and then
        // (a redlock holder publishes its release: no retry for it).
        if let Heard::Unheard = keyspace
            && heed.key_events
        {
            retry_at = retry_at.min(now + KEY_POLL);
        }
        retry_at.min(self.deadline)
    }

    /// Sleeps until `retry_at`, or until a release notice makes it this run's turn; a signal
    /// ends the wait.
    fn sleep(
        &self,
        notice: Option<Turn>,
        retry_at: Moment,
        split: bool,
        events: &mut Events,
        heed: &mut Heed,
    ) -> Result<(), Failure> {
        let mut notice = match notice {
            None => sleep_until(retry_at, events, heed)?,
            turn => turn,
        };
        // Next in the queue: the one woken has `STANDBY` to take the lock, or the release
        // that follows wakes this one.
        while notice == Some(Turn::Soon) {
            let until = (Moment::now() + STANDBY).min(self.deadline);
            notice = sleep_until(until, events, heed)?;
        }
        if split {
            // Contenders split the votes and are giving their minorities back (the notices
            // that woke us): try again after a random pause, so that they do not all come
            // back at once and split them again (no livelock).
            let until = (Moment::now() + random_below(SPLIT_RETRY)).min(self.deadline);
            while sleep_until(until, events, heed)?.is_some() {}
        }
        Ok(())
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
        &lock.keys.wake(&lock.token),
        keyspace,
    ));
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
