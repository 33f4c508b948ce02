//! One Redis server as a `--redis` URL names it: where it is, how to log in, whether over TLS.
//! redis-rs reads the URL; everything after that is ours (see `transport/mod.rs`).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use redis::{ConnectionAddr, IntoConnectionInfo};

use super::resolve::Lookup;
use super::sentinel::{self, SentinelUrl, Sentinels};
use super::tls;

/// A server to connect to. Copies share the host's addresses (`resolve.rs`).
#[derive(Clone)]
pub struct Server {
    /// `host:port` or the socket path: safe to print, never the password.
    pub address: String,
    pub(super) place: Place,
    /// AUTH and SELECT, sent ahead of the first request on each connection.
    pub(super) hello: Vec<Vec<u8>>,
    /// `--wait-replicas`: how many replicas must confirm each write of the lease.
    pub replicas: u32,
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

#[derive(Clone, Copy)]
pub(super) struct Tls {
    pub insecure: bool,
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
        // The redis crate's messages may quote the URL, password included: keep them out.
        let info = url.into_connection_info().map_err(|_| {
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
        Ok(Server {
            address,
            place,
            hello: hello(settings.username(), settings.password(), settings.db()),
            replicas: 0,
        })
    }

    fn sentinel(url: SentinelUrl) -> Server {
        Server {
            address: url.sentinels.describe(),
            hello: hello(url.user.as_deref(), url.password.as_deref(), url.db),
            place: Place::Sentinel(Box::new(url.sentinels)),
            replicas: 0,
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
            replicas: self.replicas,
        }
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
