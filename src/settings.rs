//! The settings every command checks before anything touches Redis: the servers, the lock's
//! keys, the TLS files, and the lease's timings (`plan.rs` makes a run's plan with them). A bad
//! or unsafe value is a usage error with a message that says why.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::cli::{ServerArgs, Which};
use crate::duration::human;
use crate::lock::{Keys, REQUEST_TIMEOUT, Server, Timing, check_key, check_name};

/// Shortest lease: Redis counts in milliseconds, and a lease must outlast a few round trips.
const MIN_TTL: Duration = Duration::from_millis(100);

/// Lease timings that keep the command inside its lease.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub timing: Timing,
    pub heartbeat: Duration,
    pub kill_after: Duration,
}

impl Lease {
    /// Defaults: heartbeat a third of the TTL, kill-after a quarter.
    pub fn new(
        ttl: Duration,
        heartbeat: Option<Duration>,
        kill_after: Option<Duration>,
    ) -> Result<Self> {
        if ttl < MIN_TTL {
            bail!(
                "--ttl {} is too short: the minimum is {}",
                human(ttl),
                human(MIN_TTL)
            );
        }
        let heartbeat = heartbeat.unwrap_or(ttl / 3);
        let kill_after = kill_after.unwrap_or(ttl / 4);
        // Enough left after a slow acquire for the first heartbeat to come before the command
        // would have to be signalled.
        let timing = Timing::new(ttl, kill_after + heartbeat);
        // The command must be dead by the end of the lease: SIGTERM goes out `kill_after`
        // before it, so that much must fit inside the TTL less the drift allowance.
        let usable = ttl.saturating_sub(timing.drift);
        if kill_after >= usable {
            bail!(
                "--kill-after {} must be shorter than --ttl {} minus the clock-drift allowance of {}",
                human(kill_after),
                human(ttl),
                human(timing.drift)
            );
        }
        // Between an extension and the moment the command must be signalled there must be room
        // for the next heartbeat and at least one retry of it.
        let room = (usable - kill_after) / 2;
        if heartbeat > room {
            bail!(
                "--heartbeat {} leaves no time to retry a failed extension: with --ttl {} and \
                 --kill-after {} it must be at most {}",
                human(heartbeat),
                human(ttl),
                human(kill_after),
                human(room)
            );
        }
        Ok(Lease {
            timing,
            heartbeat,
            kill_after,
        })
    }
}

impl Lease {
    /// How long a reply to a grant may take and still leave time to run the command safely.
    pub fn usable(&self) -> Duration {
        self.timing.ttl - self.timing.drift - self.timing.min_validity
    }

    /// How long one of `servers` may take to answer a request (taking the lock, extending it)
    /// when `left` remains before its answer would be too late. With several servers it is
    /// kept small next to the TTL: a slow one must not eat the lease the others granted.
    pub fn request_timeout(&self, left: Duration, servers: usize) -> Duration {
        let timeout = REQUEST_TIMEOUT.min(left);
        match servers {
            1 => timeout,
            _ => timeout.min((self.timing.ttl / 10).max(Duration::from_millis(50))),
        }
    }

    /// How long before the end of the lease the command is SIGKILLed at the latest; the
    /// dead-man switch fires half-way through this margin if redlock failed to.
    pub fn kill_margin(&self) -> Duration {
        (self.kill_after / 2).min(Duration::from_secs(1))
    }
}

/// Parses every `--redis` URL; the same server twice would count twice towards the majority.
pub fn servers(urls: &[String], replicas: Option<u32>) -> Result<Vec<Server>> {
    let mut servers: Vec<Server> = Vec::new();
    for url in &rejoin(urls) {
        let mut server = Server::parse(url.trim())?;
        server.replicas = replicas;
        if servers.iter().any(|s| s.address == server.address) {
            bail!("the Redis server {} is given twice", server.address);
        }
        servers.push(server);
    }
    if servers.is_empty() {
        bail!("no Redis server given");
    }
    Ok(servers)
}

/// The URLs, as given: `--redis` and `REDLOCK_URL` are split at commas, and a Sentinel URL's
/// list of sentinels (`redis+sentinel://h1,h2/SERVICE`) has commas of its own. A piece with no
/// scheme belongs to the URL before it.
pub fn rejoin(pieces: &[String]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for piece in pieces {
        match urls.last_mut() {
            Some(url) if !piece.contains("://") => {
                url.push(',');
                url.push_str(piece);
            }
            _ => urls.push(piece.clone()),
        }
    }
    urls
}

/// Reads the files of `--tls-ca`, `--tls-cert` and `--tls-key`, for every `rediss://` server
/// of the run: checked before anything runs, even with no TLS server, as a wrong path in
/// `REDLOCK_TLS_CA` is a mistake whatever the URLs.
pub fn tls(args: &ServerArgs) -> Result<()> {
    Server::use_tls_files(
        args.tls_ca.as_deref(),
        args.tls_cert.as_deref(),
        args.tls_key.as_deref(),
    )
}

/// The lock's keys, once the name (and prefix) or the key is checked.
pub fn keys(which: &Which, prefix: &str) -> Result<Keys> {
    match (&which.name, &which.key) {
        (_, Some(key)) => {
            check_key(key)?;
            Ok(Keys::for_key(key))
        }
        (name, None) => {
            let name = name.as_deref().unwrap_or("");
            check_name("the lock name", name)?;
            check_name("the key prefix", prefix)?;
            Ok(Keys::new(prefix, name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_keeps_its_commas() {
        let pieces =
            ["redis://a", "redis+sentinel://s1:1", "s2:2/m", "rediss://b"].map(String::from);
        assert_eq!(
            rejoin(&pieces),
            ["redis://a", "redis+sentinel://s1:1,s2:2/m", "rediss://b"]
        );
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn defaults_are_safe() {
        for ttl in [Duration::from_millis(100), s(1), s(30), s(3600)] {
            let lease = Lease::new(ttl, None, None).unwrap();
            assert_eq!(lease.heartbeat, ttl / 3);
            assert_eq!(lease.kill_after, ttl / 4);
        }
    }

    #[test]
    fn kill_after_must_fit_in_the_lease() {
        let err = Lease::new(s(10), None, Some(s(10)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--kill-after"), "{err}");
        assert!(Lease::new(s(10), Some(s(1)), Some(s(9))).is_err());
    }

    #[test]
    fn heartbeat_must_leave_room_for_a_retry() {
        let err = Lease::new(s(30), Some(s(20)), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at most 11.0s") || err.contains("at most 11"),
            "{err}"
        );
        assert!(Lease::new(s(30), Some(s(11)), None).is_ok());
    }

    #[test]
    fn tiny_ttls_are_refused() {
        let err = Lease::new(Duration::from_millis(99), None, None)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--ttl 99ms is too short: the minimum is 100ms");
    }
}
