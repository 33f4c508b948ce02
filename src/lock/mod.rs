//! The lease on one named lock, over a set of independent Redis servers: a majority must agree
//! (with one server, a majority of one). Deadlines are measured from when a request was sent.

mod asking;
mod holder;
mod keys;
pub mod scripts;
mod transport;
pub mod view;

use std::time::Duration;

use crate::clock::Moment;

use anyhow::{Result, anyhow};
use redis::Value;

use holder::{Acquired, acquired};
pub use holder::{Holder, HolderInfo, busy_message_for};
pub use keys::{Keys, MOST_PLACES, lock_of};
use transport::{Answer, Wait};
pub use transport::{Notices, Pool, REQUEST_TIMEOUT, Request, Server, resolve};

/// The timing of a lease, checked for safety when the settings were read.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ttl: Duration,
    /// Allowance for clock drift between us and the servers: 1% of the TTL + 2 ms.
    pub drift: Duration,
    /// A lease granted with less than this left is given back: too little to run safely.
    pub min_validity: Duration,
}

impl Timing {
    pub fn new(ttl: Duration, min_validity: Duration) -> Self {
        Timing {
            ttl,
            drift: ttl / 100 + Duration::from_millis(2),
            min_validity,
        }
    }

    /// The last instant the lease is ours, for a request that was sent at `sent`.
    pub fn lease_end(&self, sent: Moment) -> Moment {
        sent + self.ttl - self.drift
    }
}

/// The outcome of one attempt to take the lock.
#[derive(Debug)]
pub enum Attempt {
    /// A majority is ours until `lease_end`, on the same `place` of the lock (0 for a plain
    /// lock; a semaphore's place is the same on all of them).
    Acquired {
        fence: u64,
        sent: Moment,
        lease_end: Moment,
        place: usize,
    },
    /// Held by others: for each place, the details of the holder with the most servers.
    /// `split` when no one holds a majority of some place (contenders took a few servers each
    /// and are giving them back).
    Busy { holders: Vec<Holder>, split: bool },
    /// The lock is held with another `--limit`: this one.
    Mismatch { limit: usize },
}

/// What an extension found.
#[derive(Debug)]
pub enum Extension {
    Confirmed {
        lease_end: Moment,
    },
    /// Enough servers no longer hold our token that the lease can never be confirmed again.
    Lost(String),
    /// Neither confirmed nor lost (errors, time-outs): worth retrying until the deadline.
    Unconfirmed(anyhow::Error),
}

/// Why an attempt could not tell whether the lock is ours: too few servers answered, or too
/// late. `unreachable` unless one that answered said the lock is held, or a key of another
/// type is in the way: only unreachable servers are a reason for `--on-unavailable`.
#[derive(Debug)]
pub struct NotTaken {
    pub message: String,
    pub unreachable: bool,
}

impl std::fmt::Display for NotTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NotTaken {}

/// Whether a release must reach every server before it returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Everywhere {
    /// Giving back a lease that was not granted: a server that executes our acquire late
    /// must get the release after it, so wait for that.
    Yes,
    /// The end of a run: a majority answering frees the lock.
    No,
}

pub struct Lock {
    pool: Pool,
    servers: Vec<Server>,
    /// Addresses, in the order of `servers`, for messages.
    pub addresses: Vec<String>,
    /// The keys of the place taken (place 0 until one is).
    pub keys: Keys,
    /// Every place of the lock: one, or a semaphore's N.
    places: Vec<Keys>,
    /// Which place to ask for: with several servers that did not agree last time, a place
    /// most of them have free.
    ask: scripts::Place,
    pub token: String,
    pub timing: Timing,
}

/// The same lock and token, not connected yet: for a release that must not wait for a request
/// still in flight on the lock's own connections (an extension to a frozen server).
pub struct Twin {
    servers: Vec<Server>,
    keys: Keys,
    limit: usize,
    timing: Timing,
    token: String,
}

impl Twin {
    pub fn open(self) -> Lock {
        let mut lock = Lock::with_token(
            self.servers,
            self.keys.slot(0),
            self.limit,
            self.timing,
            self.token,
        );
        lock.keys = self.keys;
        lock
    }
}

