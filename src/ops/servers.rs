//! The servers an operator's command asks, all at once over the one transport (`lock::Pool`):
//! the slowest one bounds the whole.

use anyhow::{Result, anyhow};
use redis::Value;

use crate::cli::ServerArgs;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::view::{ServerView, view};
use crate::lock::{
    Class, Keys, MOST_PLACES, Pool, REQUEST_TIMEOUT, Request, Server, Tally, class, resolve,
    scripts,
};
use crate::settings;

/// The servers from `--redis`, each asked until it fails once: a server that failed is not
/// asked again (every request to it would cost a time-out), and counts as not answering.
pub struct Servers {
    pool: Pool,
    servers: Vec<Server>,
    addresses: Vec<String>,
    forgotten: Vec<bool>,
}

impl Servers {
    /// Checks the servers' URLs and opens them, their host names looked up at once. (The
    /// prefix is checked where it is used: not with --key.)
    pub fn open(args: &ServerArgs) -> Result<Self, Failure> {
        let servers = settings::servers(&args.redis, Some(0)).kind(Kind::Usage)?;
        Ok(Servers::over(servers))
    }

    /// These servers, their host names looked up at once.
    pub fn over(servers: Vec<Server>) -> Self {
        resolve(&servers, REQUEST_TIMEOUT);
        Servers {
            pool: Pool::open(&servers),
            addresses: servers.iter().map(|s| s.address.clone()).collect(),
            forgotten: vec![false; servers.len()],
            servers,
        }
    }

