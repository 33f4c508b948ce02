//! Release notices, read by the waiting thread itself: a subscription to the lock's channel on
//! every server, over non-blocking sockets that the main thread's event loop watches along
//! with its signals (`run/events.rs`). A thread per server that handed each notice over cost every
//! waiter two wake-ups per release, and with many waiters that herd lengthened each hand-over
//! (BENCHMARKS.md).
//!
//! The lock of an application's key (`--key`) may also be released by a library that publishes
//! nothing: its waiters listen to the key's keyspace notifications too (`__keyspace@DB__:KEY`,
//! node-local, so on the connection that follows the key's slot), where the server sends them
//! (`notify-keyspace-events` with K and g: a `del`), and each server's setting is read ahead of
//! the subscriptions (CONFIG GET), for the waiter to know whether it can rely on them.

use std::os::fd::{AsFd, AsRawFd};

use nix::libc;
use redis::Value;

use super::conn::{Conn, Pumped};
use super::exchange::Redirect;
use super::resp::Reply;
use super::server::Server;

pub struct Notices {
    /// Each subscription, and whether it is sharded (SSUBSCRIBE: Redis 7+, on the node that
    /// owns the lock's slot) or not (SUBSCRIBE, on an older server).
    conns: Vec<(Conn, bool)>,
    channel: String,
    /// With `--key`: the key, for its keyspace notifications.
    key: Option<String>,
    /// Of the servers whose `notify-keyspace-events` was read: those that send a key's `del`.
    keyspace: Keyspace,
}

/// What the servers said of their keyspace notifications, so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Keyspace {
    /// Servers that send them.
    pub on: usize,
    /// Servers that do not (or would not say: CONFIG may be refused).
    pub off: usize,
    /// Servers subscribed to: once `on` and `off` add up to it, every one has said.
    pub of: usize,
}

impl Notices {
    /// Subscribes to `channel` on every server, without waiting for the servers. A server that
    /// cannot be reached is left out: it only costs the prompt wake-up, and the waiter's timed
    /// retry reports it if it stays so.
    pub fn subscribe(servers: &[Server], channel: &str) -> Notices {
        Notices::subscribe_with(servers, channel, None)
    }

    /// As `subscribe`, and to the keyspace notifications of `key` where the server sends them.
    pub fn subscribe_with(servers: &[Server], channel: &str, key: Option<&str>) -> Notices {
        let mut conns: Vec<(Conn, bool)> = servers.iter().map(|s| (Conn::new(s), true)).collect();
        conns.retain_mut(|(conn, _)| {
            if conn.open().is_err() {
                return false;
            }
            if key.is_some() {
                let read = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("notify-keyspace-events")
                    .get_packed_command();
                conn.queue_unmatched(&read);
            }
            subscribe(conn, channel, true, key)
        });
        Notices {
            conns,
            channel: channel.to_string(),
            key: key.map(str::to_string),
            keyspace: Keyspace::default(),
        }
    }

    /// What the servers said of their keyspace notifications so far (with `--key`).
    pub fn keyspace(&self) -> Keyspace {
        Keyspace {
            of: self.conns.len(),
            ..self.keyspace
        }
    }

