//! The lock's control channel (`PREFIX:{NAME}:control`), heard by its live holder: the scripts
//! publish `taken TOKEN` (acquire.lua, a new holder), `broken` (break.lua, an operator deleted
//! the lock) and `stop TOKEN` (ask.lua, `release --force` asks that holder to let go). This is
//! what a holder makes of them, and when it listens.

use std::time::Duration;

use crate::clock::Moment;
use crate::lock::{Notices, Server};
use crate::run::events::Events;

/// How long the command runs before its holder subscribes: a command that ends sooner (most
/// runs in front of a quick job) never pays for the subscription, and the confirmed
/// subscription's check (see `Listener`) covers what happened before it. A second connection
/// costs the server an accept, a subscription and a hang-up: at 10 ms, the hand-over of 8
/// contending loops of 10 ms jobs (BENCHMARKS.md, B2) took 0.23 ms longer; at 50 ms, within
/// the noise.
pub const LISTEN_AFTER: Duration = Duration::from_millis(50);

/// The holder's subscription to its control channel, opened `LISTEN_AFTER` after the command
/// started. Once the subscription is confirmed, the holder checks its lock once (an extension):
/// a break or takeover published before then would otherwise go unheard until the heartbeat.
pub struct Listener {
    at: Moment,
    servers: Vec<Server>,
    /// Each lock's control channel: one, or one for each of several locks held at once.
    channels: Vec<String>,
    subscribed: bool,
}

impl Listener {
    pub fn new(servers: Vec<Server>, channels: Vec<String>) -> Self {
        Listener {
            at: Moment::now() + LISTEN_AFTER,
            servers,
            channels,
            subscribed: false,
        }
    }

    /// When to subscribe, until it has.
    pub fn due(&self) -> Option<Moment> {
        (!self.subscribed).then_some(self.at)
    }

    /// Subscribes once it is due; its messages and confirmation come as `Event::Notice`.
    pub fn listen_if_due(&mut self, events: &mut Events) {
        if self.due().is_some_and(|at| Moment::now() >= at) {
            self.subscribe(events);
            self.subscribed = true;
        }
    }

    /// Subscribes again, to where the servers are now (a new primary the sentinels named),
    /// if it had subscribed: its confirmation has the lock checked there.
    pub fn follow(&mut self, events: &mut Events) {
        if self.subscribed {
            self.subscribe(events);
        }
    }

    fn subscribe(&self, events: &mut Events) {
        let each = self.channels.iter();
        events.listen_all(each.map(|c| Notices::subscribe(&self.servers, c)).collect());
    }

    /// Unsubscribes.
    pub fn stop(self, events: &mut Events) {
        events.stop_listening();
    }
}

/// What a message on the lock's control channel (`Keys::control`) asks of its holder.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    /// `release --force` asks this run to stop its command and release the lock.
    Stop,
    /// Another run, with `--replace`, asks the same, to take over.
    Replace,
    /// The lock was broken, or taken by another token: an extension at once tells whether it
    /// is still ours (with several servers, a majority may still hold it).
    Check(&'static str),
    /// For another holder.
    Ignore,
}

/// What the holder does on its subscription's confirmation (a notice without payload).
pub const CONFIRMED: Control = Control::Check("found when it began to listen for breaks");

impl Control {
    pub fn parse(payload: &str, token: &str) -> Control {
        match payload.split_once(' ') {
            Some(("stop", asked)) if asked == token => Control::Stop,
            Some(("replace", asked)) if asked == token => Control::Replace,
            Some(("taken", by)) if by != token => Control::Check("another run took it"),
            None if payload == "broken" => Control::Check("`redlock release --force` broke it"),
            _ => Control::Ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_notices_are_read_for_this_run_only() {
        assert_eq!(Control::parse("stop abc", "abc"), Control::Stop);
        assert_eq!(Control::parse("stop other", "abc"), Control::Ignore);
        assert_eq!(Control::parse("replace abc", "abc"), Control::Replace);
        assert_eq!(Control::parse("replace other", "abc"), Control::Ignore);
        assert!(matches!(
            Control::parse("taken other", "abc"),
            Control::Check(_)
        ));
        // Our own acquire (a retry that reached a server late) is not a takeover.
        assert_eq!(Control::parse("taken abc", "abc"), Control::Ignore);
        assert!(matches!(Control::parse("broken", "abc"), Control::Check(_)));
        assert_eq!(Control::parse("", "abc"), Control::Ignore);
        assert_eq!(Control::parse("something else", "abc"), Control::Ignore);
    }
}
