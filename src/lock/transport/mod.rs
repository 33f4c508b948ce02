//! The one way redlock talks to Redis: `run`, `status`, `list` and `release` alike, one server
//! or many, TCP, Unix sockets or TLS. The calling thread writes each request to every server
//! without waiting and reads the replies as they arrive (poll): a request reaches all servers
//! at once, and the release notices are read by the same thread's event loop, beside its
//! signals (`Notices`).
//!
//! Why not redis-rs's connections: its blocking connection cannot be polled, so several
//! servers needed a thread each, and a thread per server cost more than the requests
//! themselves on the benchmark's two cores (BENCHMARKS.md, B4); a thread per subscription cost
//! every waiter two wake-ups per release (B2). redis-rs still reads the URLs, packs the
//! commands and holds the replies (`redis::Value`); rustls, which it uses too, does TLS.
//!
//! Room for what comes: a connection (`conn.rs`) owns its server's address and the rules of
//! talking to it, so a redirect (Cluster's MOVED/ASK) or a primary named by Sentinel is a new
//! address for the same connection, followed where the reply is matched.

mod awaited;
mod conn;
mod errors;
mod exchange;
mod messages;
mod moves;
mod notices;
mod redirect;
mod request;
mod resolve;
mod resp;
mod sentinel;
mod server;
mod stream;
// Public for the pings (report/pings.rs), which trust the same certificates.
pub mod tls;

use std::time::{Duration, Instant};

use anyhow::Result;
use nix::poll::{PollFd, PollTimeout, poll};
use redis::Value;

use awaited::Outcome;
use conn::Conn;
pub use errors::{Class, WRONG_TYPE, class, failed, transient, unanswered};
pub use messages::KEY_GONE;
pub use notices::{Keyspace, Notices};
pub use request::{Request, Script, args};
pub use server::Server;
pub use server::resolve;

/// How long a request to a server may take, connecting (TCP, TLS, login) included; it bounds
/// the host name lookups too. Every command uses it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a release waits, after a majority has answered, for the servers that have not
/// answered yet: they are normally a moment behind, and a copy left there blocks others for a
/// TTL. A server not sent all of it yet (still connecting, a full socket) never runs it; nor
/// may a slow one that answers an earlier request of ours after we exit: our closed socket
/// answers with a reset, and Redis 6.2 then drops what it has not read yet (1 run in 9 lost
/// its release there when 8 quorum loops shared the host's 2 cores). A frozen one costs 200 ms.
const RELEASE_LINGER: Duration = Duration::from_millis(200);

/// One server's answer to a request: `None` while it has not answered.
pub type Answer<R> = Option<Result<R>>;

/// Whether a request waits for a server that is still busy with the previous one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wait {
    /// Acquire and extend: a server still busy simply does not answer this time.
    Never,
    /// Release, and the operators' reads: every server gets it, after whatever it is still
    /// doing, on the same connection, so that a server that wakes up runs them in order (a
    /// late acquire, then its release).
    Always,
}

/// Connections to a set of servers, opened at once, without waiting for them.
pub struct Pool {
    conns: Vec<Conn>,
}

/// A request on its way to every server (`Pool::send`), whose answers are still to be read.
pub struct Sent<'a> {
    wait: Wait,
    answers: Vec<Answer<Value>>,
    /// The servers the request went to, whose answers are awaited.
    owed: Vec<bool>,
    pool: &'a mut Pool,
}

impl Pool {
    pub fn open(servers: &[Server]) -> Pool {
        let mut conns: Vec<Conn> = servers.iter().map(Conn::new).collect();
        for conn in &mut conns {
            // A failure is met again, and reported, by the first request.
            let _ = conn.open();
        }
        Pool { conns }
    }

    /// Asks the sentinels of every primary they named whether they still name it, and drops
    /// the connections to those they no longer do (`Conn::follow_sentinels`): a holder follows
    /// a failover at its next extension, and finds there whether the new primary has its
    /// token, rather than extending on the old primary until it is turned into a replica.
    pub fn follow_failovers(&mut self, timeout: Duration) {
        for conn in &mut self.conns {
            conn.follow_sentinels(timeout);
        }
    }

    /// Whether another node answered on a connection since this was last asked: a primary the
    /// sentinels newly named (followed above, or after the old one stopped answering), or a
    /// cluster's new owner of the slot (a redirect after a failover).
    pub fn moved(&mut self) -> bool {
        // Every connection's flag is taken, not only up to the first that moved.
        let mut moved = false;
        for conn in &mut self.conns {
            moved |= conn.moved();
        }
        moved
    }

    /// Sends `request` to every server and collects the answers (`read` from the replies)
    /// until `done` says the outcome is known, or all have answered: `None` for a server that
    /// has not. Each is bounded by `timeout`.
    pub fn fan_out<R>(
        &mut self,
        wait: Wait,
        request: &Request,
        timeout: Duration,
        read: impl Fn(Value) -> Result<R>,
        done: impl Fn(&[Answer<R>]) -> bool,
    ) -> Vec<Answer<R>> {
        self.send(wait, request, timeout).collect(read, done)
    }

