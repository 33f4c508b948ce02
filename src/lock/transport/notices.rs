//! Release notices, read by the waiting thread itself: a subscription to the lock's channel on
//! every server, over non-blocking sockets that the main thread's event loop watches along
//! with its signals (`run/events.rs`). A thread per server that handed each notice over cost every
//! waiter two wake-ups per release, and with many waiters that herd lengthened each hand-over
//! (BENCHMARKS.md).
//!
//! The lock of an application's key (`--key`) may also be released by a library that publishes
//! nothing: its waiters listen to the key's keyspace notifications too (`Keys::keyspace`,
//! node-local, so on the connection that follows the key's slot), where the server sends them
//! (`notify-keyspace-events` with K and g: a `del`), and each server's setting is read ahead of
//! the subscriptions (CONFIG GET), for the waiter to know whether it can rely on them.
//!
//! A subscription that drops (a server restarted or failed over, `CLIENT KILL`, a NAT that
//! forgets an idle connection) is made again, after a pause that doubles from
//! `RESUBSCRIBE_FIRST` to `RESUBSCRIBE_MOST`: a holder that stopped listening would not hear
//! `release --force` ask it to stop, and the operator's break would not wait for it. Its
//! confirmation is a notice naming none, as the first one was: the holder checks its lock, a
//! waiter tries again (a notice may have been missed meanwhile).

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::libc;
use redis::Value;

use super::conn::{Conn, Pumped};
use super::errors::{Class, describe_refusal};
use super::messages::{confirms, notice, sends_deletions};
use super::redirect::Redirect;
use super::resp::Reply;
use super::server::Server;

/// The first pause before subscribing again on a server whose subscription dropped.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between tries, while the server stays out of reach.
const RESUBSCRIBE_MOST: Duration = Duration::from_secs(2);
/// How long a subscription must have stayed up for its drop to start from the first pause.
const STAYED_UP: Duration = Duration::from_secs(10);

pub struct Notices {
    subscriptions: Vec<Subscription>,
    channel: String,
    /// Why a server refused a subscription (an ACL), until the caller has taken it.
    refused: Option<String>,
    /// Whether a refusal was already handed to the caller: said once.
    told: bool,
}

/// One server's subscription.
struct Subscription {
    conn: Conn,
    /// Sharded (SSUBSCRIBE: Redis 7+, on the node that owns the lock's slot) or not (SUBSCRIBE,
    /// on an older server).
    sharded: bool,
    /// With `--key`: the key's keyspace channel on this server (named in `keys.rs`).
    keyspace: Option<String>,
    /// With `--key`: what this server (the node that owns the key) said of its keyspace
    /// notifications.
    setting: Setting,
    /// While the subscription is down: when to make it again.
    down: Option<Instant>,
    /// The pause before the next try, should this one fail too.
    pause: Duration,
    /// Since when the server has answered on this connection: only then can a drop have cost
    /// a notice (one that never answered is tried again quietly), and only a subscription that
    /// stayed up `STAYED_UP` starts again from the first pause when it drops (one that a
    /// server confirms and drops at once is not made again every 100 ms).
    heard: Option<Instant>,
    /// The subscriptions sent whose confirmation (or refusal) has not come yet, in order: a
    /// refusal is the lock channel's or the keyspace channel's.
    pending: std::collections::VecDeque<Sent>,
}

/// A subscription sent on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// To the lock's channel.
    Lock,
    /// To the key's keyspace channel.
    Keyspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    /// Not a `--key` wait.
    NotAsked,
    /// CONFIG GET sent: the next reply on the connection answers it.
    Awaited,
    /// It sends a key's `del`.
    On,
    /// It does not, or would not say (CONFIG refused: an ACL, a managed service).
    Off,
}

/// What the servers said of their keyspace notifications, so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Keyspace {
    /// Servers, of those still subscribed to, that send them.
    pub on: usize,
    /// Servers, of those still subscribed to, that do not.
    pub off: usize,
    /// Servers still subscribed to: once `on` and `off` add up to it, every one has said.
    pub of: usize,
}

impl Notices {
    /// Subscribes to `channel` on every server, without waiting for the servers. A server that
    /// cannot be reached is left out: it only costs the prompt wake-up, and the waiter's timed
    /// retry reports it if it stays so.
    pub fn subscribe(servers: &[Server], channel: &str) -> Notices {
        Notices::subscribe_with(servers, channel, None)
    }

