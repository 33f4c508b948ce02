//! The lease on one named lock, over a set of independent Redis servers: a majority must agree
//! (with one server, a majority of one). Deadlines are measured from when a request was sent.
//! Taking it is `acquire.rs`; extending, leaving the queue and releasing are here.

mod acquire;
mod asking;
mod busy;
pub mod history;
mod holder;
mod keys;
mod redact;
pub mod scripts;
mod tally;
mod transport;
pub mod view;

use std::time::Duration;

use crate::clock::Moment;
use crate::outcome::Outcome;

use anyhow::{Result, anyhow};
use redis::Value;

pub use acquire::{Attempt, NotTaken};
pub use busy::busy_message_for;
pub use holder::{Holder, HolderInfo, MAX_COMMAND, host_name, one_line};
pub use keys::{Keys, MOST_PLACES, check_key, check_name, lock_of, scan_pattern};
pub use tally::{Tally, Vote, majority};
use transport::{Answer, Wait};
pub use transport::{
    Class, KEY_GONE, Keyspace, Notices, Pool, REQUEST_TIMEOUT, Request, Server, class, resolve,
    tls, transient,
};

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

/// What an extension found.
#[derive(Debug)]
pub enum Extension {
    Confirmed {
        lease_end: Moment,
        /// The sentinels named a new primary, and the extension was confirmed there.
        moved: bool,
    },
    /// Enough servers no longer hold our token that the lease can never be confirmed again
    /// (`run/lapse.rs` says how, from when it was found).
    Lost,
    /// Neither confirmed nor lost (errors, time-outs): worth retrying until the deadline.
    Unconfirmed(anyhow::Error),
    /// A step's hold (`Lock::holding`) whose token a run holds: left alone (extend.lua).
    Refused,
}

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
    /// The keys of the place taken (place 0 until one is), and which place that is.
    pub keys: Keys,
    place: usize,
    /// What this run records in the lock's history; none for the operators' commands, and
    /// with `--history 0`.
    pub record: Option<history::Record>,
    /// An attempt found the lock held by another run (`--on-unavailable` no longer applies).
    seen_held: bool,
    /// Every place of the lock: one, or a semaphore's N.
    places: Vec<Keys>,
    /// Which place to ask for: with several servers that did not agree last time, a place
    /// most of them have free.
    ask: scripts::Place,
    pub token: String,
    pub timing: Timing,
    /// A shared hold (`run --shared`): one of the lock's shared holders, not its only one.
    pub shared: bool,
    /// Taken by `redlock acquire`, and given back by its token (`Lock::holding`).
    step: bool,
}

