//! One connection to one server: connecting to each of the host's addresses in turn (in TLS
//! when the URL says so), logging in (AUTH, SELECT) ahead of the first request, moving bytes,
//! and naming the server in an error. What is said on it is in `exchange.rs`.
//!
//! A request left unanswered (a majority had answered, or its time ran out) stays on its
//! connection: its reply is read and dropped later, matched by a queue of what the connection
//! still owes, and never taken for the answer to a later request. A connection is closed only
//! when it fails.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt};
use redis::Value;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use super::REQUEST_TIMEOUT;
use super::awaited::{Current, Expect};
use super::errors::{self, describe_io, describe_reply, not_redis};
use super::resolve::Lookup;
use super::resp::{self, Reply};
use super::server::{Place, Server};
use super::stream::{Stream, connect_unix, start_connect};
use super::tls::{self, Tls};

/// How long a subscription may wait for the sentinels to name the primary: it is made on the
/// main thread, which stops the command in time; one that fails is made again later.
const NOTICE_SENTINEL_BUDGET: Duration = Duration::from_millis(300);

pub(super) struct Conn {
    pub(super) server: Server,
    /// The server as the URL names it: where the connection goes again after it fails, so
    /// that a cluster node a redirect named, and that died or froze, is not asked forever (the
    /// seeds then say where the slot went).
    pub(super) home: Server,
    /// When the connection was opened, until the server first sent something: a seed that
    /// stays silent past `SEED_PATIENCE` is passed over.
    pub(super) silent_since: Option<Instant>,
    /// How many seeds this connection passed over since a node last answered.
    pub(super) passed_over: usize,
    /// Whether ROLE is asked when the connection opens: for the lease's requests (how many
    /// replicas confirm a write, see `Server::replicas`), and of a primary Sentinel named.
    pub(super) asks_role: bool,
    /// How many replicas the primary had connected, as its ROLE said.
    pub(super) role_replicas: u32,
    /// How many replicas of the primary the sentinels knew to be up, when they named it.
    pub(super) sentinel_replicas: u32,
    /// How long asking the sentinels for the primary may take when the connection opens: a
    /// request's time-out, or on the main thread (subscriptions) a moment, to be tried again.
    pub(super) sentinel_budget: Duration,
    /// The primary the sentinels named when the connection opened.
    pub(super) named_primary: Option<(String, u16)>,
    /// The node that answered last (the primary the sentinels named, a cluster's node), kept
    /// across connections: another one answering is a failover, or a slot that moved.
    pub(super) last_node: Option<(String, u16)>,
    /// Another node answered than the one before, not yet told (`moved`).
    pub(super) moved: bool,
    /// The host's addresses not tried yet, while connecting.
    pub(super) addresses: VecDeque<SocketAddr>,
    /// With TLS: the settings and the name to check, for when the TCP connection is made.
    pub(super) tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    pub(super) stream: Option<Stream>,
    /// Still connecting (TCP): writable means connected (or failed).
    pub(super) connecting: bool,
    /// Whether scripts go by hash: until the server answers NOSCRIPT (new, restarted or
    /// flushed), after which every script goes in full on this connection, a release too,
    /// whose answer may not be waited for (see `Conn::send`).
    pub(super) by_hash: bool,
    pub(super) out: Vec<u8>,
    pub(super) input: Vec<u8>,
    pub(super) expect: VecDeque<Expect>,
    pub(super) current: Option<Current>,
}

/// Where a connection stands after `Conn::pump`.
pub(super) enum Pumped {
    /// Still being made.
    Connecting,
    /// Open; `closed` once the server has hung up (what it sent before is in `input`).
    Open { closed: bool },
}

impl Conn {
    /// A connection to `server`, not opened yet.
    pub(super) fn new(server: &Server) -> Conn {
        Conn {
            server: server.clone(),
            home: server.clone(),
            silent_since: None,
            passed_over: 0,
            asks_role: true,
            role_replicas: 0,
            sentinel_replicas: 0,
            sentinel_budget: REQUEST_TIMEOUT,
            named_primary: None,
            last_node: None,
            moved: false,
            addresses: VecDeque::new(),
            tls: None,
            stream: None,
            connecting: false,
            by_hash: true,
            out: Vec::new(),
            input: Vec::new(),
            expect: VecDeque::new(),
            current: None,
        }
    }

    /// A connection for a subscription: no replicas to count (ROLE only of a primary Sentinel
    /// named, which must be one).
    pub(super) fn for_notices(server: &Server) -> Conn {
        Conn {
            asks_role: false,
            sentinel_budget: NOTICE_SENTINEL_BUDGET,
            ..Conn::new(server)
        }
    }