    /// Writes `request` to every server, without waiting for any answer: work done before
    /// `Sent::collect` costs no time while the replies travel.
    pub fn send(&mut self, wait: Wait, request: &Request, timeout: Duration) -> Sent<'_> {
        self.send_each(wait, timeout, |_| Some(request))
    }

    /// A request of its own to each server (`None`: not this one, whose answer stays `None`),
    /// every one waited for: the operators' commands.
    pub fn each<R>(
        &mut self,
        requests: &[Option<Request>],
        timeout: Duration,
        read: impl Fn(Value) -> Result<R>,
    ) -> Vec<Answer<R>> {
        self.send_each(Wait::Always, timeout, |i| requests[i].as_ref())
            .collect(read, |_| false)
    }

    fn send_each<'r>(
        &mut self,
        wait: Wait,
        timeout: Duration,
        request: impl Fn(usize) -> Option<&'r Request>,
    ) -> Sent<'_> {
        let now = Instant::now();
        let deadline = now + timeout;
        let mut answers: Vec<Answer<Value>> = self.conns.iter().map(|_| None).collect();
        let mut owed = vec![false; self.conns.len()];
        for (i, (conn, answer)) in self.conns.iter_mut().zip(answers.iter_mut()).enumerate() {
            let Some(request) = request(i) else {
                continue;
            };
            conn.settle();
            if let Some(current) = &conn.current {
                if wait == Wait::Never && now < current.deadline {
                    let skipped = errors::passing("the previous request is still unanswered");
                    *answer = Some(Err(conn.named(skipped, false)));
                    continue;
                }
                // A release, or a request after one that is past its time: it goes after what
                // the server is still doing.
                conn.abandon();
            }
            // Acquire and extend may be sent again, and go by hash (`Conn::send`).
            match conn.send(request, wait == Wait::Never, deadline) {
                Ok(()) => owed[i] = true,
                Err(e) => *answer = Some(Err(e)),
            }
        }
        Sent {
            wait,
            answers,
            owed,
            pool: self,
        }
    }
}

impl Sent<'_> {
    /// The answers, as `Pool::fan_out` collects them.
    pub fn collect<R>(
        self,
        read: impl Fn(Value) -> Result<R>,
        done: impl Fn(&[Answer<R>]) -> bool,
    ) -> Vec<Answer<R>> {
        let mut answers: Vec<Answer<R>> = (self.answers.into_iter())
            .map(|a| a.map(|r| r.and_then(&read)))
            .collect();
        gather(
            &mut self.pool.conns,
            &self.owed,
            self.wait,
            &mut answers,
            |answers, i, reply| answers[i] = Some(reply.and_then(&read)),
            |answers| done(answers),
        );
        answers
    }
}

/// Polls the connections that `owe` an answer until `done` says the answers in `state` settle
/// the outcome, or every one has answered or run out of time; a release then lingers
/// (`RELEASE_LINGER`) for those that have not answered yet.
fn gather<S>(
    conns: &mut [Conn],
    owe: &[bool],
    wait: Wait,
    state: &mut S,
    mut on_answer: impl FnMut(&mut S, usize, Result<Value>),
    done: impl Fn(&S) -> bool,
) {
    let mut owed = owe.to_vec();
    let mut linger_until: Option<Instant> = None;
    loop {
        let waiting: Vec<usize> = (0..conns.len())
            .filter(|&i| owed[i] && conns[i].current.is_some())
            .collect();
        if waiting.is_empty() {
            break;
        }
        let now = Instant::now();
        let mut until = waiting
            .iter()
            .filter_map(|&i| conns[i].current.as_ref().map(|c| c.deadline))
            .chain(waiting.iter().filter_map(|&i| conns[i].pass_over_at()))
            .min()
            .expect("waiting");
        if let Some(linger) = linger_until {
            if now >= linger {
                break;
            }
            until = until.min(linger);
        }
        let ready = wait_ready(conns, &waiting, until.saturating_duration_since(now));
        let now = Instant::now();
        for &i in &waiting {
            let conn = &mut conns[i];
            let outcome = if ready.contains(&i) {
                conn.on_ready()
            } else if conn.pass_over_at().is_some_and(|at| now >= at) {
                // A seed node that accepted and says nothing: the next one is asked.
                match conn.pass_over() {
                    Ok(()) => Outcome::Nothing,
                    Err(e) => {
                        conn.close();
                        Outcome::Answer(Err(e))
                    }
                }
            } else {
                Outcome::Nothing
            };
            let outcome = match outcome {
                Outcome::Nothing if conn.current.as_ref().is_some_and(|c| now >= c.deadline) => {
                    let timed_out = conn.named(errors::passing("timed out"), conn.opening());
                    conn.time_out();
                    Outcome::Answer(Err(timed_out))
                }
                other => other,
            };
            if let Outcome::Answer(reply) = outcome {
                on_answer(state, i, reply);
                owed[i] = false;
            }
        }
        if linger_until.is_none() && done(state) {
            if wait == Wait::Never {
                break;
            }
            // A release: the others are waited for a moment (`RELEASE_LINGER`).
            linger_until = Some(Instant::now() + RELEASE_LINGER);
        }
    }
}

/// The indexes among `waiting` whose connection can be read or written, within `timeout`.
fn wait_ready(conns: &[Conn], waiting: &[usize], timeout: Duration) -> Vec<usize> {
    let mut fds: Vec<PollFd> = Vec::new();
    let mut owners = Vec::new();
    for &i in waiting {
        if let Some(fd) = conns[i].poll_fd() {
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