/// What a release found.
#[derive(Debug, Default)]
pub struct Released {
    /// Servers that still held our token (and have let it go).
    pub ours: usize,
    /// Servers that answered that our token was no longer there.
    pub gone: usize,
    pub errors: Vec<String>,
    /// How many servers the lock has.
    pub servers: usize,
}

impl Lock {
    /// A lock with a fresh token. The servers' host names are looked up first, all at once and
    /// for no longer than a connection may take (`resolve.rs`); then, with several servers,
    /// their connections are opened at once, without waiting for them.
    /// `limit`: how many places the lock has (a semaphore's N; 1 for a plain lock).
    pub fn new(servers: Vec<Server>, keys: Keys, limit: usize, timing: Timing) -> Self {
        let token = uuid::Uuid::new_v4().simple().to_string();
        Lock::with_token(servers, keys, limit, timing, token)
    }

    /// What it takes to open the same lock again, over new connections (see `Twin`).
    pub fn twin(&self) -> Twin {
        Twin {
            servers: self.targets(),
            keys: self.keys.clone(),
            limit: self.places.len(),
            timing: self.timing,
            token: self.token.clone(),
        }
    }

    fn with_token(
        servers: Vec<Server>,
        keys: Keys,
        limit: usize,
        timing: Timing,
        token: String,
    ) -> Self {
        // A twin's servers share their lookups with the lock's: nothing is looked up again.
        resolve(&servers, REQUEST_TIMEOUT);
        let addresses = servers.iter().map(|s| s.address.clone()).collect();
        Lock {
            addresses,
            pool: Pool::open(&servers),
            servers,
            places: keys.slots(limit),
            keys,
            ask: scripts::Place::Any,
            token,
            timing,
        }
    }

    /// How many places the lock has: a semaphore's N, 1 for a plain lock.
    pub fn limit(&self) -> usize {
        self.places.len()
    }

    /// The servers, for connections of their own (subscriptions).
    pub fn targets(&self) -> Vec<Server> {
        self.servers.clone()
    }

    pub fn quorum(&self) -> usize {
        majority(self.addresses.len())
    }

    /// Tries once to take the lock on every server. `Err` means too few servers answered.
    /// A caller that will wait for a busy lock `queue`s: release notices name the first
    /// waiter. `in_flight` runs on this thread once the request is on its way to the servers,
    /// while their answers are awaited: unless a server could not even be sent the request.
    ///
    /// A semaphore's attempt is made again at once, once: when the servers gave different
    /// places (it then asks for one most of them have free), or when they keep another N that
    /// no holder keeps any more (it is cleared first).
    pub fn try_acquire(
        &mut self,
        me: &HolderInfo,
        queue: bool,
        timeout: Duration,
        in_flight: &mut dyn FnMut(),
    ) -> Result<Attempt> {
        let attempt = self.attempt(me, queue, timeout, in_flight)?;
        let again = match &attempt {
            Attempt::Mismatch { limit } => self.clear_limit(*limit, timeout),
            Attempt::Busy { holders, .. } => {
                matches!(self.ask, scripts::Place::Only(_))
                    && holders.iter().all(|h| h.token.is_none())
            }
            Attempt::Acquired { .. } => false,
        };
        if again {
            return self.attempt(me, queue, timeout, in_flight);
        }
        Ok(attempt)
    }

    /// Clears a stored N that no place of it holds any more (see `limit.lua`): true if a
    /// server did.
    fn clear_limit(&mut self, limit: usize, timeout: Duration) -> bool {
        if limit > MOST_PLACES {
            return false;
        }
        let request = scripts::clear_limit(&self.places[0], limit);
        let answers = self.pool.fan_out(
            Wait::Always,
            &request,
            timeout,
            |reply| Ok(integer(reply)? == 1),
            |_| false,
        );
        answers.iter().any(|a| matches!(a, Some(Ok(true))))
    }