    /// Starts connecting, without waiting for the connection to be made. A primary named by
    /// Sentinel is asked for first (see `sentinel.rs`), and checked once reached (ROLE).
    pub(super) fn open(&mut self) -> Result<()> {
        let stream = match &self.server.place {
            Place::Unix(path) => connect_unix(path).map_err(|e| self.cannot_connect(&e))?,
            Place::Tcp {
                host,
                port,
                lookup,
                tls,
            } => {
                let (host, port, lookup, tls) = (host.clone(), *port, lookup.clone(), *tls);
                let seeds = self.server.seeds.clone();
                self.connect_tcp(&host, port, &lookup, &seeds, tls)?
            }
            Place::Sentinel(sentinels) => {
                let sentinels = sentinels.clone();
                let deadline = Instant::now() + self.sentinel_budget;
                let primary = sentinels
                    .primary(deadline)
                    .map_err(|e| self.named(e, true))?;
                self.named_primary = Some((primary.host.clone(), primary.port));
                self.sentinel_replicas = primary.replicas;
                self.connect_tcp(
                    &primary.host,
                    primary.port,
                    &Lookup::default(),
                    &[],
                    sentinels.tls,
                )?
            }
        };
        self.stream = Some(stream);
        self.silent_since = Some(Instant::now());
        for hello in &self.server.hello {
            self.out.extend_from_slice(hello);
            self.expect.push_back(Expect::Hello);
        }
        if self.server.by_sentinel() || (self.asks_role && self.server.replicas.is_none()) {
            self.out
                .extend_from_slice(&redis::cmd("ROLE").get_packed_command());
            self.expect.push_back(Expect::Role);
        }
        Ok(())
    }

    /// Starts connecting to `host:port`, over TLS if `tls` says so; the `seeds` (other nodes of
    /// a cluster) are tried after its own addresses.
    fn connect_tcp(
        &mut self,
        host: &str,
        port: u16,
        lookup: &Lookup,
        seeds: &[(String, u16)],
        tls: Option<Tls>,
    ) -> Result<Stream> {
        self.tls = match tls {
            Some(tls) => Some((
                tls::config(tls.insecure).map_err(|e| self.named(e, true))?,
                tls::server_name(host).map_err(|e| self.named(e, true))?,
            )),
            None => None,
        };
        let addresses = lookup.addresses(host, port);
        self.addresses = addresses.map_err(|e| self.named(e, true))?.into();
        for (seed, port) in seeds {
            // One that cannot be looked up is left out: the others may do.
            self.addresses
                .extend(Lookup::default().addresses(seed, *port).unwrap_or_default());
        }
        let no_address = io::Error::new(io::ErrorKind::AddrNotAvailable, "the host has no address");
        self.connect_next(no_address)
            .map_err(|e| self.cannot_connect(&e))
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
        // Its silence counts from now: the connection took its own round trip.
        if self.silent_since.is_some() {
            self.silent_since = Some(Instant::now());
        }
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
        errors::named(error, &self.server.address, connecting)
    }

    /// Closes the connection; the next one goes to the server the URL names (see `home`).
    pub(super) fn close(&mut self) {
        if self.server.address != self.home.address {
            self.server = self.home.clone();
        }
        self.silent_since = None;
        self.named_primary = None;
        self.stream = None;
        self.connecting = false;
        self.out.clear();
        self.input.clear();
        self.expect.clear();
        self.current = None;
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

    /// Whether the connection is still being made, its TLS handshake included: an error then
    /// is a failure to connect.
    pub(super) fn opening(&self) -> bool {
        self.connecting || self.stream.as_ref().is_some_and(Stream::handshaking)
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
            if !matches!(self.expect.front(), Some(Expect::Hello | Expect::Role)) {
                return Ok(Some(reply));
            }
            let expected = self.expect.pop_front();
            match reply {
                // ROLE refused (an ACL without @admin): the replicas are not counted.
                Reply::Error(_) if matches!(expected, Some(Expect::Role)) => {}
                Reply::Error(text) => return Err(describe_reply(&text)),
                Reply::Value(Value::Array(role))
                    if matches!(expected, Some(Expect::Role))
                        && self.server.by_sentinel()
                        && role.first() != Some(&Value::BulkString(b"master".to_vec())) =>
                {
                    return Err(errors::passing(
                        "the node the sentinels named is not the primary",
                    ));
                }
                Reply::Value(_) => {}
            }
        }
        Ok(None)
    }

    /// How many replicas must confirm each write of the lease: `--wait-replicas`, or by default
    /// one where the primary has a replica connected, and every replica the sentinels know to
    /// be up for a primary they named (see `sentinel::Primary`).
    pub(super) fn required_replicas(&self) -> u32 {
        let connected = self.role_replicas.min(1);
        match self.server.replicas {
            Some(replicas) => replicas,
            None if self.server.by_sentinel() => connected.max(self.sentinel_replicas),
            None => connected,
        }
    }

    /// What to poll the connection for: reading, and writing while connecting or while
    /// something is queued. `None` when it is closed.
    pub(super) fn poll_fd(&self) -> Option<PollFd<'_>> {
        let stream = self.stream.as_ref()?;
        let mut flags = PollFlags::POLLIN;
        // Not while a TLS handshake waits for the server: the socket is writable, and nothing
        // can be written, so that would spin.
        if self.connecting || stream.wants_write(!self.out.is_empty()) {
            flags |= PollFlags::POLLOUT;
        }
        Some(PollFd::new(stream.fd(), flags))
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
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    self.silent_since = None;
                    self.passed_over = 0;
                }
                // A TLS server that hangs up without saying so (no close_notify): what it sent
                // before is read all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    closed = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(describe_io(&e)),
            }
        }
        // A TLS handshake finished by this read lets what is queued go now.
        self.flush()?;
        Ok(Pumped::Open { closed })
    }
}
