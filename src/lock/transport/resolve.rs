//! Host names are looked up once per run, all at once, and for no longer than a request may
//! take (issue 10, defect 7). A lookup blocks its thread for as long as the resolver allows
//! (with a nameserver that does not answer, tens of seconds), and a server is connected to many
//! times in a run: by the lock, its release's twin, the notice subscriptions, and again after
//! each error. So each `Server` and every copy of it share one `Lookup`, filled here, and every
//! connection (`Conn::open`, TLS included) reads it instead of asking the resolver again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use super::REQUEST_TIMEOUT;

/// A server's addresses, or why it has none: looked up once, shared by its copies.
#[derive(Clone, Default)]
pub(super) struct Lookup(Arc<OnceLock<Result<Vec<SocketAddr>, String>>>);

impl Lookup {
    /// The addresses of `host`. A server that `resolve` was not given is looked up now, with
    /// the same bound.
    pub(super) fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>> {
        if self.0.get().is_none() {
            look_up_all([(host, port, self)], REQUEST_TIMEOUT, look_up);
        }
        match self.0.get().expect("set by look_up_all") {
            Ok(addresses) => Ok(addresses.clone()),
            Err(e) => Err(anyhow!("{e}")),
        }
    }
}

/// What a thread does with one host name: `look_up`, or a stand-in in tests.
type LookUp = fn(&str) -> Result<Vec<IpAddr>, String>;

/// `server::resolve`, for hosts and ports given with the cells their answers go to.
pub(super) fn look_up_all<'a>(
    servers: impl IntoIterator<Item = (&'a str, u16, &'a Lookup)>,
    timeout: Duration,
    look_up: LookUp,
) {
    let deadline = Instant::now() + timeout;
    let mut names: HashMap<&str, Vec<(u16, Lookup)>> = HashMap::new();
    for (host, port, lookup) in servers {
        match host.parse::<IpAddr>() {
            _ if lookup.0.get().is_some() => {}
            Ok(ip) => drop(lookup.0.set(Ok(vec![SocketAddr::new(ip, port)]))),
            Err(_) => names.entry(host).or_default().push((port, lookup.clone())),
        }
    }
    let (done, finished) = mpsc::channel();
    let mut running = 0;
    for (&host, servers) in &names {
        let (name, theirs, done) = (host.to_string(), servers.clone(), done.clone());
        let started = thread::Builder::new()
            .name("resolve".into())
            .spawn(move || {
                let found = look_up(&name);
                for (port, lookup) in &theirs {
                    let addresses = found.as_ref().map(|ips| with_port(ips, *port));
                    let _ = lookup.0.set(addresses.map_err(Clone::clone));
                }
                let _ = done.send(());
            });
        match started {
            Ok(_) => running += 1,
            Err(e) => fail(
                servers,
                &format!("cannot start a thread to resolve {host}: {e}"),
            ),
        }
    }
    while running > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if finished.recv_timeout(left).is_err() {
            break;
        }
        running -= 1;
    }
    for (host, servers) in &names {
        fail(servers, &format!("cannot resolve {host}: timed out"));
    }
}

/// Fails the servers whose lookup has not ended (a lookup that has keeps its result).
fn fail(servers: &[(u16, Lookup)], error: &str) {
    for (_, lookup) in servers {
        let _ = lookup.0.set(Err(error.to_string()));
    }
}

/// The addresses of a host name, or a one-line reason why there are none.
pub(super) fn look_up(host: &str) -> Result<Vec<IpAddr>, String> {
    match (host, 0).to_socket_addrs() {
        Ok(found) => {
            let ips: Vec<IpAddr> = found.map(|address| address.ip()).collect();
            if ips.is_empty() {
                return Err(format!("cannot resolve {host}: it has no address"));
            }
            Ok(ips)
        }
        Err(e) => {
            let text = e.to_string();
            let cause = text.trim_start_matches("failed to lookup address information: ");
            Err(format!("cannot resolve {host}: {cause}"))
        }
    }
}

fn with_port(ips: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn an_ip_address_needs_no_lookup() {
        let lookup = Lookup::default();
        look_up_all([("::1", 6380, &lookup)], Duration::ZERO, |_| unreachable!());
        let expected: SocketAddr = "[::1]:6380".parse().unwrap();
        assert_eq!(lookup.addresses("::1", 6380).unwrap(), [expected]);
    }

    #[test]
    fn a_lookup_not_done_in_time_is_an_error() {
        let hangs: LookUp = |_| {
            thread::sleep(Duration::from_secs(3600));
            unreachable!()
        };
        let lookup = Lookup::default();
        let started = Instant::now();
        look_up_all([("db1", 6380, &lookup)], Duration::from_millis(50), hangs);
        assert!(started.elapsed() < Duration::from_secs(1));
        let error = lookup.addresses("db1", 6380).unwrap_err();
        assert_eq!(error.to_string(), "cannot resolve db1: timed out");
    }

    #[test]
    fn a_name_is_looked_up_once_for_all_its_servers_and_their_copies() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let counted: LookUp = |_| {
            CALLS.fetch_add(1, Ordering::SeqCst);
            Ok(vec![IpAddr::from([127, 0, 0, 1])])
        };
        let (a, b) = (Lookup::default(), Lookup::default());
        look_up_all([("db1", 1, &a), ("db1", 2, &b)], REQUEST_TIMEOUT, counted);
        let copy = a.clone();
        look_up_all([("db1", 1, &copy)], REQUEST_TIMEOUT, counted);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        let port = |l: &Lookup| l.addresses("db1", 0).unwrap()[0].port();
        assert_eq!((port(&copy), port(&b)), (1, 2));
    }
}