    fn attempt(
        &mut self,
        me: &HolderInfo,
        queue: bool,
        timeout: Duration,
        in_flight: &mut dyn FnMut(),
    ) -> Result<Attempt> {
        let request = scripts::acquire(
            &self.places,
            &self.token,
            self.timing.ttl,
            me,
            queue,
            self.ask,
        );
        let sent = Moment::now();
        let quorum = self.quorum();
        let on_its_way = self.pool.send(Wait::Never, &request, timeout);
        in_flight();
        let answers = on_its_way.collect(acquired, |answers| {
            granted_most(answers).is_some_and(|(_, count)| count >= quorum)
        });
        let lease_end = self.timing.lease_end(sent);
        let (place, granted) = granted_most(&answers).unwrap_or((0, 0));
        let mut fences = Vec::new();
        let mut strays = false;
        let mut busy = Vec::new();
        let mut mismatch = None;
        let mut errors = Vec::new();
        let mut in_the_way = false;
        // How many servers had each place free.
        let mut free_on = vec![0; self.places.len()];
        for (address, answer) in self.addresses.iter().zip(answers) {
            if let Some(Ok(Acquired::Yes { free, .. })) = &answer {
                for &p in free {
                    if let Some(count) = free_on.get_mut(p) {
                        *count += 1;
                    }
                }
            }
            match answer {
                Some(Ok(Acquired::Yes {
                    fence, place: p, ..
                })) if p == place => fences.push(fence),
                Some(Ok(Acquired::Yes { .. })) => strays = true,
                Some(Ok(Acquired::Busy(holders))) => busy.push(holders),
                Some(Ok(Acquired::Mismatch(limit))) => mismatch = Some(limit),
                Some(Err(e)) => {
                    let error = format!("{:#}", name_keys_in_the_way(e, address, &self.keys));
                    in_the_way |= error.contains(transport::WRONG_TYPE);
                    errors.push(error);
                }
                None => errors.push(transport::unanswered(address)),
            }
        }
        let not_taken = |message: String| NotTaken {
            message,
            unreachable: busy.is_empty() && mismatch.is_none() && !in_the_way,
        };
        // The place is a lock of its own: from here on, its keys are the ones used.
        self.keys = self.places[place].clone();
        let fence = fences.iter().copied().max().unwrap_or(0);
        let min_validity = self.timing.min_validity;
        let in_time = || Moment::now() + min_validity < lease_end;
        // Only a counter a majority holds is sure to be exceeded by the next holder's: when the
        // servers disagree, the largest is written back before the command may use it.
        let mut fence_agreed =
            || fences.iter().all(|&f| f == fence) || self.raise_fence(fence, timeout);
        if granted >= quorum && in_time() && fence_agreed() && in_time() {
            if strays {
                // Other places a few servers gave us: each is a place another run could have.
                self.give_back(Some(place), timeout);
            }
            self.ask = scripts::Place::Any;
            return Ok(Attempt::Acquired {
                fence,
                sent,
                lease_end,
                place,
            });
        }
        self.keys = self.places[0].clone();
        // Next time, ask for a place a majority had free, if one had, or else first for the one
        // most of them gave: they then agree more often.
        let most_free = (0..free_on.len()).max_by_key(|&p| (free_on[p], std::cmp::Reverse(p)));
        self.ask = match most_free {
            Some(p) if free_on[p] >= quorum => scripts::Place::Only(p),
            _ if granted > 0 => scripts::Place::Prefer(place),
            _ => scripts::Place::Any,
        };
        if granted > 0 || strays || !errors.is_empty() {
            // A minority (or a majority that came too late) is worthless and would block others;
            // a server that timed out may still execute our request once it wakes up.
            self.give_back(None, timeout);
        }
        let n = self.addresses.len();
        if beyond_minority(errors.len(), n) {
            let answered = n - errors.len();
            return Err(not_taken(match n {
                1 => errors.join("; "),
                _ => format!(
                    "only {answered} of {n} Redis servers answered; {}",
                    errors.join("; ")
                ),
            })
            .into());
        }
        if let Some(limit) = mismatch {
            return Ok(Attempt::Mismatch { limit });
        }
        if busy.is_empty() && (granted >= quorum || self.places.len() == 1) {
            let message = if granted >= quorum && in_time() {
                "the fencing token could not be recorded on a majority of the servers"
            } else {
                "the lock was granted too late to be of use; raise --ttl"
            };
            return Err(not_taken(message.to_string()).into());
        }
        if busy.is_empty() {
            // The servers gave different places of a semaphore, none of them to a majority:
            // contenders took them in different orders, and are giving them back. Tried again
            // at once (after the split vote's pause), as their holders are unknown.
            let unknown = Holder {
                ttl_ms: Some(0),
                ..Holder::default()
            };
            return Ok(Attempt::Busy {
                holders: vec![unknown; self.places.len()],
                split: true,
            });
        }
        Ok(busiest(busy, quorum))
    }

