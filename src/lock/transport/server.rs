//! One Redis server as a `--redis` URL names it: where it is, how to log in, whether over TLS.
//! redis-rs reads the URL; everything after that is ours (see `transport/mod.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use redis::{ConnectionAddr, IntoConnectionInfo};

use super::resolve::{Lookup, look_up, look_up_all};
use super::sentinel::{self, SentinelUrl, Sentinels};
use super::tls::{self, Tls};

/// A server to connect to. Copies share the host's addresses (`resolve.rs`).
#[derive(Clone)]
pub struct Server {
    /// `host:port` or the socket path: safe to print, never the password.
    pub address: String,
    pub(super) place: Place,
    /// AUTH and SELECT, sent ahead of the first request on each connection.
    pub(super) hello: Vec<Vec<u8>>,
    /// The database number, which names its keyspace notifications' channels (`keys.rs`).
    pub db: i64,
    /// `--wait-replicas`: how many replicas must confirm each write of the lease; `None`: one
    /// wherever the primary has a replica (its ROLE says so when the connection opens), none
    /// where it has not.
    pub replicas: Option<u32>,
    /// More nodes of the same Redis Cluster (`redis://h1:7000,h2:7001`), tried in turn when
    /// the first cannot be reached: any node leads to the one that owns the lock.
    pub(super) seeds: Vec<(String, u16)>,
}

#[derive(Clone)]
pub(super) enum Place {
    /// A host and port, the host's addresses (looked up once for every copy of the server),
    /// and with `rediss://` whether the certificate goes unchecked (`#insecure`); the run's
    /// `--tls-*` files apply to every TLS server alike (`Server::use_tls_files`).
    Tcp {
        host: String,
        port: u16,
        lookup: Lookup,
        tls: Option<Tls>,
    },
    Unix(PathBuf),
    /// A primary named by its service: the sentinels say where it is, each time a connection
    /// opens.
    Sentinel(Box<Sentinels>),
}

impl Server {
    /// Validates the URL (scheme, database number) without connecting.
    pub fn parse(url: &str) -> Result<Self> {
        let Some((scheme, _)) = url.split_once("://") else {
            bail!(
                "invalid Redis URL: expected redis://HOST[:PORT][/DB], rediss://... or redis+unix:///PATH"
            );
        };
        if let Some(tls) = match scheme {
            "redis+sentinel" | "valkey+sentinel" => Some(None),
            "rediss+sentinel" | "valkeys+sentinel" => Some(Some(Tls { insecure: false })),
            _ => None,
        } {
            let rest = &url[scheme.len() + 3..];
            return Ok(Server::sentinel(SentinelUrl::parse(rest, tls)?));
        }
        if !matches!(
            scheme,
            "redis" | "rediss" | "redis+unix" | "unix" | "valkey" | "valkeys"
        ) {
            bail!(
                "invalid Redis URL: unsupported scheme '{scheme}' (use redis://, rediss://, \
                 redis+unix:// or {})",
                sentinel::GRAMMAR
            );
        }
        let (url, seeds) = split_seeds(url)?;
        // The redis crate's messages may quote the URL, password included: keep them out.
        let info = url.as_str().into_connection_info().map_err(|_| {
            anyhow!(
                "invalid Redis URL for a {scheme}:// server: check the host, port and database number"
            )
        })?;
        let (address, place) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (
                format!("{host}:{port}"),
                Place::Tcp {
                    host: host.clone(),
                    port: *port,
                    lookup: Lookup::default(),
                    tls: None,
                },
            ),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => (
                format!("{host}:{port} (TLS)"),
                Place::Tcp {
                    host: host.clone(),
                    port: *port,
                    lookup: Lookup::default(),
                    tls: Some(Tls {
                        insecure: *insecure,
                    }),
                },
            ),
            ConnectionAddr::Unix(path) => (path.display().to_string(), Place::Unix(path.clone())),
            other => bail!("invalid Redis URL: unsupported address {other:?}"),
        };
        let settings = info.redis_settings();
        let address = std::iter::once(address)
            .chain(seeds.iter().map(|(host, port)| format!("{host}:{port}")))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Server {
            seeds,
            address,
            place,
            hello: hello(settings.username(), settings.password(), settings.db()),
            db: settings.db(),
            replicas: None,
        })
    }

    fn sentinel(url: SentinelUrl) -> Server {
        Server {
            address: url.sentinels.describe(),
            hello: hello(url.user.as_deref(), url.password.as_deref(), url.db),
            db: url.db,
            place: Place::Sentinel(Box::new(url.sentinels)),
            replicas: None,
            seeds: Vec::new(),
        }
    }

    /// The same server's settings (login, TLS, replicas) for another node of its cluster, at
    /// `host:port` (an empty host: this one's). A Unix socket has no other nodes: it stays.
    pub fn at(&self, host: &str, port: u16) -> Server {
        let Place::Tcp { host: own, tls, .. } = &self.place else {
            return self.clone();
        };
        let host = if host.is_empty() {
            own.clone()
        } else {
            host.to_string()
        };
        let tls = *tls;
        let suffix = if tls.is_some() { " (TLS)" } else { "" };
        Server {
            address: format!("{host}:{port}{suffix}"),
            place: Place::Tcp {
                host,
                port,
                lookup: Lookup::default(),
                tls,
            },
            hello: self.hello.clone(),
            db: self.db,
            replicas: self.replicas,
            seeds: Vec::new(),
        }
    }

    /// The same cluster with its next seed node first and this one last: the one tried first
    /// accepted the connection and did not answer (frozen, or partitioned). `None` without seeds.
    pub(super) fn next_seed(&self) -> Option<Server> {
        let Place::Tcp {
            host, port, tls, ..
        } = &self.place
        else {
            return None;
        };
        let (first, rest) = self.seeds.split_first()?;
        let mut next = self.at(&first.0, first.1);
        next.seeds = rest.to_vec();
        next.seeds.push((host.clone(), *port));
        next.address = std::iter::once(first)
            .chain(&next.seeds)
            .map(|(host, port)| format!("{host}:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        if tls.is_some() {
            next.address.push_str(" (TLS)");
        }
        Some(next)
    }

    /// How many nodes the URL names: 1, or the cluster's seeds.
    pub(super) fn nodes(&self) -> usize {
        1 + self.seeds.len()
    }

    /// Whether the sentinels say where this server is.
    pub(super) fn by_sentinel(&self) -> bool {
        matches!(self.place, Place::Sentinel(_))
    }

    /// Reads the files of `--tls-ca`, `--tls-cert` and `--tls-key` for every `rediss://` server
    /// of the run (`tls.rs`); once, before any connection. `Err` names the file at fault.
    pub fn use_tls_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<()> {
        tls::use_files(ca, cert, key)
    }

    /// The host to look up, if the server has one, and where its addresses go.
    pub(super) fn lookup(&self) -> Option<(&str, u16, &Lookup)> {
        match &self.place {
            Place::Tcp {
                host, port, lookup, ..
            } => Some((host, *port, lookup)),
            Place::Unix(_) | Place::Sentinel(_) => None,
        }
    }
}

