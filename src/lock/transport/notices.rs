//! Release notices, read by the waiting thread itself: a subscription to the lock's channel on
//! every server, over non-blocking sockets that the main thread's event loop watches along
//! with its signals (`run/events.rs`). A thread per server that handed each notice over cost every
//! waiter two wake-ups per release, and with many waiters that herd lengthened each hand-over
//! (BENCHMARKS.md).

use std::os::fd::{AsFd, AsRawFd};

use nix::libc;
use redis::Value;

use super::conn::{Conn, Pumped};
use super::resp::Reply;
use super::server::Server;

pub struct Notices {
    conns: Vec<Conn>,
}

impl Notices {
    /// Subscribes to `channel` on every server, without waiting for the servers. A server that
    /// cannot be reached is left out: it only costs the prompt wake-up, and the waiter's timed
    /// retry reports it if it stays so.
    pub fn subscribe(servers: &[Server], channel: &str) -> Notices {
        let mut conns: Vec<Conn> = servers.iter().map(Conn::new).collect();
        let subscribe = redis::cmd("SUBSCRIBE").arg(channel).get_packed_command();
        conns.retain_mut(|conn| {
            conn.open().is_ok() && {
                conn.queue_unmatched(&subscribe);
                conn.flush().is_ok()
            }
        });
        Notices { conns }
    }

    /// The sockets to wait on, for `poll`.
    pub fn poll_fds(&self) -> Vec<libc::pollfd> {
        self.conns
            .iter()
            .filter_map(Conn::poll_fd)
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
        self.conns.retain_mut(|conn| match conn.pump() {
            Ok(Pumped::Connecting) => true,
            Ok(Pumped::Open { closed }) => loop {
                match conn.next_unmatched() {
                    Ok(Some(Reply::Value(Value::Array(message)))) => notices.push(named(&message)),
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

/// The waiter a release notice names: its payload, `message CHANNEL TOKEN`. A subscription's
/// confirmation, or a notice naming no one (a lock broken by `release --force`), names none.
fn named(message: &[Value]) -> Option<String> {
    match message {
        [Value::BulkString(kind), _, Value::BulkString(token)]
            if kind == b"message" && !token.is_empty() =>
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
