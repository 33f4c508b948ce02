//! What is said on a connection: a request, and the replies matched to it, with the rules of
//! the conversation written here only: a script by hash with a fall-back to sending it in full
//! (NOSCRIPT), WAIT for replicas after a write of the lease, a Redis Cluster's redirects
//! (MOVED, ASK) followed, and a stale reply never taken for a later request's. See `conn.rs` for
//! the connection itself, and `awaited.rs` for what it awaits.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use redis::Value;

use super::awaited::{Current, Expect, Outcome};
use super::conn::{Conn, Pumped};
use super::errors::{Class, describe_refusal, describe_reply, not_redis, passing};
use super::redirect::Redirect;
use super::request::{Body, Request};
use super::resp::{self, Reply};

/// How many replies a connection may owe before it is opened again (see `Conn::send`).
const MAX_OWED: usize = 32;

/// How much sooner than the request's own time-out the server's WAIT ends, at least.
const WAIT_MARGIN: Duration = Duration::from_millis(150);

/// How many times one request follows a cluster's redirects: a slot that moves on, or moves
/// back while a migration ends, takes two or three.
const MAX_REDIRECTS: u8 = 5;

impl Conn {
    /// Reads and drops what has come for an earlier request nobody waits for any more: no
    /// WAIT follows it (a fallback to EVAL still goes, see `Current::in_full`).
    pub(super) fn settle(&mut self) {
        if self.current.is_some() && self.progress(false).is_err() {
            self.close();
        }
    }

    /// Gives up on a request that ran out of time. The connection stays open: what follows
    /// must reach the server after this request. Except to a primary Sentinel named, or a
    /// cluster node a redirect named: one that stops answering may have been failed over, and
    /// the next request asks the sentinels, or the URL's nodes, again (the old primary, become
    /// a replica, cannot keep a lease).
    pub(super) fn time_out(&mut self) {
        if self.server.by_sentinel() || self.redirected() {
            self.close();
        } else {
            self.abandon();
        }
    }

    /// Gives up on the current request: its replies will be read and dropped.
    pub(super) fn abandon(&mut self) {
        for expect in self.expect.iter_mut() {
            // The login and ROLE still count: ROLE tells how many replicas must confirm the
            // next writes (dropped, the default WAIT would be lost with it).
            if !matches!(expect, Expect::Hello | Expect::Role) {
                *expect = Expect::Stale;
            }
        }
        self.current = None;
    }

    /// Queues `request` and writes what can be written now. An acquire or an extension
    /// (`resendable`: it may be sent twice, see `moves.rs`) goes by hash (EVALSHA), and in full
    /// when the server answers that it does not know the script (NOSCRIPT: new, restarted,
    /// flushed, or a replica promoted), which then keeps it for every client. An answer that
    /// comes after the caller stopped waiting is followed when the connection is next used
    /// (`settle`): until then that server lacks what the majority granted, as a slow one
    /// would. After a NOSCRIPT every script goes in full on the connection. A release (and
    /// the other requests every server gets) always goes in full: it is not waited for once a
    /// majority has answered, and the process may be gone before a NOSCRIPT could be followed,
    /// leaving that server's lock to its TTL. A connection that owes `MAX_OWED` replies (a
    /// server frozen for long, while extensions kept coming) is opened again first, dropping
    /// what it had not sent yet.
    pub(super) fn send(
        &mut self,
        request: &Request,
        resendable: bool,
        deadline: Instant,
    ) -> Result<()> {
        if self.expect.len() >= MAX_OWED {
            self.close();
        }
        if self.stream.is_none()
            && let Err(e) = self.open()
        {
            // A node a redirect named that is gone: the next request starts from the URL's.
            self.close();
            return Err(e);
        }
        let (by_hash, in_full, resend) = match &request.body {
            Body::Script {
                by_hash, in_full, ..
            } if self.by_hash && resendable => {
                self.out.extend_from_slice(by_hash);
                (true, Some(in_full.clone()), in_full.clone())
            }
            Body::Script { in_full, .. } => {
                self.out.extend_from_slice(in_full);
                (false, None, in_full.clone())
            }
            Body::Command(packed) => {
                self.out.extend_from_slice(packed);
                (false, None, packed.clone())
            }
        };
        self.expect.push_back(Expect::Request { by_hash });
        self.current = Some(Current {
            deadline,
            wrote: request.wrote,
            reply: None,
            in_full,
            resend,
            code: match &request.body {
                Body::Script { code, .. } => Some(*code),
                Body::Command(_) => None,
            },
            redirects: 0,
            resendable,
        });
        self.flush().map_err(|e| {
            self.close();
            self.named(e, false)
        })
    }

