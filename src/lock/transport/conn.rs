//! One connection to one server, and the rules of talking to it, each written here only:
//! connecting to each of the host's addresses in turn, logging in (AUTH, SELECT) ahead of the
//! first request, running a script by hash with a fall-back to sending it in full (NOSCRIPT),
//! waiting for replicas (WAIT) after a write of the lease, and naming the server in an error.
//!
//! A request left unanswered (a majority had answered, or its time ran out) stays on its
//! connection: its reply is read and dropped later, matched by a queue of what the connection
//! still owes, and never taken for the answer to a later request. A connection is closed only
//! when it fails.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt};
use redis::Value;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use super::errors::{describe_io, describe_reply, not_redis};
use super::request::{Body, Request};
use super::resp::{self, Reply};
use super::server::{Place, Server};
use super::stream::{Stream, connect_unix, start_connect};
use super::tls;

/// How many replies a connection may owe before it is opened again (see `Conn::send`).
const MAX_OWED: usize = 32;

/// A reply still to come on a connection, in the order they will come.
enum Expect {
    /// The answer to AUTH or SELECT.
    Hello,
    /// The answer to a request nobody waits for any more.
    Stale,
    /// The request's own reply; for a script, whether it was sent by hash (EVALSHA).
    Request { by_hash: bool },
    /// WAIT, after a script that wrote the lease.
    Replicated,
}

/// The request a connection is answering.
pub(super) struct Current {
    pub(super) deadline: Instant,
    wrote: fn(&Value) -> bool,
    /// The script's reply, while WAIT is awaited.
    reply: Option<Value>,
    /// The script in full (EVAL), for a server that answers NOSCRIPT to it by hash: sent
    /// even when nobody waits for the answer any more, so that a server that answers late
    /// still ends up with the lock the others granted.
    in_full: Option<Arc<[u8]>>,
}

pub(super) struct Conn {
    server: Server,
    /// The host's addresses not tried yet, while connecting.
    addresses: VecDeque<SocketAddr>,
    /// With TLS: the settings and the name to check, for when the TCP connection is made.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    stream: Option<Stream>,
    /// Still connecting (TCP): writable means connected (or failed).
    pub(super) connecting: bool,
    /// Nothing has been sent on this connection yet.
    fresh: bool,
    out: Vec<u8>,
    input: Vec<u8>,
    expect: VecDeque<Expect>,
    pub(super) current: Option<Current>,
}

/// Where a connection stands after `Conn::pump`.
pub(super) enum Pumped {
    /// Still being made.
    Connecting,
    /// Open; `closed` once the server has hung up (what it sent before is in `input`).
    Open { closed: bool },
}

/// What a connection has to say after some I/O.
pub(super) enum Outcome {
    Nothing,
    Answer(Result<Value>),
}

impl Conn {
    /// A connection to `server`, not opened yet.
    pub(super) fn new(server: &Server) -> Conn {
        Conn {
            server: server.clone(),
            addresses: VecDeque::new(),
            tls: None,
            stream: None,
            connecting: false,
            fresh: true,
            out: Vec::new(),
            input: Vec::new(),
            expect: VecDeque::new(),
            current: None,
        }
    }

    /// Starts connecting, without waiting for the connection to be made.
    pub(super) fn open(&mut self) -> Result<()> {
        let stream = match &self.server.place {
            Place::Unix(path) => connect_unix(path).map_err(|e| self.cannot_connect(&e))?,
            Place::Tcp {
                host,
                port,
                lookup,
                tls,
            } => {
                self.tls = match tls {
                    Some(tls) => Some((
                        tls::config(tls.insecure).map_err(|e| self.named(e, true))?,
                        tls::server_name(host).map_err(|e| self.named(e, true))?,
                    )),
                    None => None,
                };
                let addresses = lookup.addresses(host, *port);
                self.addresses = addresses.map_err(|e| self.named(e, true))?.into();
                let no_address =
                    io::Error::new(io::ErrorKind::AddrNotAvailable, "the host has no address");
                self.connect_next(no_address)
                    .map_err(|e| self.cannot_connect(&e))?
            }
        };
        self.stream = Some(stream);
        for hello in &self.server.hello {
            self.out.extend_from_slice(hello);
            self.expect.push_back(Expect::Hello);
        }
        Ok(())
    }

