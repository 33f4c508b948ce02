//! Redis Sentinel: a URL names a primary by its service, and the sentinels say where it is.
//! A connection asks them each time it opens (`Conn::open`), so after a failover the next
//! connection reaches the new primary, and it checks (ROLE) that the node it reached is one.
//!
//! The question is asked over a blocking socket, each sentinel in turn, bounded by the
//! request's time-out: it is one round trip, made once per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use redis::Value;
use rustls::StreamOwned;

use super::errors::{describe_io, describe_reply, passing, transient};
use super::resolve::Lookup;
use super::resp::{self, Reply};
use super::tls::{self, Tls};

/// The grammar, quoted in usage errors.
pub const GRAMMAR: &str = "redis+sentinel://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB] \
     (rediss+sentinel:// for TLS; ?sentinel_username=U&sentinel_password=P when the sentinels' \
     own credentials differ)";

/// Where a sentinel listens unless the URL says otherwise.
const SENTINEL_PORT: u16 = 26379;

/// How long one sentinel may take to answer before the next is asked: one that accepts the
/// connection and says nothing (frozen, cut off) must not cost the others their turn.
const SENTINEL_PATIENCE: Duration = Duration::from_millis(300);

/// The sentinels that watch one primary.
#[derive(Clone)]
pub(super) struct Sentinels {
    nodes: Vec<(String, u16)>,
    pub service: String,
    /// AUTH for the sentinels, when they have credentials of their own.
    auth: Option<Vec<u8>>,
    pub tls: Option<Tls>,
    /// The sentinel that answered last, asked first next time (shared by the copies): one
    /// that stopped answering is not waited for on every connection.
    answered: Arc<AtomicUsize>,
}

/// The primary as a sentinel names it, and how many of its replicas that sentinel knows to be
/// up: each write of the lease waits for all of them by default (see `Conn::required_replicas`).
/// A replica the sentinels are about to promote no longer follows the old primary, while they
/// still name it for a second or so: a write confirmed by another replica only would be lost,
/// and its fencing token handed out again. Waiting for every replica they know makes the old
/// primary unable to confirm anything in that window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Primary {
    pub host: String,
    pub port: u16,
    pub replicas: u32,
}

/// A sentinel URL, read.
pub(super) struct SentinelUrl {
    pub sentinels: Sentinels,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: i64,
}

impl SentinelUrl {
    /// Reads `redis+sentinel://...` (`tls`: `rediss+sentinel://`), after its scheme.
    pub fn parse(rest: &str, tls: Option<Tls>) -> Result<SentinelUrl> {
        let invalid = || anyhow!("invalid Redis Sentinel URL: expected {GRAMMAR}");
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/').ok_or_else(invalid)?;
        let mut nodes = Vec::new();
        for host in hosts.split(',') {
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) if !name.ends_with(':') => {
                    (name, port.parse().map_err(|_| invalid())?)
                }
                _ => (host, SENTINEL_PORT),
            };
            let name = name.trim_start_matches('[').trim_end_matches(']');
            if name.is_empty() {
                return Err(invalid());
            }
            nodes.push((name.to_string(), port));
        }
        let mut path = path.split('/');
        let service = decode(path.next().unwrap_or_default())?;
        if service.is_empty() {
            return Err(invalid());
        }
        let db = match path.next() {
            None | Some("") => 0,
            Some(db) => db.parse().map_err(|_| invalid())?,
        };
        if path.next().is_some() {
            return Err(invalid());
        }
        let (user, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let nonempty = |s: String| (!s.is_empty()).then_some(s);
                (nonempty(decode(user)?), nonempty(decode(password)?))
            }
        };
        let (mut sentinel_user, mut sentinel_password) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sentinel_username", v)) => sentinel_user = Some(decode(v)?),
                Some(("sentinel_password", v)) => sentinel_password = Some(decode(v)?),
                _ => bail!(
                    "invalid Redis Sentinel URL: unknown option '{pair}' (expected {GRAMMAR})"
                ),
            }
        }
        let auth = sentinel_password.map(|password| {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &sentinel_user {
                auth.arg(user);
            }
            auth.arg(password).get_packed_command()
        });
        Ok(SentinelUrl {
            sentinels: Sentinels {
                nodes,
                service,
                auth,
                tls,
                answered: Arc::default(),
            },
            user,
            password,
            db,
        })
    }
}

