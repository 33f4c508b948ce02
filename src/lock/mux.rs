//! With several servers over plain TCP or Unix sockets, the calling thread talks to all of them
//! at once: each request is written to every server without waiting, and the replies are read
//! as they arrive (poll). A thread per server cost more than the requests themselves on the
//! benchmark's two cores (BENCHMARKS.md); TLS servers still get one each (`worker.rs`).
//!
//! A request left unanswered (a majority had answered, or its time ran out) stays on its
//! connection: its reply is read and dropped later, matched by a queue of what each connection
//! still owes, and never taken for the answer to a later request. Acquires and extensions skip
//! a server whose last request is still within its time; otherwise the next request goes after
//! it on the same connection, so that a server that wakes up runs them in order (a late
//! acquire, then its release). A connection is closed only when it fails.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage, sockopt};
use redis::{ConnectionAddr, Value};

use super::resolve::Lookup;
use super::resp::{self, Reply};
use super::server::{Call, NOT_REDIS, Server, describe_io, describe_reply};
use super::{Answer, RELEASE_LINGER, Wait};

/// How many replies a connection may owe before it is opened again (see `Conn::send`).
const MAX_OWED: usize = 32;

/// Where a server is, and how to log in.
struct Target {
    address: String,
    place: Place,
    /// AUTH and SELECT, sent ahead of the first request on each connection.
    hello: Vec<Vec<u8>>,
    replicas: u32,
}

enum Place {
    /// A host and port, and the host's addresses, looked up once for every copy of the server
    /// (`resolve.rs`).
    Tcp(String, u16, Lookup),
    Unix(PathBuf),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
}

/// A reply still to come on a connection, in the order they will come.
enum Expect {
    /// The answer to AUTH or SELECT.
    Hello,
    /// The answer to a request nobody waits for any more.
    Stale,
    /// The script, sent by hash (EVALSHA) or in full (EVAL).
    Script { by_hash: bool },
    /// WAIT, after a script that wrote the lease.
    Replicated,
}

/// The request a connection is answering.
struct Current {
    deadline: Instant,
    /// The script's reply, while WAIT is awaited.
    reply: Option<Value>,
    /// The request in full (EVAL), for a server that answers NOSCRIPT to it by hash: sent
    /// even when nobody waits for the answer any more, so that a server that answers late
    /// still ends up with the lock the others granted.
    in_full: Option<Vec<u8>>,
}

pub(super) struct Conn {
    target: Target,
    /// The host's addresses not tried yet, while connecting.
    addresses: VecDeque<SocketAddr>,
    stream: Option<Stream>,
    /// Still connecting: writable means connected (or failed).
    connecting: bool,
    /// Nothing has been sent on this connection yet.
    fresh: bool,
    out: Vec<u8>,
    input: Vec<u8>,
    expect: VecDeque<Expect>,
    current: Option<Current>,
}

/// Where a connection stands after `Conn::pump`.
pub(super) enum Pumped {
    /// Still being made.
    Connecting,
    /// Open; `closed` once the server has hung up (what it sent before is in `input`).
    Open { closed: bool },
}

/// What a connection has to say after some I/O.
enum Outcome {
    Nothing,
    Answer(Result<Value>),
}

pub(super) struct Mux {
    conns: Vec<Conn>,
}

impl Mux {
    /// A multiplexer for these servers, if all of them can be: none over TLS. Connections are
    /// opened at once, without waiting for them.
    pub(super) fn new(servers: &[Server]) -> Option<Mux> {
        let mut conns = servers.iter().map(Conn::new).collect::<Option<Vec<_>>>()?;
        for conn in &mut conns {
            // A failure is met again, and reported, by the first request.
            let _ = conn.open();
        }
        Some(Mux { conns })
    }