    /// Starts connecting to the next of the host's addresses, in turn as redis-rs tries them:
    /// `localhost` may name ::1 first, where the server may not listen. `Err`: the last error.
    fn connect_next(&mut self, mut last: io::Error) -> io::Result<Stream> {
        while let Some(address) = self.addresses.pop_front() {
            match start_connect(address) {
                Ok((stream, false)) => return self.secured(stream),
                Ok((stream, true)) => {
                    self.connecting = true;
                    return Ok(stream);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A TCP connection that is made, in TLS if the server wants it.
    fn secured(&mut self, stream: Stream) -> io::Result<Stream> {
        self.connecting = false;
        match &self.tls {
            Some((config, name)) => stream.tls(config.clone(), name.clone()),
            None => Ok(stream),
        }
    }

    fn cannot_connect(&self, error: &io::Error) -> anyhow::Error {
        self.named(describe_io(error), true)
    }

    /// `error`, naming the server; while connecting or logging in, as a failure to connect.
    pub(super) fn named(&self, error: anyhow::Error, connecting: bool) -> anyhow::Error {
        let what = if connecting {
            "cannot connect to Redis at"
        } else {
            "Redis at"
        };
        error.context(format!("{what} {}", self.server.address))
    }

    pub(super) fn close(&mut self) {
        self.stream = None;
        self.connecting = false;
        self.fresh = true;
        self.out.clear();
        self.input.clear();
        self.expect.clear();
        self.current = None;
    }

    /// Reads and drops what has come for an earlier request nobody waits for any more: no
    /// WAIT follows it (a fallback to EVAL still goes, see `Current::in_full`).
    pub(super) fn settle(&mut self) {
        if self.current.is_some() && self.progress().is_err() {
            self.close();
        }
    }

    /// Gives up on the current request: its replies will be read and dropped.
    pub(super) fn abandon(&mut self) {
        for expect in self.expect.iter_mut() {
            if !matches!(expect, Expect::Hello) {
                *expect = Expect::Stale;
            }
        }
        self.current = None;
    }

    /// Queues `request` and writes what can be written now; a script goes by hash if
    /// `by_hash`, except as the first request on a connection: a server may have restarted
    /// and forgotten the scripts, and its NOSCRIPT answer could come after the caller stopped
    /// waiting for it, leaving it without the lock the others granted until the connection is
    /// used again. A connection that owes `MAX_OWED` replies (a server frozen for long, while
    /// extensions kept coming) is opened again first, dropping what it had not sent yet.
    pub(super) fn send(
        &mut self,
        request: &Request,
        by_hash: bool,
        deadline: Instant,
    ) -> Result<()> {
        if self.expect.len() >= MAX_OWED {
            self.close();
        }
        if self.stream.is_none() {
            self.open()?;
        }
        let (by_hash, in_full) = match &request.body {
            Body::Script {
                by_hash: hashed,
                in_full,
            } => {
                let by_hash = by_hash && !std::mem::take(&mut self.fresh);
                self.out
                    .extend_from_slice(if by_hash { hashed } else { in_full });
                (by_hash, by_hash.then(|| in_full.clone()))
            }
            Body::Command(packed) => {
                self.out.extend_from_slice(packed);
                (false, None)
            }
        };
        self.expect.push_back(Expect::Request { by_hash });
        self.current = Some(Current {
            deadline,
            wrote: request.wrote,
            reply: None,
            in_full,
        });
        self.flush().map_err(|e| {
            self.close();
            self.named(e, false)
        })
    }

    /// Writes what is queued, as far as the socket takes it. The error names no server: the
    /// caller does.
    pub(super) fn flush(&mut self) -> Result<()> {
        if self.connecting {
            return Ok(());
        }
        let stream = self.stream.as_mut().expect("connected");
        while !self.out.is_empty() {
            match stream.write(&self.out) {
                Ok(0) => return Err(describe_io(&io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(describe_io(&e)),
            }
        }
        Ok(())
    }

    /// Whether some of what is queued has not reached the socket yet.
    pub(super) fn unsent(&self) -> bool {
        self.connecting
            || self
                .stream
                .as_ref()
                .is_some_and(|s| s.wants_write(!self.out.is_empty()))
    }

    /// Queues bytes whose replies answer no request: SUBSCRIBE, whose messages follow.
    pub(super) fn queue_unmatched(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// The next whole reply in `input` that does not answer AUTH or SELECT, if there is one.
    /// `Err` when the server refused those or does not speak RESP.
    pub(super) fn next_unmatched(&mut self) -> Result<Option<Reply>> {
        while let Some((reply, used)) = resp::parse(&self.input).map_err(|_| not_redis())? {
            self.input.drain(..used);
            if !matches!(self.expect.front(), Some(Expect::Hello)) {
                return Ok(Some(reply));
            }
            self.expect.pop_front();
            if let Reply::Error(text) = reply {
                return Err(describe_reply(&text));
            }
        }
        Ok(None)
    }

    /// What to poll the connection for: reading, and writing while connecting or while
    /// something is queued. `None` when it is closed.
    pub(super) fn poll_fd(&self) -> Option<PollFd<'_>> {
        let stream = self.stream.as_ref()?;
        let mut flags = PollFlags::POLLIN;
        if self.unsent() {
            flags |= PollFlags::POLLOUT;
        }
        Some(PollFd::new(stream.fd(), flags))
    }

    /// After poll: finishes connecting, writes, reads, and answers if the reply is complete.
    pub(super) fn on_ready(&mut self) -> Outcome {
        match self.progress() {
            Ok(outcome) => outcome,
            Err(e) => {
                let e = self.named(e, self.connecting);
                self.close();
                Outcome::Answer(Err(e))
            }
        }
    }

    fn progress(&mut self) -> Result<Outcome> {
        let Pumped::Open { closed } = self.pump()? else {
            return Ok(Outcome::Nothing);
        };
        // What came before the end is read first: a server that refuses a login answers why,
        // then hangs up.
        while let Some((reply, used)) = resp::parse(&self.input).map_err(|_| not_redis())? {
            self.input.drain(..used);
            if let Outcome::Answer(answer) = self.on_reply(reply)? {
                if closed {
                    self.close();
                }
                return Ok(Outcome::Answer(answer));
            }
        }
        if closed {
            return Err(anyhow!("the server closed the connection"));
        }
        Ok(Outcome::Nothing)
    }

    /// Finishes connecting, writes what is queued, and reads what has come into `input`.
    pub(super) fn pump(&mut self) -> Result<Pumped> {
        if self.connecting {
            let stream = self.stream.as_ref().expect("connecting");
            let ready = nix::poll::poll(
                &mut [PollFd::new(stream.fd(), PollFlags::POLLOUT)],
                PollTimeout::ZERO,
            )
            .unwrap_or(0);
            if ready == 0 {
                return Ok(Pumped::Connecting);
            }
            let made = match socket::getsockopt(&stream.fd(), sockopt::SocketError) {
                Ok(0) => {
                    let stream = self.stream.take().expect("connecting");
                    self.secured(stream)
                }
                // Nothing was written yet: what is queued goes to the next address.
                Ok(errno) => self.connect_next(io::Error::from_raw_os_error(errno)),
                Err(e) => Err(e.into()),
            };
            self.stream = Some(made.map_err(|e| describe_io(&e))?);
            if self.connecting {
                return Ok(Pumped::Connecting);
            }
        }
        self.flush()?;
        let stream = self.stream.as_mut().expect("connected");
        let mut chunk = [0u8; 4096];
        let mut closed = false;
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(describe_io(&e)),
            }
        }
        // A TLS handshake finished by this read lets what is queued go now.
        self.flush()?;
        Ok(Pumped::Open { closed })
    }

    /// Matches one reply to what was expected. `Err` when the connection cannot go on.
    fn on_reply(&mut self, reply: Reply) -> Result<Outcome> {
        let Some(expect) = self.expect.pop_front() else {
            return Err(not_redis());
        };
        let replicas = self.server.replicas;
        match (expect, reply) {
            (Expect::Stale, _) => Ok(Outcome::Nothing),
            (Expect::Hello, Reply::Error(text)) => {
                // Logging in is part of connecting; the connection is of no use.
                let refused = self.named(describe_reply(&text), true);
                self.close();
                Ok(Outcome::Answer(Err(refused)))
            }
            (Expect::Hello, Reply::Value(_)) => Ok(Outcome::Nothing),
            (Expect::Request { by_hash: true }, Reply::Error(text))
                if text.starts_with("NOSCRIPT")
                    && self.current.as_ref().is_some_and(|c| c.in_full.is_some()) =>
            {
                let in_full = self.current.as_mut().and_then(|c| c.in_full.take());
                self.out.extend_from_slice(&in_full.expect("checked"));
                self.expect.push_back(Expect::Request { by_hash: false });
                self.flush()?;
                Ok(Outcome::Nothing)
            }
            (Expect::Request { .. }, Reply::Error(text)) => self.answer(Err(describe_reply(&text))),
            (Expect::Request { .. }, Reply::Value(value)) => match &mut self.current {
                Some(current) if replicas > 0 && (current.wrote)(&value) => {
                    let left = current.deadline.saturating_duration_since(Instant::now());
                    // The server answers WAIT when its own time-out ends; ours ends a little later.
                    let wait_ms = (left.as_millis() as u64 * 9 / 10).max(1);
                    current.reply = Some(value);
                    let wait = redis::cmd("WAIT")
                        .arg(replicas)
                        .arg(wait_ms)
                        .get_packed_command();
                    self.out.extend_from_slice(&wait);
                    self.expect.push_back(Expect::Replicated);
                    self.flush()?;
                    Ok(Outcome::Nothing)
                }
                _ => self.answer(Ok(value)),
            },
            (Expect::Replicated, Reply::Value(Value::Int(acked)))
                if acked >= i64::from(replicas) =>
            {
                let reply = self.current.as_mut().and_then(|c| c.reply.take());
                self.answer(reply.ok_or_else(not_redis))
            }
            (Expect::Replicated, Reply::Value(Value::Int(acked))) => self.answer(Err(anyhow!(
                "only {acked} of {replicas} replicas confirmed the write in time"
            ))),
            (Expect::Replicated, Reply::Error(text)) => self.answer(Err(describe_reply(&text))),
            (Expect::Replicated, Reply::Value(_)) => Err(not_redis()),
        }
    }

    fn answer(&mut self, answer: Result<Value>) -> Result<Outcome> {
        self.current = None;
        Ok(Outcome::Answer(answer.map_err(|e| self.named(e, false))))
    }
}