    /// After poll: finishes connecting, writes, reads, and answers if the reply is complete.
    pub(super) fn on_ready(&mut self) -> Outcome {
        match self.progress(true) {
            Ok(outcome) => outcome,
            Err(e) => {
                let e = self.named(e, self.opening());
                self.close();
                Outcome::Answer(Err(e))
            }
        }
    }

    /// Moves the connection on and matches what came; `waited`: someone waits for the current
    /// request's answer (a WAIT for replicas follows a write only then).
    fn progress(&mut self, waited: bool) -> Result<Outcome> {
        let Pumped::Open { closed } = self.pump()? else {
            return Ok(Outcome::Nothing);
        };
        // What came before the end is read first: a server that refuses a login answers why,
        // then hangs up.
        while let Some((reply, used)) = resp::parse(&self.input).map_err(|_| not_redis())? {
            self.input.drain(..used);
            if let Outcome::Answer(answer) = self.on_reply(reply, waited)? {
                if closed {
                    self.close();
                }
                return Ok(Outcome::Answer(answer));
            }
        }
        if closed {
            return Err(passing("the server closed the connection"));
        }
        Ok(Outcome::Nothing)
    }

    /// Matches one reply to what was expected. `Err` when the connection cannot go on.
    fn on_reply(&mut self, reply: Reply, waited: bool) -> Result<Outcome> {
        let Some(expect) = self.expect.pop_front() else {
            return Err(not_redis());
        };
        let replicas = self.required_replicas();
        match (expect, reply) {
            (Expect::Stale, _) => Ok(Outcome::Nothing),
            (Expect::Hello, Reply::Error(text)) => {
                // Logging in is part of connecting; the connection is of no use.
                let refused = self.named(describe_refusal(&text, None), true);
                self.close();
                Ok(Outcome::Answer(Err(refused)))
            }
            (Expect::Hello, Reply::Value(_)) => Ok(Outcome::Nothing),
            (Expect::Request { by_hash: true }, Reply::Error(text))
                if Class::of(&text) == Class::NoScript
                    && self.current.as_ref().is_some_and(|c| c.in_full.is_some()) =>
            {
                self.by_hash = false;
                let in_full = self.current.as_mut().and_then(|c| c.in_full.take());
                self.out.extend_from_slice(&in_full.expect("checked"));
                self.expect.push_back(Expect::Request { by_hash: false });
                self.flush()?;
                Ok(Outcome::Nothing)
            }
            (Expect::Request { .. }, Reply::Error(text))
                if self.current.is_some() && Redirect::parse(&text).is_some() =>
            {
                self.follow(Redirect::parse(&text), &text)
            }
            (Expect::Request { .. }, Reply::Error(text))
                if self.current.is_some()
                    && self.server.by_sentinel()
                    && Class::of(&text) == Class::ReadOnly =>
            {
                // The primary Sentinel named has become a replica: ask the sentinels again.
                self.follow(None, &text)
            }
            (Expect::Request { .. }, Reply::Error(text)) => {
                let code = self.current.as_ref().and_then(|c| c.code);
                self.answer(Err(describe_refusal(&text, code)))
            }
            (Expect::Asking, Reply::Value(_)) => Ok(Outcome::Nothing),
            (Expect::Role, reply) => Ok(self.on_role(reply)),
            (Expect::Asking, Reply::Error(text)) => {
                let refused = self.answer(Err(describe_reply(&text)));
                // The request's own reply still comes: it answers nobody now.
                self.abandon();
                refused
            }
            (Expect::Request { .. }, Reply::Value(value)) => match &mut self.current {
                Some(current) if waited && replicas > 0 && (current.wrote)(&value) => {
                    let left = current.deadline.saturating_duration_since(Instant::now());
                    // The server answers WAIT when its own time-out ends; ours ends a little
                    // later: a tenth of what is left, and at least 150 ms, as the server checks
                    // its blocked clients' time-outs ten times a second (hz 10).
                    let margin = (left / 10).max(WAIT_MARGIN);
                    let wait_ms = (left.saturating_sub(margin).as_millis() as u64).max(1);
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
            (Expect::Replicated, Reply::Value(Value::Int(acked))) => {
                let short = self.answer(Err(passing(format!(
                    "only {acked} of {replicas} replicas confirmed the write in time"
                ))));
                // A primary Sentinel named that lost its replicas may have been failed over:
                // the next request asks the sentinels again. By default, the next connection
                // asks ROLE again: a replica that went away is no longer waited for.
                if self.server.by_sentinel() || self.server.replicas.is_none() {
                    self.close();
                }
                short
            }
            (Expect::Replicated, Reply::Error(text)) => {
                self.answer(Err(describe_refusal(&text, None)))
            }
            (Expect::Replicated, Reply::Value(_)) => Err(not_redis()),
        }
    }

    /// ROLE's answer: how many replicas a primary has (for the default WAIT). A primary
    /// Sentinel named must say it is one; any other node may not be one, or refuse ROLE (an
    /// ACL without @admin): a cluster's replica node redirects the request, a standalone
    /// replica refuses it (READONLY); no WAIT then.
    fn on_role(&mut self, reply: Reply) -> Outcome {
        match reply {
            Reply::Value(Value::Array(role)) if is_primary(&role) => {
                self.role_replicas = connected_replicas(&role);
                Outcome::Nothing
            }
            // An ACL without ROLE would turn the default WAIT off unseen, on a primary that may
            // have replicas: refused, unless --wait-replicas says how many must confirm.
            Reply::Error(text)
                if Class::of(&text) == Class::NoPermission && self.server.replicas.is_none() =>
            {
                let refused = anyhow!(
                    "{:#}; or give --wait-replicas N (how many replicas must confirm each write \
                     of the lease, which ROLE tells by default)",
                    describe_refusal(&text, None)
                );
                let refused = self.named(refused, true);
                self.close();
                Outcome::Answer(Err(refused))
            }
            _ if !self.server.by_sentinel() => {
                self.role_replicas = 0;
                Outcome::Nothing
            }
            // Refused (a password the URL lacks, an ACL): no failover will change that.
            Reply::Error(text) => {
                let refused = self.named(describe_reply(&text), true);
                self.close();
                Outcome::Answer(Err(refused))
            }
            _ => {
                let demoted = passing(
                    "the node the sentinels named is not the primary (a failover under way?)",
                );
                let demoted = self.named(demoted, true);
                self.close();
                Outcome::Answer(Err(demoted))
            }
        }
    }

    /// Sends the current request again, in full, to the cluster node a redirect names: after
    /// MOVED that node owns the lock's slot, and every later request goes there too; after ASK
    /// the slot is being migrated to it, and the request goes after ASKING (a later request
    /// that the node does not own yet is sent back with MOVED, and follows it). Without a
    /// redirect, to wherever the connection goes when it opens again (Sentinel's primary).
    fn follow(&mut self, to: Option<Redirect>, text: &str) -> Result<Outcome> {
        let mut current = self.current.take().expect("a current request");
        if current.redirects >= MAX_REDIRECTS {
            self.current = Some(current);
            let looping = anyhow!("the cluster redirected the request {MAX_REDIRECTS} times");
            return self.answer(Err(looping.context(describe_reply(text))));
        }
        current.redirects += 1;
        self.move_to(to.as_ref())?;
        if to.is_some_and(|to| to.ask) {
            self.out
                .extend_from_slice(&redis::cmd("ASKING").get_packed_command());
            self.expect.push_back(Expect::Asking);
        }
        self.resend(current)?;
        Ok(Outcome::Nothing)
    }

    /// Sends `current` again on this (new) connection, in full: the node may not know the
    /// script; it is the request the connection answers from now on.
    pub(super) fn resend(&mut self, mut current: Current) -> Result<()> {
        current.in_full = None;
        self.out.extend_from_slice(&current.resend);
        self.expect.push_back(Expect::Request { by_hash: false });
        self.current = Some(current);
        self.flush()
    }

    /// Opens the connection again, to the cluster node `to` names, or (none) to wherever the
    /// server's address leads now (Sentinel's primary).
    pub(super) fn move_to(&mut self, to: Option<&Redirect>) -> Result<()> {
        let server = to.map(|to| self.server.at(&to.host, to.port));
        self.close();
        if let Some(server) = server {
            self.server = server;
        }
        self.open()
    }

    fn answer(&mut self, answer: Result<Value>) -> Result<Outcome> {
        self.current = None;
        if answer.is_ok() {
            self.answered();
        }
        Ok(Outcome::Answer(answer.map_err(|e| self.named(e, false))))
    }
}

/// Whether a ROLE reply says `master`.
fn is_primary(role: &[Value]) -> bool {
    role.first() == Some(&Value::BulkString(b"master".to_vec()))
}

/// How many replicas a primary's ROLE reply lists, `master OFFSET [[HOST PORT OFFSET]...]`:
/// those connected now.
fn connected_replicas(role: &[Value]) -> u32 {
    match role.get(2) {
        Some(Value::Array(replicas)) => replicas.len() as u32,
        _ => 0,
    }
}