    /// Sends `call` to every server and collects the answers, as `Lock::fan_out` does:
    /// `read` turns a script's reply into an answer, `done` says when enough are in.
    pub(super) fn fan_out<R>(
        &mut self,
        wait: Wait,
        call: &Call,
        timeout: Duration,
        read: &dyn Fn(Value) -> Result<R>,
        done: &dyn Fn(&[Answer<R>]) -> bool,
        in_flight: &mut dyn FnMut(),
    ) -> Vec<Answer<R>> {
        let now = Instant::now();
        let deadline = now + timeout;
        let mut answers: Vec<Answer<R>> = self.conns.iter().map(|_| None).collect();
        for (conn, answer) in self.conns.iter_mut().zip(answers.iter_mut()) {
            conn.settle();
            if let Some(current) = &conn.current {
                if wait == Wait::Never && now < current.deadline {
                    let skipped = anyhow!("the previous request is still unanswered");
                    *answer = Some(Err(conn.named(skipped, false)));
                    continue;
                }
                // A release, or a request after one that is past its time: it goes after what
                // the server is still doing, on the same connection, so that the server runs
                // them in order (a late acquire, then its release).
                conn.abandon();
            }
            // A release is sent in full: it is not always waited for (below), so it must not
            // need a second try when the server does not know the script yet (NOSCRIPT).
            if let Err(e) = conn.send(call, wait == Wait::Never, deadline) {
                *answer = Some(Err(e));
            }
        }
        in_flight();
        let mut linger_until: Option<Instant> = None;
        loop {
            // Lingering, only for servers that have not been sent all of the release yet.
            let waiting: Vec<usize> = (0..self.conns.len())
                .filter(|&i| answers[i].is_none() && self.conns[i].current.is_some())
                .filter(|&i| linger_until.is_none() || self.conns[i].unsent())
                .collect();
            if waiting.is_empty() {
                break;
            }
            let now = Instant::now();
            let mut until = waiting
                .iter()
                .map(|&i| self.conns[i].current.as_ref().expect("waiting").deadline)
                .min()
                .expect("waiting");
            if let Some(linger) = linger_until {
                if now >= linger {
                    break;
                }
                until = until.min(linger);
            }
            let ready = self.wait_ready(&waiting, until.saturating_duration_since(now));
            let now = Instant::now();
            for &i in &waiting {
                let conn = &mut self.conns[i];
                let outcome = if ready.contains(&i) {
                    conn.on_ready(call)
                } else {
                    Outcome::Nothing
                };
                let outcome = match outcome {
                    Outcome::Nothing
                        if conn.current.as_ref().is_some_and(|c| now >= c.deadline) =>
                    {
                        let timed_out = conn.named(anyhow!("timed out"), conn.connecting);
                        // Not closed: what follows must reach the server after this request.
                        conn.abandon();
                        Outcome::Answer(Err(timed_out))
                    }
                    other => other,
                };
                if let Outcome::Answer(reply) = outcome {
                    answers[i] = Some(reply.and_then(read));
                }
            }
            if linger_until.is_none() && done(&answers) {
                if wait == Wait::Never {
                    break;
                }
                // A release: a server that has it all will run it, answered or not (it reads
                // what came before our connection closes, even after a reset), but one still
                // being connected to or written to would be left with a lock that blocks
                // others for a TTL: those are waited for a moment; a frozen one is not.
                linger_until = Some(Instant::now() + RELEASE_LINGER);
            }
        }
        answers
    }

    /// The indexes among `waiting` whose connection can be read or written, within `timeout`.
    fn wait_ready(&self, waiting: &[usize], timeout: Duration) -> Vec<usize> {
        let mut fds = Vec::new();
        let mut owners = Vec::new();
        for &i in waiting {
            if let Some(fd) = self.conns[i].poll_fd() {
                fds.push(fd);
                owners.push(i);
            }
        }
        let millis = crate::clock::poll_millis(timeout);
        match poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) => fds
                .iter()
                .zip(owners)
                .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, i)| i)
                .collect(),
            // EINTR and the like: look again.
            Err(_) => Vec::new(),
        }
    }
}