    /// Gives back what an acquire got that is of no use (all of it, or every place but
    /// `keep`), on every server: one that executes the acquire late gets this after it.
    fn give_back(&mut self, keep: Option<usize>, timeout: Duration) {
        let request = scripts::release(&self.places, &self.token, Duration::ZERO, keep);
        self.pool.fan_out(
            Wait::Always,
            &request,
            timeout,
            |reply| integer(reply).map(drop),
            |_| false,
        );
    }

    /// Writes `fence` back to every server whose counter is lower; true once a majority has it.
    fn raise_fence(&mut self, fence: u64, timeout: Duration) -> bool {
        let request = scripts::raise_fence(&self.keys, &self.token, fence);
        let quorum = self.quorum();
        let answers = self.pool.fan_out(
            Wait::Never,
            &request,
            timeout,
            |reply| integer(reply).map(drop),
            |answers| decided(answers, quorum, |a| a.is_ok()),
        );
        answers.iter().filter(|a| matches!(a, Some(Ok(())))).count() >= quorum
    }

    /// Extends the lease on every server; `timeout` bounds each request. `stopping`: the
    /// extension also says that the holder is stopping its command on request (`extend.lua`).
    pub fn extend(&mut self, timeout: Duration, stopping: bool) -> Extension {
        let request = scripts::extend(
            &self.keys,
            &self.token,
            self.timing.ttl,
            stopping,
            self.places.len(),
        );
        let sent = Moment::now();
        let quorum = self.quorum();
        let answers = self.pool.fan_out(
            Wait::Never,
            &request,
            timeout,
            |reply| Ok(integer(reply)? == 1),
            |answers| decided(answers, quorum, |a| matches!(a, Ok(true))),
        );
        let lease_end = self.timing.lease_end(sent);
        let (mut ours, mut gone, mut errors) = (0, 0, Vec::new());
        for (address, answer) in self.addresses.iter().zip(answers) {
            match answer {
                Some(Ok(true)) => ours += 1,
                Some(Ok(false)) => gone += 1,
                Some(Err(e)) => errors.push(format!("{e:#}")),
                None => errors.push(transport::unanswered(address)),
            }
        }
        if ours >= quorum && Moment::now() < lease_end {
            Extension::Confirmed { lease_end }
        } else if beyond_minority(gone, self.addresses.len()) {
            Extension::Lost("the lock was deleted or taken by another holder".into())
        } else if errors.is_empty() {
            Extension::Unconfirmed(anyhow!("the extension was confirmed too late"))
        } else {
            Extension::Unconfirmed(anyhow!(errors.join("; ")))
        }
    }

    /// Takes us out of the queue of waiters on every server: a waiter that gives up. Best
    /// effort, and it returns once a majority has answered, as a release does.
    pub fn leave_queue(&mut self, timeout: Duration) {
        let request = scripts::leave(&self.keys, &self.token);
        let quorum = self.quorum();
        self.pool.fan_out(
            Wait::Always,
            &request,
            timeout,
            |reply| integer(reply).map(drop),
            |answers| answers.iter().flatten().count() >= quorum,
        );
    }

