//! What a waiter hears while it waits for the lock, and what it makes of it: the notices on its
//! own channel (its turn, or that the lock went to the waiter before it), a confirmed
//! subscription, and with `--key` the key's keyspace events, which tell of a lock library's
//! release where the servers send them (else the waiter retries every `KEY_POLL`).

use std::time::Duration;

use crate::clock::Moment;
use crate::duration::human;
use crate::exit::{Failure, Kind, signal_name};
use crate::lock::{Attempt, KEY_GONE, Lock};
use crate::run::events::{Event, Events};
use crate::say::{self, say};

/// A signal that ends the wait: the run ends as the signal would have ended it.
pub(super) fn interrupted(signal: i32) -> Failure {
    let name = signal_name(signal);
    Failure::new(
        Kind::Signal(signal),
        anyhow::anyhow!("interrupted by {name} while waiting for the lock"),
    )
}

/// Retry interval for an application's key (`--key`) while the servers are not known to send
/// its keyspace notifications: a library that releases it publishes nothing.
pub const KEY_POLL: Duration = Duration::from_millis(100);

/// How a waiter for an application's key (`--key`) learns of a library's release.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Heard {
    /// Not an application's key: every holder is a redlock, which publishes its releases.
    NotAKey,
    /// By the key's keyspace notifications, which a majority of the servers still listened to
    /// send, and none refused.
    Relied,
    /// Not known to be sent (yet), or no longer listened to: while another client holds the
    /// key, tried again every `KEY_POLL`.
    Unheard,
}

/// How releases of the lock are heard (see `Heard`); with -v, says it once every server
/// subscribed to has said whether it sends keyspace notifications.
pub(super) fn keyspace_heard(
    lock: &Lock,
    events: &Events,
    verbose: bool,
    said: &mut bool,
) -> Heard {
    let Some(keyspace) = events.keyspace().filter(|_| lock.keys.app_key) else {
        return Heard::NotAKey;
    };
    let heard = if keyspace.off == 0 && keyspace.on >= lock.quorum() {
        Heard::Relied
    } else {
        Heard::Unheard
    };
    if verbose && !*said && keyspace.of > 0 && keyspace.on + keyspace.off >= keyspace.of {
        *said = true;
        let (message, how) = match heard {
            Heard::Relied => (
                format!(
                    "listening to the keyspace notifications of '{}': another client's release \
                     is heard at once",
                    lock.keys.lock
                ),
                "keyspace",
            ),
            _ => (
                format!(
                    "{} of {} servers send no keyspace notifications for '{}' \
                     (notify-keyspace-events needs K and g): trying again every {} while \
                     another client may hold it",
                    keyspace.off,
                    keyspace.of,
                    lock.keys.lock,
                    human(KEY_POLL)
                ),
                "retry",
            ),
        };
        say(say::Event::Waiting, message, &[("heard_by", how.into())]);
    }
    heard
}

/// When a notice on the waiter's channel (`Keys::wake`) says to try again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Turn {
    /// Woken (a release's notice names none), or a subscription confirmed.
    Now,
    /// Next in the queue: the lock went to the waiter the notice names. Try once no notice
    /// has come for `STANDBY`, in case that one cannot take it (stopped).
    Soon,
}

/// What the notices that come in mean to this waiter: which of the key's keyspace events
/// (`--key`) to heed.
pub(super) struct Heed {
    /// Whether a key deleted or expired is a release to act on: only while another client
    /// (no redlock: a lock library) holds it, as a redlock holder publishes its release.
    pub(super) key_events: bool,
    /// Deletions that are this run's own: the last attempt's give-backs (see `Attempt::Busy`).
    own_deletions: usize,
}

impl Heed {
    /// Before any attempt: no key's events to heed, no deletions of this run's own.
    pub(super) fn quiet() -> Heed {
        Heed {
            key_events: false,
            own_deletions: 0,
        }
    }

    pub(super) fn after(attempt: &Result<Attempt, anyhow::Error>) -> Heed {
        let (key_events, own_deletions) = match attempt {
            Ok(Attempt::Busy {
                holders,
                given_back,
                ..
            }) => (
                holders
                    .iter()
                    .any(|h| h.token.is_some() && h.host.is_none()),
                *given_back,
            ),
            _ => (false, 0),
        };
        Heed {
            key_events,
            own_deletions,
        }
    }

    /// When the notice says to try again; `None` when it is not for this waiter.
    fn turn(&mut self, named: Option<String>) -> Option<Turn> {
        if named.as_deref() == Some(KEY_GONE) {
            if !self.key_events {
                return None;
            }
            if self.own_deletions > 0 {
                self.own_deletions -= 1;
                return None;
            }
            return Some(Turn::Now);
        }
        Some(turn(named))
    }
}

/// A notice on the waiter's channel names the waiter the lock went to (this one is next), or
/// none: this one's turn.
fn turn(named: Option<String>) -> Turn {
    match named {
        Some(_) => Turn::Soon,
        None => Turn::Now,
    }
}

/// Sleeps until `until` or a release notice, and says which: `None` when the time came. A
/// signal ends the wait as it would have ended us.
pub(super) fn sleep_until(
    until: Moment,
    events: &mut Events,
    heed: &mut Heed,
) -> Result<Option<Turn>, Failure> {
    loop {
        match events.recv_timeout(until.saturating_duration_since(Moment::now())) {
            None => return Ok(None),
            Some(Event::Notice(named)) => match heed.turn(named) {
                Some(turn) => return Ok(Some(turn)),
                None => continue,
            },
            Some(Event::Signal(caught)) => return Err(interrupted(caught.signal)),
            Some(_) => continue,
        }
    }
}

/// Takes the events that came in during a request: the first signal, if any, and what the
/// notices on the waiter's channel (or a confirmed subscription) say of trying again: `Now`
/// over `Soon`.
pub(super) fn drain(events: &mut Events, heed: &mut Heed) -> (Option<i32>, Option<Turn>) {
    let mut notice = None;
    while let Some(event) = events.try_recv() {
        match event {
            Event::Signal(caught) => return (Some(caught.signal), notice),
            Event::Notice(named) => {
                if let Some(turn) = heed.turn(named)
                    && notice != Some(Turn::Now)
                {
                    notice = Some(turn);
                }
            }
            _ => {}
        }
    }
    (None, notice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_for_another_waiter_lets_it_go_first() {
        assert_eq!(turn(None), Turn::Now);
        assert_eq!(turn(Some("redlock:{q}:released:other".into())), Turn::Soon);
    }
}