/// AUTH and SELECT, as the URL asks for them.
fn hello(user: Option<&str>, password: Option<&str>, db: i64) -> Vec<Vec<u8>> {
    let mut hello = Vec::new();
    if let Some(password) = password {
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = user {
            auth.arg(user);
        }
        hello.push(auth.arg(password).get_packed_command());
    }
    if db != 0 {
        hello.push(redis::cmd("SELECT").arg(db).get_packed_command());
    }
    hello
}

/// `redis://[AUTH@]H1[:P1],H2[:P2]/...` as the URL of its first host, and the others.
fn split_seeds(url: &str) -> Result<(String, Vec<(String, u16)>)> {
    let (scheme, rest) = url.split_once("://").expect("checked by the caller");
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (auth, hosts) = match authority.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), authority),
    };
    let mut hosts = hosts.split(',');
    let first = hosts.next().unwrap_or_default();
    let mut seeds = Vec::new();
    for host in hosts {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if !name.ends_with(':') && !port.ends_with(']') => (
                name,
                port.parse()
                    .map_err(|_| anyhow!("invalid Redis URL: a bad port in '{host}'"))?,
            ),
            _ => (host, 6379),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() {
            bail!("invalid Redis URL: an empty host in a list of cluster nodes");
        }
        seeds.push((name.to_string(), port));
    }
    Ok((format!("{scheme}://{auth}{first}{path}"), seeds))
}

/// Looks up the host names of all `servers` at once, one thread per name, and waits no longer
/// than `timeout`: a lookup still running then fails its servers ("timed out") and its thread
/// is left to end on its own. A failure is reported by the first request to the server.
pub fn resolve(servers: &[Server], timeout: Duration) {
    look_up_all(servers.iter().filter_map(Server::lookup), timeout, look_up);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_seeds_are_read() {
        let (url, seeds) = split_seeds("redis://:pw@n1:7000,n2:7001,[::1]:7002,n4/3").unwrap();
        assert_eq!(url, "redis://:pw@n1:7000/3");
        assert_eq!(
            seeds,
            [
                ("n2".to_string(), 7001),
                ("::1".to_string(), 7002),
                ("n4".to_string(), 6379)
            ]
        );
        let server = Server::parse("redis://n1:7000,n2:7001").unwrap();
        assert_eq!(server.address, "n1:7000,n2:7001");
        assert!(split_seeds("redis://n1,n2:x").is_err());
    }
}