    /// As `subscribe`, and to a key's keyspace notifications where the server sends them:
    /// `keyspace` names its channel on each server, in their order.
    pub fn subscribe_with(
        servers: &[Server],
        channel: &str,
        keyspace: Option<Vec<String>>,
    ) -> Notices {
        let mut keyspace = keyspace.map(Vec::into_iter);
        let mut subscriptions: Vec<Subscription> = servers
            .iter()
            .map(|server| Subscription {
                conn: Conn::for_notices(server),
                sharded: true,
                keyspace: keyspace.as_mut().and_then(Iterator::next),
                setting: Setting::NotAsked,
                down: None,
                pause: RESUBSCRIBE_FIRST,
                heard: None,
                pending: std::collections::VecDeque::new(),
            })
            .collect();
        for sub in &mut subscriptions {
            if !(sub.conn.open().is_ok() && sub.subscribe(channel, true)) {
                sub.dropped();
            }
        }
        Notices {
            subscriptions,
            channel: channel.to_string(),
            refused: None,
            told: false,
        }
    }

    /// What the servers still subscribed to said of their keyspace notifications (`--key`): a
    /// connection that failed no longer counts.
    pub fn keyspace(&self) -> Keyspace {
        let live = || self.subscriptions.iter().filter(|sub| sub.down.is_none());
        let count = |setting| live().filter(|sub| sub.setting == setting).count();
        Keyspace {
            on: count(Setting::On),
            off: count(Setting::Off),
            of: live().count(),
        }
    }

    /// Why a server refused to subscribe (an ACL), the first time it is asked after that.
    pub fn refusal(&mut self) -> Option<String> {
        if self.told {
            return None;
        }
        let refused = self.refused.take();
        self.told = refused.is_some();
        refused
    }

    /// How long until a dropped subscription is to be made again, if one is down: the caller's
    /// sleep ends then, and `read` makes it.
    pub fn resubscribe_in(&self) -> Option<Duration> {
        let next = (self.subscriptions.iter())
            .filter_map(|sub| match sub.down {
                Some(at) => Some(at),
                // A silent seed, passed over then (see `read`).
                None if sub.heard.is_none() => sub.conn.pass_over_at(),
                None => None,
            })
            .min()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    /// The sockets to wait on, for `poll`.
    pub fn poll_fds(&self) -> Vec<libc::pollfd> {
        self.subscriptions
            .iter()
            .filter_map(|sub| sub.conn.poll_fd())
            .map(|fd| libc::pollfd {
                fd: fd.as_fd().as_raw_fd(),
                events: fd.events().bits(),
                revents: 0,
            })
            .collect()
    }

    /// Reads what the servers sent, without waiting: a release notice, with the token of the
    /// waiter it names if any, for each release, and one naming none for each subscription
    /// confirmed (a release just before it would have been missed). A connection that fails
    /// is dropped, and that too is a notice naming none: a release may have gone unheard, and
    /// a waiter that relied on the key's notifications must go back to retrying.
    pub fn read(&mut self) -> Vec<Option<String>> {
        let mut notices = Vec::new();
        let channel = &self.channel;
        let now = Instant::now();
        for sub in &mut self.subscriptions {
            match sub.down {
                Some(at) if now >= at => {
                    if !(sub.conn.open().is_ok() && sub.subscribe(channel, true)) {
                        sub.dropped();
                        continue;
                    }
                    sub.down = None;
                }
                Some(_) => continue,
                None => {}
            }
            // A cluster's seed that accepted the subscription and says nothing: the next one.
            if sub.heard.is_none()
                && sub.conn.pass_over_at().is_some_and(|at| now >= at)
                && sub.conn.next_home()
            {
                sub.setting = Setting::NotAsked;
                sub.down = Some(now);
                continue;
            }
            if !sub.pump(channel, &mut notices, &mut self.refused) {
                if sub.heard.is_some() {
                    notices.push(None);
                }
                sub.dropped();
            }
        }
        notices
    }
}

impl Subscription {
    /// Reads what the server sent, its notices into `notices`. False when the connection
    /// failed.
    fn pump(
        &mut self,
        channel: &str,
        notices: &mut Vec<Option<String>>,
        refused: &mut Option<String>,
    ) -> bool {
        let sub = self;
        match sub.conn.pump() {
            Ok(Pumped::Connecting) => true,
            Ok(Pumped::Open { closed }) => loop {
                let reply = sub.conn.next_unmatched();
                // The first reply after CONFIG GET answers it, whatever it says.
                if sub.setting == Setting::Awaited
                    && let Ok(Some(answer)) = &reply
                {
                    sub.setting = match answer {
                        Reply::Value(Value::Array(fields)) if sends_deletions(fields) => {
                            Setting::On
                        }
                        _ => Setting::Off,
                    };
                    continue;
                }
                match reply {
                    Ok(Some(Reply::Value(Value::Array(message)))) => {
                        sub.heard.get_or_insert_with(Instant::now);
                        if confirms(&message) {
                            sub.pending.pop_front();
                        }
                        if let Some(named) = notice(&message, sub.keyspace.as_deref()) {
                            notices.push(named);
                        }
                    }
                    Ok(Some(Reply::Error(text))) => match sub.pending.pop_front() {
                        // An ACL that allows the lock's channel, not the key's keyspace channel
                        // (docs/security.md: optional): as a server that sends no
                        // notifications.
                        Some(Sent::Keyspace) => sub.setting = Setting::Off,
                        // A cluster node that does not own the lock's slot names the one that
                        // does: subscribed there, and asked there for its setting (the keyspace
                        // subscription, not sharded, is not redirected: it follows).
                        _ if sub.sharded && Redirect::parse(&text).is_some() => {
                            break sub.conn.move_to(Redirect::parse(&text).as_ref()).is_ok()
                                && sub.subscribe(channel, true);
                        }
                        // An ACL: falling back to SUBSCRIBE would reach no sharded publisher.
                        _ if Class::of(&text) == Class::NoPermission => {
                            refused.get_or_insert_with(|| {
                                format!("{:#}", describe_refusal(&text, None))
                            });
                            break false;
                        }
                        // A server without sharded pub/sub (before Redis 7); the keyspace
                        // subscription, sent with it, stands.
                        _ if sub.sharded => {
                            sub.sharded = false;
                            if !sub.subscribe(channel, false) {
                                break false;
                            }
                        }
                        _ => {}
                    },
                    Ok(Some(_)) => {}
                    Ok(None) => break !closed,
                    Err(_) => break false,
                }
            },
            Err(_) => false,
        }
    }