    /// Releases our token on every server (whatever it answered before: a paused server may
    /// still execute an old request). With `keep`, the lock is left to expire after `keep`.
    /// With `Everywhere::No` it returns once the answers tell whether a majority still held
    /// our token (the lock is free then, and a slow server's copy expires on its own) or not
    /// (the lease was lost: `Released::lost`).
    pub fn release(
        &mut self,
        keep: Duration,
        timeout: Duration,
        everywhere: Everywhere,
    ) -> Released {
        let request = scripts::release(&self.places, &self.token, keep, None);
        let (quorum, servers) = (self.quorum(), self.addresses.len());
        let count = |answers: &[Answer<bool>], ours: bool| {
            answers
                .iter()
                .flatten()
                .filter(|a| matches!(a, Ok(o) if *o == ours))
                .count()
        };
        let answers = self.pool.fan_out(
            Wait::Always,
            &request,
            timeout,
            |reply| Ok(integer(reply)? != 0),
            |answers| {
                everywhere == Everywhere::No
                    && (count(answers, true) >= quorum
                        || beyond_minority(count(answers, false), servers))
            },
        );
        let mut released = Released {
            servers,
            ..Released::default()
        };
        for answer in answers.into_iter().flatten() {
            match answer {
                Ok(true) => released.ours += 1,
                Ok(false) => released.gone += 1,
                Err(e) => released.errors.push(format!("{e:#}")),
            }
        }
        released
    }
}

impl Released {
    /// Whether so many servers no longer held our token that no majority did: the lease had
    /// been lost (deleted, broken or taken over) by the time of the release.
    pub fn lost(&self) -> bool {
        beyond_minority(self.gone, self.servers)
    }
}

/// An integer reply.
fn integer(reply: Value) -> Result<i64> {
    Ok(redis::from_redis_value(reply)?)
}

/// When a key of another type is in the way of a lock's script, says which keys to look at.
pub fn name_keys_in_the_way(error: anyhow::Error, address: &str, keys: &Keys) -> anyhow::Error {
    if !format!("{error:#}").contains(transport::WRONG_TYPE) {
        return error;
    }
    anyhow!(
        "{} at {}: {}, {}, {} or {} holds a value redlock did not write \
         (delete it, or choose another --prefix)",
        transport::WRONG_TYPE,
        address,
        keys.lock,
        keys.fence,
        keys.waiters,
        keys.limit
    )
}

/// How many of `servers` make a majority.
pub fn majority(servers: usize) -> usize {
    servers / 2 + 1
}

/// Whether `count` of `servers` is more than a minority may be: with that many failed (or lost)
/// no majority is possible.
pub fn beyond_minority(count: usize, servers: usize) -> bool {
    count > servers - majority(servers)
}

/// Whether the answers so far settle the outcome: `yes` reached a majority. A failure waits for
/// every answer (each bounded by its time-out): its message says what each server said.
fn decided<R>(answers: &[Answer<R>], quorum: usize, yes: impl Fn(&Result<R>) -> bool) -> bool {
    answers.iter().flatten().filter(|a| yes(a)).count() >= quorum
}

/// The place most servers granted, and how many did.
fn granted_most(answers: &[Answer<Acquired>]) -> Option<(usize, usize)> {
    let places: Vec<usize> = answers
        .iter()
        .filter_map(|answer| match answer {
            Some(Ok(Acquired::Yes { place, .. })) => Some(*place),
            _ => None,
        })
        .collect();
    let count = |wanted: usize| places.iter().filter(|&&p| p == wanted).count();
    places
        .iter()
        .map(|&place| (place, count(place)))
        .max_by_key(|&(place, count)| (count, std::cmp::Reverse(place)))
}

/// The busy answer to report: for each place, the holder on the most servers; and whether
/// anyone has a majority of each.
fn busiest(busy: Vec<Vec<Holder>>, quorum: usize) -> Attempt {
    let places = busy.iter().map(Vec::len).min().expect("busy is not empty");
    let mut split = false;
    let holders = (0..places)
        .map(|place| {
            let seen: Vec<&Holder> = busy.iter().map(|holders| &holders[place]).collect();
            let count = |token: &Option<String>| seen.iter().filter(|h| &h.token == token).count();
            let best = seen
                .iter()
                .max_by_key(|h| (count(&h.token), h.remaining()))
                .expect("busy is not empty");
            split |= count(&best.token) < quorum;
            (*best).clone()
        })
        .collect();
    Attempt::Busy { holders, split }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_one_percent_plus_two_ms() {
        let timing = Timing::new(Duration::from_secs(30), Duration::ZERO);
        assert_eq!(timing.drift, Duration::from_millis(302));
        let now = Moment::now();
        assert_eq!(timing.lease_end(now) - now, Duration::from_millis(29_698));
    }
}
