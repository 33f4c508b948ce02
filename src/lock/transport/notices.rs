//! Release notices, read by the waiting thread itself: a subscription to the lock's channel on
//! every server, over non-blocking sockets that the main thread's event loop watches along
//! with its signals (`run/events.rs`). A thread per server that handed each notice over cost every
//! waiter two wake-ups per release, and with many waiters that herd lengthened each hand-over
//! (BENCHMARKS.md).

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
}

impl Notices {
    /// Subscribes to `channel` on every server, without waiting for the servers. A server that
    /// cannot be reached is left out: it only costs the prompt wake-up, and the waiter's timed
    /// retry reports it if it stays so.
    pub fn subscribe(servers: &[Server], channel: &str) -> Notices {
        let mut conns: Vec<(Conn, bool)> = servers.iter().map(|s| (Conn::new(s), true)).collect();
        conns.retain_mut(|(conn, _)| conn.open().is_ok() && subscribe(conn, channel, true));
        Notices {
            conns,
            channel: channel.to_string(),
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
        let channel = &self.channel;
        self.conns.retain_mut(|(conn, sharded)| match conn.pump() {
            Ok(Pumped::Connecting) => true,
            Ok(Pumped::Open { closed }) => loop {
                match conn.next_unmatched() {
                    Ok(Some(Reply::Value(Value::Array(message)))) => notices.push(named(&message)),
                    // A cluster node that does not own the lock's slot names the one that does.
                    Ok(Some(Reply::Error(text)))
                        if *sharded && Redirect::parse(&text).is_some() =>
                    {
                        break conn.move_to(Redirect::parse(&text).as_ref()).is_ok()
                            && subscribe(conn, channel, true);
                    }
                    // A server without sharded pub/sub (before Redis 7).
                    Ok(Some(Reply::Error(_))) if *sharded => {
                        *sharded = false;
                        if !subscribe(conn, channel, false) {
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

/// Queues the subscription to `channel`, sharded or not, and writes it; false if it fails.
fn subscribe(conn: &mut Conn, channel: &str, sharded: bool) -> bool {
    let command = if sharded { "SSUBSCRIBE" } else { "SUBSCRIBE" };
    conn.queue_unmatched(&redis::cmd(command).arg(channel).get_packed_command());
    conn.flush().is_ok()
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
}
