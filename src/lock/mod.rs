//! The lease on one named lock, over a set of independent Redis servers: a majority must agree
//! (with one server, a majority of one). Deadlines are measured from when a request was sent.

mod keys;
mod server;

use std::thread;
use std::time::Duration;

use crate::clock::Moment;

use anyhow::anyhow;

pub use keys::Keys;
pub use server::{Acquired, Holder, HolderInfo, Server};

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
    /// A majority is ours until `lease_end`.
    Acquired {
        fence: u64,
        sent: Moment,
        lease_end: Moment,
    },
    /// Enough servers are held by others that no majority is possible; one holder's details.
    Busy(Holder),
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

pub struct Lock {
    pub servers: Vec<Server>,
    pub keys: Keys,
    pub token: String,
    pub timing: Timing,
}

impl Lock {
    pub fn new(servers: Vec<Server>, keys: Keys, timing: Timing) -> Self {
        let token = uuid::Uuid::new_v4().simple().to_string();
        Lock {
            servers,
            keys,
            token,
            timing,
        }
    }

    fn quorum(&self) -> usize {
        self.servers.len() / 2 + 1
    }

    /// Tries once to take the lock on every server. `Err` means too few servers answered.
    pub fn try_acquire(&mut self, me: &HolderInfo, timeout: Duration) -> anyhow::Result<Attempt> {
        let (keys, token, ttl) = (&self.keys, self.token.as_str(), self.timing.ttl);
        let sent = Moment::now();
        let answers = fan_out(&mut self.servers, |s| {
            s.acquire(keys, token, ttl, me, timeout)
        });
        let lease_end = self.timing.lease_end(sent);
        let mut fence = 0;
        let (mut ours, mut busy, mut errors) = (0, Vec::new(), Vec::new());
        for answer in answers {
            match answer {
                Ok(Acquired::Yes { fence: f }) => {
                    ours += 1;
                    fence = fence.max(f);
                }
                Ok(Acquired::Busy(holder)) => busy.push(holder),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if ours >= self.quorum() && Moment::now() + self.timing.min_validity < lease_end {
            return Ok(Attempt::Acquired {
                fence,
                sent,
                lease_end,
            });
        }
        if ours > 0 || !errors.is_empty() {
            // A minority (or a majority that came too late) is worthless and would block others;
            // a server that timed out may still execute our request once it wakes up.
            self.release(Duration::ZERO, timeout);
        }
        if errors.len() > self.servers.len() - self.quorum() {
            return Err(anyhow!(errors.join("; ")));
        }
        match busy.into_iter().max_by_key(|h| h.remaining) {
            Some(holder) => Ok(Attempt::Busy(holder)),
            None => Err(anyhow!(
                "the lease was granted too late to be of use; raise --ttl"
            )),
        }
    }

    /// Extends the lease on every server; `timeout` bounds each request.
    pub fn extend(&mut self, timeout: Duration) -> Extension {
        let (keys, token, ttl) = (&self.keys, self.token.as_str(), self.timing.ttl);
        let sent = Moment::now();
        let answers = fan_out(&mut self.servers, |s| s.extend(keys, token, ttl, timeout));
        let lease_end = self.timing.lease_end(sent);
        let (mut ours, mut gone, mut errors) = (0, 0, Vec::new());
        for answer in answers {
            match answer {
                Ok(true) => ours += 1,
                Ok(false) => gone += 1,
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if ours >= self.quorum() && Moment::now() < lease_end {
            Extension::Confirmed { lease_end }
        } else if gone > self.servers.len() - self.quorum() {
            Extension::Lost("the lock was deleted or taken by another holder".into())
        } else if errors.is_empty() {
            Extension::Unconfirmed(anyhow!("the extension was confirmed too late"))
        } else {
            Extension::Unconfirmed(anyhow!(errors.join("; ")))
        }
    }

    /// Releases our token on every server (whatever it answered before: a paused server may
    /// still execute an old request). With `keep`, the lock is left to expire after `keep`.
    /// Returns how many servers still held our token, and the errors.
    pub fn release(&mut self, keep: Duration, timeout: Duration) -> (usize, Vec<String>) {
        let (keys, token) = (&self.keys, self.token.as_str());
        let answers = fan_out(&mut self.servers, |s| s.release(keys, token, keep, timeout));
        let mut released = 0;
        let mut errors = Vec::new();
        for answer in answers {
            match answer {
                Ok(true) => released += 1,
                Ok(false) => {}
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        (released, errors)
    }
}

/// Runs `op` on every server at once; with one server, on this thread (no spawn cost).
fn fan_out<R: Send>(servers: &mut [Server], op: impl Fn(&mut Server) -> R + Sync) -> Vec<R> {
    if let [only] = servers {
        return vec![op(only)];
    }
    thread::scope(|scope| {
        let op = &op;
        let handles: Vec<_> = servers
            .iter_mut()
            .map(|s| scope.spawn(move || op(s)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a server request panicked"))
            .collect()
    })
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