/// The same lock and token, not connected yet: for a release that must not wait for a request
/// still in flight on the lock's own connections (an extension to a frozen server).
pub struct Twin {
    servers: Vec<Server>,
    keys: Keys,
    limit: usize,
    timing: Timing,
    token: String,
    shared: bool,
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
        lock.shared = self.shared;
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
    /// Servers where the token holds the lock for a run, which a release of a step's hold
    /// (`Lock::holding`) leaves alone.
    pub refused: usize,
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
            shared: self.shared,
        }
    }

    /// A lock taken earlier by `token` (`redlock acquire`), for its extension or release.
    pub fn holding(servers: Vec<Server>, keys: Keys, timing: Timing, token: String) -> Self {
        let mut lock = Lock::with_token(servers, keys, 1, timing, token);
        lock.step = true;
        lock
    }

    /// How the lock is held, for its release.
    fn hold(&self) -> scripts::Hold {
        match (self.step, self.shared) {
            (true, _) => scripts::Hold::Step,
            (_, true) => scripts::Hold::Shared,
            _ => scripts::Hold::Alone,
        }
    }

    pub fn with_token(
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
            place: 0,
            record: None,
            seen_held: false,
            ask: scripts::Place::Any,
            token,
            timing,
            shared: false,
            step: false,
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

    /// The history entry `entry` with the history's cap, when this run keeps a history.
    fn recorded<'a>(&self, entry: Option<&'a str>) -> scripts::Recorded<'a> {
        Some((entry?, self.record.as_ref()?.cap))
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
            self.hold(),
        );
        // A primary that the sentinels no longer name is left before the extension is sent;
        // asking them takes half of the try's time at most, and the extension the rest.
        let asked = Moment::now();
        self.pool.follow_failovers(timeout / 2);
        let timeout = timeout.saturating_sub(asked.elapsed());
        let sent = Moment::now();
        let answers = self
            .pool
            .fan_out(Wait::Never, &request, timeout, integer, |answers| {
                said_yes(answers, |extended| *extended == 1).yes()
            });
        let lease_end = self.timing.lease_end(sent);
        let tally = said_yes(&answers, |extended| *extended == 1);
        let refused = answers.iter().flatten().flatten().any(|reply| *reply < 0);
        let mut errors = Vec::new();
        for (address, answer) in self.addresses.iter().zip(answers) {
            match answer {
                Some(Err(e)) => errors.push(format!("{e:#}")),
                None => errors.push(transport::unanswered(address)),
                Some(Ok(_)) => {}
            }
        }
        if refused {
            Extension::Refused
        } else if tally.yes() && Moment::now() < lease_end {
            // Told once confirmed there: the subscription follows a lease that lives on.
            Extension::Confirmed {
                lease_end,
                moved: self.pool.moved(),
            }
        } else if tally.no() {
            Extension::Lost
        } else if errors.is_empty() {
            Extension::Unconfirmed(anyhow!("the extension was confirmed too late"))
        } else {
            Extension::Unconfirmed(anyhow!(errors.join("; ")))
        }
    }

    /// Takes us out of the queue of waiters on every server: a waiter that gives up (and is
    /// recorded as busy in the history when it `gave_up`, rather than being interrupted). Best
    /// effort, and it returns once a majority has answered, as a release does.
    pub fn leave_queue(&mut self, timeout: Duration, gave_up: bool) {
        let busy = match (&self.record, gave_up) {
            (Some(record), true) => {
                Some(record.without_lock(&self.token, self.addresses.len(), Outcome::Busy, false))
            }
            _ => None,
        };
        let request = scripts::leave(&self.keys, &self.token, self.recorded(busy.as_deref()));
        self.pool.fan_out(
            Wait::Always,
            &request,
            timeout,
            |reply| integer(reply).map(drop),
            // Answered at all, even with an error: the request was read.
            |answers| {
                Tally::of(
                    answers
                        .iter()
                        .map(|a| a.as_ref().map_or(Vote::Unknown, |_| Vote::For(()))),
                )
                .yes()
            },
        );
    }

    /// Releases our token on every server (whatever it answered before: a paused server may
    /// still execute an old request). With `keep`, the lock is left to expire after `keep`.
    /// With `Everywhere::No` it returns once the answers tell whether a majority still held
    /// our token (the lock is free then, and a slow server's copy expires on its own) or not
    /// (the lease was lost: `Released::lost`).
    ///
    /// `ending`: how the run that held the lock ended, for the history (none when the lock was
    /// given back before any command ran).
    pub fn release(
        &mut self,
        keep: Duration,
        timeout: Duration,
        everywhere: Everywhere,
        ending: Option<history::Ending>,
    ) -> Released {
        let run = match (&self.record, ending) {
            (Some(record), Some(ending)) => {
                Some(record.with_lock(&self.token, self.addresses.len(), self.place, ending))
            }
            _ => None,
        };
        let request = scripts::release(
            &self.places,
            &self.token,
            keep,
            None,
            self.recorded(run.as_deref()),
            true,
            self.hold(),
        );
        let servers = self.addresses.len();
        let answers = self
            .pool
            .fan_out(Wait::Always, &request, timeout, integer, |answers| {
                let tally = said_yes(answers, |released| *released > 0);
                everywhere == Everywhere::No && (tally.yes() || tally.no())
            });
        let mut released = Released {
            servers,
            ..Released::default()
        };
        for answer in answers.into_iter().flatten() {
            match answer {
                Ok(1..) => released.ours += 1,
                Ok(0) => released.gone += 1,
                Ok(_) => released.refused += 1,
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
        self.tally().no()
    }

    /// Whether a majority still held our token and let it go: the lock is free.
    pub fn freed(&self) -> bool {
        self.tally().yes()
    }

    fn tally(&self) -> Tally<()> {
        Tally::counted(self.ours, self.gone, self.servers)
    }
}

/// An integer reply.
fn integer(reply: Value) -> Result<i64> {
    Ok(redis::from_redis_value(reply)?)
}

/// When a key of another type is in the way of a lock's script, says which keys to look at:
/// the lock's, with its type, when lock_type.lua named it; else any of those a script writes.
pub fn name_keys_in_the_way(error: anyhow::Error, address: &str, keys: &Keys) -> anyhow::Error {
    let Some(Class::WrongType { named }) = class(&error) else {
        return error;
    };
    let remedy = if keys.app_key {
        "use another --key"
    } else {
        "delete it, or choose another --prefix"
    };
    let in_the_way = transport::WRONG_TYPE;
    let message = match named {
        Some(named) => format!(
            "{in_the_way} at {address}: {named}, not a lock (redlock holds a lock as a string \
             key: {remedy})"
        ),
        None => format!(
            "{in_the_way} at {}: {}, {}, {} or {} holds a value redlock did not write ({remedy})",
            address, keys.lock, keys.fence, keys.waiters, keys.limit
        ),
    };
    let class = Class::WrongType {
        named: named.clone(),
    };
    transport::failed(class, message)
}

/// The tally of the answers to a yes-or-no request: a server that failed or did not answer
/// may have said either. (A failure waits for every answer, each bounded by its time-out: its
/// message says what each server said.)
fn said_yes<R>(answers: &[Answer<R>], yes: impl Fn(&R) -> bool) -> Tally<()> {
    Tally::of(answers.iter().map(|answer| match answer {
        Some(Ok(r)) if yes(r) => Vote::For(()),
        Some(Ok(_)) => Vote::Against,
        _ => Vote::Unknown,
    }))
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