    /// What each server is made of, for a command that must ask every node (`list`): the
    /// primaries of a Redis Cluster (CLUSTER SLOTS), or the server itself.
    pub fn nodes(&mut self) -> Vec<Result<Vec<Server>>> {
        let replies = self.ask(
            |_| Some(Request::command(redis::cmd("CLUSTER").arg("SLOTS"))),
            Ok,
        );
        replies
            .into_iter()
            .zip(&self.servers)
            .map(|(reply, server)| match reply {
                Some(Ok(shards)) => Ok(primaries(server, shards)),
                // A server that is not a cluster says so.
                Some(Err(e)) if class(&e) == Some(&Class::NotACluster) => Ok(vec![server.clone()]),
                Some(Err(e)) => Err(e),
                None => Err(anyhow!("did not answer before")),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Whether server `i` failed, and is not asked any more.
    pub fn forgotten(&self, i: usize) -> bool {
        self.forgotten[i]
    }

    /// Stops asking server `i`: it failed.
    pub fn forget(&mut self, i: usize) {
        self.forgotten[i] = true;
    }

    /// Sends every server its `request` (by index; `None`: not this one) at once, and reads
    /// each reply with `read`: `None` for a server not asked, or that failed before.
    pub fn ask<R>(
        &mut self,
        request: impl Fn(usize) -> Option<Request>,
        read: impl Fn(Value) -> Result<R>,
    ) -> Vec<Option<Result<R>>> {
        let requests: Vec<Option<Request>> = (0..self.len())
            .map(|i| if self.forgotten[i] { None } else { request(i) })
            .collect();
        self.pool.each(&requests, REQUEST_TIMEOUT, read)
    }

    /// Every server's view of the lock, read at once.
    pub fn views(&mut self, keys: &Keys) -> Vec<ServerView> {
        let replies = self.ask(|_| Some(scripts::view(keys)), Ok);
        replies
            .into_iter()
            .zip(&self.addresses)
            .map(|(reply, address)| view(address, keys, reply))
            .collect()
    }
}

impl Servers {
    /// Every server's view of each place of the lock: one for a plain lock, N for a semaphore
    /// whose N is stored (read with place 0; then each other place, a round trip each).
    pub fn places(&mut self, keys: &Keys) -> Vec<Vec<ServerView>> {
        let first = self.views(keys);
        self.places_after(keys, first)
    }

    /// `places`, with place 0's views (`first`) read already.
    pub fn places_after(&mut self, keys: &Keys, first: Vec<ServerView>) -> Vec<Vec<ServerView>> {
        let limit = first.iter().filter_map(|v| v.limit).max().unwrap_or(1);
        // A server that failed is not asked for the other places: each would cost a time-out.
        for (i, view) in first.iter().enumerate() {
            if view.error.is_some() {
                self.forget(i);
            }
        }
        let mut places = vec![first];
        for place in 1..limit.clamp(1, MOST_PLACES) {
            places.push(self.views(&keys.slot(place)));
        }
        places
    }
}

/// How many locks `views_of` reads per request: 500 keys, a page of `list`.
const VIEWS_PER_REQUEST: usize = 100;

impl Servers {
    /// Every server's view of place 0 of each lock (`locks[i]`'s at `[i]`), read a page of
    /// locks per round trip (`scripts::views`). `None` when a server cannot read them together
    /// (a Redis Cluster: the locks' keys are in different slots), to be read one by one.
    pub fn views_of(&mut self, locks: &[Keys]) -> Option<Vec<Vec<ServerView>>> {
        let mut views: Vec<Vec<ServerView>> = Vec::with_capacity(locks.len());
        for page in locks.chunks(VIEWS_PER_REQUEST) {
            let replies = self.ask(
                |_| Some(scripts::views(page)),
                |reply| Ok(redis::from_redis_value::<Vec<Value>>(reply)?),
            );
            let mut per_lock: Vec<Vec<ServerView>> = page.iter().map(|_| Vec::new()).collect();
            let mut failed = Vec::new();
            for (i, (reply, address)) in replies.into_iter().zip(&self.addresses).enumerate() {
                match reply {
                    Some(Ok(replies)) if replies.len() == page.len() => {
                        for ((keys, reply), lock) in page.iter().zip(replies).zip(&mut per_lock) {
                            lock.push(view(address, keys, Some(Ok(reply))));
                        }
                    }
                    Some(Err(e)) if class(&e) == Some(&Class::CrossSlot) => return None,
                    other => {
                        // Not asked again: each page would cost it a time-out more.
                        failed.push(i);
                        let error = match other {
                            None => "did not answer before".to_string(),
                            Some(Err(e)) => format!("{e:#}"),
                            Some(Ok(_)) => "an unexpected reply to the views script".into(),
                        };
                        for lock in &mut per_lock {
                            lock.push(ServerView::unreachable(address, error.clone()));
                        }
                    }
                }
            }
            for i in failed {
                self.forget(i);
            }
            views.extend(per_lock);
        }
        Some(views)
    }
}

/// The primaries in a CLUSTER SLOTS reply (`[[first, last, [host, port, id], replicas...]...]`),
/// each once, reached with `seed`'s settings.
fn primaries(seed: &Server, shards: Value) -> Vec<Server> {
    let mut nodes: Vec<(String, u16)> = Vec::new();
    if let Value::Array(shards) = shards {
        for shard in shards {
            let Value::Array(fields) = shard else {
                continue;
            };
            let Some(Value::Array(primary)) = fields.get(2) else {
                continue;
            };
            let host = match primary.first() {
                Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
                _ => continue,
            };
            let Some(Value::Int(port)) = primary.get(1) else {
                continue;
            };
            let node = (host, *port as u16);
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
    }
    nodes
        .iter()
        .map(|(host, port)| seed.at(host, *port))
        .collect()
}

/// Fails as Redis being unavailable, with every server's error, when too few of `total`
/// servers answered for a majority to be told.
pub fn enough_answered(errors: &[impl AsRef<str>], total: usize) -> Result<(), Failure> {
    let answered = total.saturating_sub(errors.len());
    if !Tally::counted(0, answered, total).too_few_answered() {
        return Ok(());
    }
    let errors: Vec<&str> = errors.iter().map(AsRef::as_ref).collect();
    Err(Failure::new(
        Kind::Unavailable,
        anyhow!("{}", errors.join("; ")),
    ))
}