impl Sentinels {
    /// For messages: `SERVICE (sentinels h1:26379,h2:26379)`.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        let tls = if self.tls.is_some() { ", TLS" } else { "" };
        format!("{} (sentinels {}{tls})", self.service, nodes.join(","))
    }

    /// Where the primary is, as the first sentinel that answers says, before `deadline`; each
    /// is given `SENTINEL_PATIENCE` at most.
    pub fn primary(&self, deadline: Instant) -> Result<Primary> {
        let mut errors = Vec::new();
        // Sentinels that cannot be reached, or are electing a primary, may answer in a moment.
        let mut passes = true;
        let first = self.answered.load(Ordering::Relaxed);
        let order = (0..self.nodes.len()).map(|i| (first + i) % self.nodes.len());
        for index in order {
            let (host, port) = &self.nodes[index];
            let patience = deadline.min(Instant::now() + SENTINEL_PATIENCE);
            match self.ask(host, *port, patience) {
                Ok(primary) => {
                    self.answered.store(index, Ordering::Relaxed);
                    return Ok(primary);
                }
                Err(e) => {
                    passes &= transient(&e);
                    errors.push(format!("sentinel {host}:{port}: {e:#}"));
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let message = format!(
            "no sentinel could say where '{}' is: {}",
            self.service,
            errors.join("; ")
        );
        Err(if passes {
            passing(message)
        } else {
            anyhow!(message)
        })
    }

    fn ask(&self, host: &str, port: u16, deadline: Instant) -> Result<Primary> {
        let left = || {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or_else(|| passing("timed out"))
        };
        let addresses = Lookup::default().addresses(host, port)?;
        let address = addresses
            .first()
            .ok_or_else(|| anyhow!("it has no address"))?;
        let tcp = TcpStream::connect_timeout(address, left()?).map_err(|e| describe_io(&e))?;
        tcp.set_read_timeout(Some(left()?))?;
        tcp.set_write_timeout(Some(left()?))?;
        let mut request = self.auth.clone().unwrap_or_default();
        for command in ["get-master-addr-by-name", "replicas"] {
            request.extend(
                redis::cmd("SENTINEL")
                    .arg(command)
                    .arg(&self.service)
                    .get_packed_command(),
            );
        }
        let count = 2 + usize::from(self.auth.is_some());
        let replies = match self.tls {
            None => exchange(tcp, &request, count),
            Some(settings) => {
                let config = tls::config(settings.insecure)?;
                let connection = rustls::ClientConnection::new(config, tls::server_name(host)?)
                    .map_err(|e| anyhow!("{e}"))?;
                let stream = StreamOwned::new(connection, tcp);
                exchange(stream, &request, count)
            }
        }?;
        let replicas = match replies.last() {
            Some(Reply::Value(Value::Array(replicas))) => up(replicas),
            _ => 0,
        };
        match replies.get(count - 2) {
            Some(Reply::Value(Value::Array(address))) => match address.as_slice() {
                [Value::BulkString(host), Value::BulkString(port)] => Ok(Primary {
                    host: String::from_utf8_lossy(host).into_owned(),
                    port: String::from_utf8_lossy(port).parse()?,
                    replicas,
                }),
                _ => Err(anyhow!("an unexpected answer: {address:?}")),
            },
            Some(Reply::Value(Value::Nil)) => Err(anyhow!("it does not know '{}'", self.service)),
            Some(Reply::Error(text)) => Err(describe_reply(text)),
            other => Err(anyhow!("an unexpected answer: {other:?}")),
        }
        .context("asking for the primary")
    }
}

/// How many of the replicas in a `SENTINEL REPLICAS` answer (each a list of field and value)
/// the sentinel takes to be up: not down (subjectively or objectively) nor disconnected. One
/// still syncing counts: the old primary rejoining after a failover is waited for, which costs
/// writes until it follows the new one (the sentinels turn it into a replica within their
/// INFO period, 10 s); not counting it let a replica that confirmed a write alone be followed
/// by another failover to one that never had it (the fault campaign: 3 and 9 stale writes
/// accepted at two seeds of three, with failovers 1 to 3 s apart).
fn up(replicas: &[Value]) -> u32 {
    let field = |fields: &[Value], name: &[u8]| {
        fields.chunks(2).find_map(|pair| match pair {
            [Value::BulkString(key), Value::BulkString(value)] if key == name => {
                Some(value.clone())
            }
            _ => None,
        })
    };
    replicas
        .iter()
        .filter(|replica| {
            let Value::Array(fields) = replica else {
                return false;
            };
            let flags = field(fields, b"flags").unwrap_or_default();
            let flags = String::from_utf8_lossy(&flags);
            !flags
                .split(',')
                .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"))
        })
        .count() as u32
}

/// Writes `request` and reads `count` replies; an error answer to AUTH ends it.
fn exchange(mut stream: impl Read + Write, request: &[u8], count: usize) -> Result<Vec<Reply>> {
    stream.write_all(request).map_err(|e| describe_io(&e))?;
    let mut input = Vec::new();
    let mut replies = Vec::new();
    let mut chunk = [0u8; 1024];
    while replies.len() < count {
        while let Some((reply, used)) =
            resp::parse(&input).map_err(|_| super::errors::not_redis())?
        {
            input.drain(..used);
            if let Reply::Error(text) = &reply
                && replies.len() + 1 < count
            {
                return Err(describe_reply(text));
            }
            replies.push(reply);
        }
        if replies.len() == count {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(passing("the sentinel closed the connection")),
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(describe_io(&e)),
        }
    }
    Ok(replies)
}

/// Percent-decodes a URL part (`%40` is `@`).
fn decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("invalid Redis Sentinel URL: a bad %-escape in '{text}'"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("invalid Redis Sentinel URL: '{text}' is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_up_are_counted() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let with = |flags: &str, link: &str| {
            Value::Array(vec![
                bulk("name"),
                bulk("127.0.0.1:7001"),
                bulk("flags"),
                bulk(flags),
                bulk("master-link-status"),
                bulk(link),
            ])
        };
        let replica = |flags: &str| with(flags, "ok");
        assert_eq!(up(&[replica("slave"), replica("slave")]), 2);
        assert_eq!(up(&[replica("slave"), with("slave", "err")]), 2);
        assert_eq!(up(&[replica("slave"), replica("s_down,slave")]), 1);
        assert_eq!(
            up(&[replica("slave,disconnected"), replica("o_down,slave")]),
            0
        );
        assert_eq!(up(&[]), 0);
    }

    #[test]
    fn sentinel_urls_are_read() {
        let url = SentinelUrl::parse("u:p%40ss@s1,s2:26380/mymaster/2", None).unwrap();
        assert_eq!(
            url.sentinels.nodes,
            [("s1".to_string(), 26379), ("s2".to_string(), 26380)]
        );
        assert_eq!(url.sentinels.service, "mymaster");
        assert_eq!(url.db, 2);
        assert_eq!(url.user.as_deref(), Some("u"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert!(url.sentinels.auth.is_none());
        let url = SentinelUrl::parse(
            "127.0.0.1:1/m?sentinel_password=x&sentinel_username=y",
            None,
        )
        .unwrap();
        assert!(url.sentinels.auth.is_some());
        assert!(url.password.is_none());
        for bad in [
            "h1",
            "h1/",
            "h1:x/m",
            "h1/m/x",
            "h1/m/1/2",
            "/m",
            "h1/m?foo=1",
        ] {
            assert!(SentinelUrl::parse(bad, None).is_err(), "{bad}");
        }
    }
}