impl Conn {
    /// A connection to `server`, not opened yet; `None` for a TLS server.
    pub(super) fn new(server: &Server) -> Option<Conn> {
        let info = server.info();
        let place = match (info.addr(), server.lookup()) {
            (ConnectionAddr::Tcp(..), Some((host, port, lookup))) => {
                Place::Tcp(host.to_string(), port, lookup.clone())
            }
            (ConnectionAddr::Unix(path), _) => Place::Unix(path.clone()),
            _ => return None,
        };
        let settings = info.redis_settings();
        let mut hello = Vec::new();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            hello.push(auth.arg(password).get_packed_command());
        }
        if settings.db() != 0 {
            hello.push(redis::cmd("SELECT").arg(settings.db()).get_packed_command());
        }
        Some(Conn {
            target: Target {
                address: server.address.clone(),
                place,
                hello,
                replicas: server.replicas,
            },
            addresses: VecDeque::new(),
            stream: None,
            connecting: false,
            fresh: true,
            out: Vec::new(),
            input: Vec::new(),
            expect: VecDeque::new(),
            current: None,
        })
    }

    /// Starts connecting, without waiting for the connection to be made.
    pub(super) fn open(&mut self) -> Result<()> {
        let stream = match &self.target.place {
            Place::Unix(path) => {
                Stream::Unix(connect_unix(path).map_err(|e| self.cannot_connect(&e))?)
            }
            Place::Tcp(host, port, lookup) => {
                let addresses = lookup.addresses(host, *port);
                self.addresses = addresses.map_err(|e| self.named(e, true))?.into();
                let no_address =
                    io::Error::new(io::ErrorKind::AddrNotAvailable, "the host has no address");
                self.connect_next(no_address)
                    .map_err(|e| self.cannot_connect(&e))?
            }
        };
        self.stream = Some(stream);
        for hello in &self.target.hello {
            self.out.extend_from_slice(hello);
            self.expect.push_back(Expect::Hello);
        }
        Ok(())
    }

    /// Starts connecting to the next of the host's addresses, as redis-rs tries them in turn:
    /// `localhost` may name ::1 first, where the server may not listen. `Err`: the last error.
    fn connect_next(&mut self, mut last: io::Error) -> io::Result<Stream> {
        while let Some(address) = self.addresses.pop_front() {
            match start_connect(address) {
                Ok((stream, pending)) => {
                    self.connecting = pending;
                    return Ok(Stream::Tcp(stream));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn cannot_connect(&self, error: &io::Error) -> anyhow::Error {
        self.named(describe_io(error), true)
    }

    /// `error`, naming the server; while connecting or logging in, as a failure to connect,
    /// as redis-rs reports it on the single-server path.
    fn named(&self, error: anyhow::Error, connecting: bool) -> anyhow::Error {
        let what = if connecting {
            "cannot connect to Redis at"
        } else {
            "Redis at"
        };
        error.context(format!("{what} {}", self.target.address))
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
    fn settle(&mut self) {
        if self.current.is_some() && self.progress(None).is_err() {
            self.close();
        }
    }

    /// Gives up on the current request: its replies will be read and dropped.
    fn abandon(&mut self) {
        for expect in self.expect.iter_mut() {
            if !matches!(expect, Expect::Hello) {
                *expect = Expect::Stale;
            }
        }
        self.current = None;
    }

    /// Queues `call`, by hash or in full, and writes what can be written now. A connection that
    /// owes `MAX_OWED` replies (a server frozen for long, while extensions kept coming) is
    /// opened again first, dropping what it had not sent yet. The first request on a
    /// connection goes in full: a server may have restarted and forgotten the scripts, and its
    /// NOSCRIPT answer could come after the caller stopped waiting for it, leaving it without
    /// the lock the others granted until the connection is used again.
    fn send(&mut self, call: &Call, by_hash: bool, deadline: Instant) -> Result<()> {
        if self.expect.len() >= MAX_OWED {
            self.close();
        }
        if self.stream.is_none() {
            self.open()?;
        }
        let by_hash = by_hash && !std::mem::take(&mut self.fresh);
        self.out.extend_from_slice(&call.packed(by_hash));
        self.expect.push_back(Expect::Script { by_hash });
        self.current = Some(Current {
            deadline,
            reply: None,
            in_full: by_hash.then(|| call.packed(false)),
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
    fn unsent(&self) -> bool {
        self.connecting || !self.out.is_empty()
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
    fn on_ready(&mut self, call: &Call) -> Outcome {
        match self.progress(Some(call)) {
            Ok(outcome) => outcome,
            Err(e) => {
                let e = self.named(e, self.connecting);
                self.close();
                Outcome::Answer(Err(e))
            }
        }
    }

    fn progress(&mut self, call: Option<&Call>) -> Result<Outcome> {
        let Pumped::Open { closed } = self.pump()? else {
            return Ok(Outcome::Nothing);
        };
        // What came before the end is read first: a server that refuses a login answers why,
        // then hangs up.
        while let Some((reply, used)) = resp::parse(&self.input).map_err(|_| not_redis())? {
            self.input.drain(..used);
            if let Outcome::Answer(answer) = self.on_reply(reply, call)? {
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
            match socket::getsockopt(&stream.fd(), sockopt::SocketError) {
                Ok(0) => self.connecting = false,
                Ok(errno) => {
                    // Nothing was written yet: what is queued goes to the next address.
                    let error = io::Error::from_raw_os_error(errno);
                    let next = self.connect_next(error).map_err(|e| describe_io(&e))?;
                    self.stream = Some(next);
                    if self.connecting {
                        return Ok(Pumped::Connecting);
                    }
                }
                Err(e) => return Err(describe_io(&e.into())),
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
        Ok(Pumped::Open { closed })
    }

    /// Matches one reply to what was expected. `Err` when the connection cannot go on.
    fn on_reply(&mut self, reply: Reply, call: Option<&Call>) -> Result<Outcome> {
        let Some(expect) = self.expect.pop_front() else {
            return Err(not_redis());
        };
        match (expect, reply) {
            (Expect::Stale, _) => Ok(Outcome::Nothing),
            (Expect::Hello, Reply::Error(text)) => {
                // Logging in is part of connecting; the connection is of no use.
                let refused = self.named(describe_reply(&text), true);
                self.close();
                Ok(Outcome::Answer(Err(refused)))
            }
            (Expect::Hello, Reply::Value(_)) => Ok(Outcome::Nothing),
            (Expect::Script { by_hash: true }, Reply::Error(text))
                if text.starts_with("NOSCRIPT")
                    && self.current.as_ref().is_some_and(|c| c.in_full.is_some()) =>
            {
                let in_full = self.current.as_mut().and_then(|c| c.in_full.take());
                self.out.extend_from_slice(&in_full.expect("checked"));
                self.expect.push_back(Expect::Script { by_hash: false });
                self.flush()?;
                Ok(Outcome::Nothing)
            }
            (Expect::Script { .. }, Reply::Error(text)) => self.answer(Err(describe_reply(&text))),
            (Expect::Script { .. }, Reply::Value(value)) => match call {
                Some(call) if self.target.replicas > 0 && (call.wrote)(&value) => {
                    let left = self.current.as_ref().map_or(Duration::ZERO, |c| {
                        c.deadline.saturating_duration_since(Instant::now())
                    });
                    // The server answers WAIT when its own time-out ends; ours ends a little later.
                    let wait_ms = (left.as_millis() as u64 * 9 / 10).max(1);
                    self.out.extend_from_slice(
                        &redis::cmd("WAIT")
                            .arg(self.target.replicas)
                            .arg(wait_ms)
                            .get_packed_command(),
                    );
                    self.expect.push_back(Expect::Replicated);
                    if let Some(current) = &mut self.current {
                        current.reply = Some(value);
                    }
                    self.flush()?;
                    Ok(Outcome::Nothing)
                }
                _ => self.answer(Ok(value)),
            },
            (Expect::Replicated, Reply::Value(Value::Int(acked)))
                if acked >= i64::from(self.target.replicas) =>
            {
                let reply = self.current.as_mut().and_then(|c| c.reply.take());
                self.answer(reply.ok_or_else(not_redis))
            }
            (Expect::Replicated, Reply::Value(Value::Int(acked))) => self.answer(Err(anyhow!(
                "only {acked} of {} replicas confirmed the write in time",
                self.target.replicas
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

/// Connects to a Unix socket without waiting: a server that does not accept and whose queue
/// is full refuses at once (EAGAIN) instead of blocking the thread that talks to the others.
fn connect_unix(path: &std::path::Path) -> io::Result<UnixStream> {
    let fd = stream_socket(AddressFamily::Unix)?;
    match socket::connect(fd.as_raw_fd(), &socket::UnixAddr::new(path)?) {
        Ok(()) => Ok(UnixStream::from(fd)),
        Err(Errno::EAGAIN) => Err(io::Error::other(
            "the server accepts no more connections (its queue is full)",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Opens a TCP connection without waiting for it: the stream, and whether it is still being
/// made (writable once it is).
fn start_connect(address: SocketAddr) -> io::Result<(TcpStream, bool)> {
    let fd = stream_socket(match address {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    })?;
    let pending = match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(address)) {
        Ok(()) => false,
        Err(Errno::EINPROGRESS) => true,
        Err(e) => return Err(e.into()),
    };
    let stream = TcpStream::from(fd);
    stream.set_nodelay(true)?;
    Ok((stream, pending))
}

/// A stream socket that never blocks, and is not inherited by the command.
fn stream_socket(family: AddressFamily) -> io::Result<OwnedFd> {
    Ok(socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

fn not_redis() -> anyhow::Error {
    anyhow!("{NOT_REDIS}")
}