    /// The sockets to wait on, for `poll`.
    pub fn poll_fds(&self) -> Vec<libc::pollfd> {
        self.conns
            .iter()
            .filter_map(|(conn, _)| conn.poll_fd())
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
    /// is dropped.
    pub fn read(&mut self) -> Vec<Option<String>> {
        let mut notices = Vec::new();
        let (channel, key, keyspace) = (&self.channel, self.key.as_deref(), &mut self.keyspace);
        self.conns.retain_mut(|(conn, sharded)| match conn.pump() {
            Ok(Pumped::Connecting) => true,
            Ok(Pumped::Open { closed }) => loop {
                match conn.next_unmatched() {
                    Ok(Some(Reply::Value(Value::Array(message)))) => match read(&message) {
                        Read::Notice(named) => notices.push(named),
                        Read::Setting(sends) if sends => keyspace.on += 1,
                        Read::Setting(_) => keyspace.off += 1,
                        Read::Nothing => {}
                    },
                    // A cluster node that does not own the lock's slot names the one that does
                    // (the keyspace subscription, not sharded, is not redirected: it follows).
                    Ok(Some(Reply::Error(text)))
                        if *sharded && Redirect::parse(&text).is_some() =>
                    {
                        break conn.move_to(Redirect::parse(&text).as_ref()).is_ok()
                            && subscribe(conn, channel, true, key);
                    }
                    // CONFIG refused (an ACL, or a managed service): rely on no notification.
                    Ok(Some(Reply::Error(text))) if text.contains("CONFIG") => keyspace.off += 1,
                    // A server without sharded pub/sub (before Redis 7).
                    Ok(Some(Reply::Error(_))) if *sharded => {
                        *sharded = false;
                        if !subscribe(conn, channel, false, None) {
                            break false;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break !closed,
                    Err(_) => break false,
                }
            },
            Err(_) => false,
        });
        notices
    }
}

/// Queues the subscription to `channel`, sharded or not, and to `key`'s keyspace notifications
/// if there is one, and writes them; false if it fails.
fn subscribe(conn: &mut Conn, channel: &str, sharded: bool, key: Option<&str>) -> bool {
    let command = if sharded { "SSUBSCRIBE" } else { "SUBSCRIBE" };
    conn.queue_unmatched(&redis::cmd(command).arg(channel).get_packed_command());
    if let Some(key) = key {
        let keyspace = format!("__keyspace@{}__:{key}", conn.server.db);
        conn.queue_unmatched(&redis::cmd("SUBSCRIBE").arg(keyspace).get_packed_command());
    }
    conn.flush().is_ok()
}

/// What one array a subscribed connection received says.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A release notice, naming a waiter or none (see `named`).
    Notice(Option<String>),
    /// The server's `notify-keyspace-events`: whether it sends a key's `del`.
    Setting(bool),
    /// A keyspace event that frees nothing (a `set`, an `expire`), and the like.
    Nothing,
}

fn read(message: &[Value]) -> Read {
    match message {
        [Value::BulkString(name), Value::BulkString(flags)]
            if name == b"notify-keyspace-events" =>
        {
            // K: keyspace channels; g (or A, all): generic commands, DEL among them.
            let has = |c: u8| flags.contains(&c);
            Read::Setting(has(b'K') && (has(b'g') || has(b'A')))
        }
        // The keyspace subscription's confirmation: the release channel's wakes the waiter.
        [Value::BulkString(kind), Value::BulkString(channel), _]
            if kind == b"subscribe" && channel.starts_with(b"__keyspace@") =>
        {
            Read::Nothing
        }
        [
            Value::BulkString(kind),
            Value::BulkString(channel),
            Value::BulkString(event),
        ] if kind == b"message" && channel.starts_with(b"__keyspace@") => {
            // Gone: deleted, expired, evicted. A wake-up naming no one: try now.
            match event.as_slice() {
                b"del" | b"expired" | b"evicted" | b"unlink" => Read::Notice(None),
                _ => Read::Nothing,
            }
        }
        _ => Read::Notice(named(message)),
    }
}

/// The waiter a release notice names: its payload, `message CHANNEL TOKEN` (`smessage` when
/// sharded). A subscription's
/// confirmation, or a notice naming no one (a lock broken by `release --force`), names none.
fn named(message: &[Value]) -> Option<String> {
    match message {
        [Value::BulkString(kind), _, Value::BulkString(token)]
            if (kind == b"message" || kind == b"smessage") && !token.is_empty() =>
        {
            Some(String::from_utf8_lossy(token).into_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn a_notice_names_the_waiter_in_its_payload() {
        let message = [bulk("message"), bulk("redlock:{x}:released"), bulk("abc")];
        assert_eq!(named(&message), Some("abc".to_string()));
        // A lock broken by an operator names no one; nor does a confirmed subscription.
        let sharded = [bulk("smessage"), bulk("redlock:{x}:released"), bulk("abc")];
        assert_eq!(named(&sharded), Some("abc".to_string()));
        let broken = [bulk("message"), bulk("redlock:{x}:released"), bulk("")];
        assert_eq!(named(&broken), None);
        let confirmed = [
            bulk("subscribe"),
            bulk("redlock:{x}:released"),
            Value::Int(1),
        ];
        assert_eq!(named(&confirmed), None);
    }

    #[test]
    fn keyspace_events_wake_only_when_the_key_is_gone() {
        let event = |name: &str| [bulk("message"), bulk("__keyspace@0__:k"), bulk(name)];
        assert_eq!(read(&event("del")), Read::Notice(None));
        assert_eq!(read(&event("expired")), Read::Notice(None));
        assert_eq!(read(&event("set")), Read::Nothing);
        assert_eq!(read(&event("pexpire")), Read::Nothing);
        let setting = |flags: &str| [bulk("notify-keyspace-events"), bulk(flags)];
        assert_eq!(read(&setting("Kg")), Read::Setting(true));
        assert_eq!(read(&setting("AK")), Read::Setting(true));
        assert_eq!(read(&setting("Ex")), Read::Setting(false));
        assert_eq!(read(&setting("")), Read::Setting(false));
    }
}