    /// The subscription is down: closed, and made again after a pause that grows while it
    /// keeps failing.
    fn dropped(&mut self) {
        self.pending.clear();
        self.conn.close();
        if self
            .heard
            .take()
            .is_some_and(|since| since.elapsed() >= STAYED_UP)
        {
            self.pause = RESUBSCRIBE_FIRST;
        }
        self.setting = Setting::NotAsked;
        self.down = Some(Instant::now() + self.pause);
        self.pause = (self.pause * 2).min(RESUBSCRIBE_MOST);
    }

    /// Queues the subscription to `channel`, sharded or not, and `with_keyspace` (with a key):
    /// the server's notification setting (CONFIG GET, ahead of the rest) and the key's keyspace
    /// channel; writes them. False if it fails.
    fn subscribe(&mut self, channel: &str, with_keyspace: bool) -> bool {
        let conn = &mut self.conn;
        let keyspace = self.keyspace.as_ref().filter(|_| with_keyspace);
        if with_keyspace {
            // A connection of its own (opened, or moved): nothing of the last one is awaited.
            self.pending.clear();
        }
        if keyspace.is_some() {
            let read = redis::cmd("CONFIG")
                .arg("GET")
                .arg("notify-keyspace-events")
                .get_packed_command();
            conn.queue_unmatched(&read);
            self.setting = Setting::Awaited;
        }
        let command = if self.sharded {
            "SSUBSCRIBE"
        } else {
            "SUBSCRIBE"
        };
        conn.queue_unmatched(&redis::cmd(command).arg(channel).get_packed_command());
        self.pending.push_back(Sent::Lock);
        if let Some(keyspace) = keyspace {
            conn.queue_unmatched(&redis::cmd("SUBSCRIBE").arg(keyspace).get_packed_command());
            self.pending.push_back(Sent::Keyspace);
        }
        conn.flush().is_ok()
    }
}
