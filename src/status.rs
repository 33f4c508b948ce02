//! `redlock status`: who holds a lock, as each server sees it, and whether a majority agrees.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::{ServerArgs, StatusArgs};
use crate::duration::human;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::view::{ServerView, view};
use crate::lock::{Keys, Pool, Request, beyond_minority, majority, resolve, scripts};
use crate::settings;

/// Bound on each server's answer.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The whole answer; its field names are the documented JSON.
#[derive(Debug, Serialize)]
pub struct Status {
    pub name: String,
    /// A majority of the servers hold the lock with the same token.
    pub held: bool,
    /// The majority's view, when held: token, holder details, time left, fence.
    pub holder: Option<ServerView>,
    /// How many servers must agree, and how many do.
    pub quorum: usize,
    pub agreeing: usize,
    pub servers: Vec<ServerView>,
}

/// The servers an operator's command asks, over one connection each (`lock::Pool`). A server
/// that failed once is not asked again: each question would cost it a time-out.
pub struct Servers {
    pool: Pool,
    pub addresses: Vec<String>,
    pub failed: Vec<bool>,
}

impl Servers {
    /// Checks the shared options and opens the servers, their host names looked up at once.
    pub fn open(args: &ServerArgs) -> Result<Self, Failure> {
        settings::check_name("the key prefix", &args.prefix).kind(Kind::Usage)?;
        let servers = settings::servers(&args.redis, 0).kind(Kind::Usage)?;
        resolve(&servers, TIMEOUT);
        Ok(Servers {
            pool: Pool::open(&servers),
            addresses: servers.iter().map(|s| s.address.clone()).collect(),
            failed: vec![false; servers.len()],
        })
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Asks every server at once (`request` for each, `None` to skip it); a server that failed
    /// before is not asked and answers "did not answer before".
    pub fn ask<R>(
        &mut self,
        request: impl Fn(usize) -> Option<Request>,
        read: impl Fn(redis::Value) -> anyhow::Result<R>,
    ) -> Vec<Option<anyhow::Result<R>>> {
        let requests: Vec<Option<Request>> = (0..self.len())
            .map(|i| if self.failed[i] { None } else { request(i) })
            .collect();
        let mut answers = self.pool.each(&requests, TIMEOUT, read);
        for (i, answer) in answers.iter_mut().enumerate() {
            if self.failed[i] {
                *answer = Some(Err(anyhow!("did not answer before")));
            }
        }
        answers
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

    /// One page of a SCAN on one server.
    pub fn one(&mut self, index: usize, request: &Request) -> anyhow::Result<redis::Value> {
        self.pool.one(index, request, TIMEOUT)
    }
}

pub fn status(args: &StatusArgs) -> Result<u8, Failure> {
    settings::check_name("the lock name", &args.name).kind(Kind::Usage)?;
    let mut servers = Servers::open(&args.servers)?;
    let keys = Keys::new(&args.servers.prefix, &args.name);
    let views = servers.views(&keys);
    let status = summarize(&args.name, views)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("plain data")
        );
    } else {
        print!("{}", text(&status));
    }
    Ok(if status.held { 0 } else { 1 })
}

/// Decides who holds the lock; too few answers is Redis being unavailable.
pub fn summarize(name: &str, servers: Vec<ServerView>) -> Result<Status, Failure> {
    let quorum = majority(servers.len());
    let failed: Vec<&ServerView> = servers.iter().filter(|v| v.error.is_some()).collect();
    if beyond_minority(failed.len(), servers.len()) {
        let errors: Vec<&str> = failed.iter().filter_map(|v| v.error.as_deref()).collect();
        return Err(Failure::new(
            Kind::Unavailable,
            anyhow!("{}", errors.join("; ")),
        ));
    }
    let agreeing = |token: &Option<String>| {
        servers
            .iter()
            .filter(|v| v.held && &v.token == token)
            .count()
    };
    let best = servers
        .iter()
        .filter(|v| v.held)
        .max_by_key(|v| agreeing(&v.token));
    let count = best.map_or(0, |v| agreeing(&v.token));
    let held = count >= quorum;
    Ok(Status {
        name: name.to_string(),
        held,
        holder: held.then(|| best.cloned()).flatten(),
        quorum,
        agreeing: count,
        servers,
    })
}

fn text(status: &Status) -> String {
    let mut out = String::new();
    match &status.holder {
        None => out.push_str(&format!("lock '{}' is free\n", status.name)),
        Some(h) => {
            out.push_str(&format!(
                "lock '{}' is held by {}\n",
                status.name,
                describe(h)
            ));
            if let Some(started) = h.started_ms {
                let at = UNIX_EPOCH + Duration::from_millis(started.max(0) as u64);
                out.push_str(&format!(
                    "  since    {}",
                    humantime::format_rfc3339_seconds(at)
                ));
                if let Some(age) = h.age_ms {
                    out.push_str(&format!(" ({} ago)", human(ms(age))));
                }
                out.push('\n');
            }
            if let Some(ended) = h.ended_ms {
                let ago = h.started_ms.zip(h.age_ms).map(|(s, a)| s + a - ended);
                let ago = ago.map_or(String::new(), |a| format!(" {} ago", human(ms(a))));
                out.push_str(&format!(
                    "  kept     by --min-hold: its command finished{ago}\n"
                ));
            }
            match h.ttl_ms {
                Some(ttl) if ttl >= 0 => {
                    out.push_str(&format!("  expires  in {}\n", human(ms(ttl))))
                }
                _ => out.push_str("  expires  never: the key has no expiry\n"),
            }
            if let Some(fence) = h.fence {
                out.push_str(&format!("  fence    {fence}\n"));
            }
            if let Some(token) = &h.token {
                out.push_str(&format!("  token    {token}\n"));
            }
        }
    }
    if status.servers.len() > 1 {
        out.push_str(&format!(
            "  servers  {} of {} agree ({} needed)\n",
            status.agreeing,
            status.servers.len(),
            status.quorum
        ));
        for server in &status.servers {
            let state = match (&server.error, &server.token) {
                (Some(error), _) => format!("unavailable: {error}"),
                (None, None) => "free".to_string(),
                (None, Some(token)) => format!("held by token {token}"),
            };
            out.push_str(&format!("    {}  {state}\n", server.address));
        }
    }
    out
}

/// `db2 (pid 4242, user root, ./backup.sh)`
pub fn describe(view: &ServerView) -> String {
    match &view.host {
        Some(host) => format!(
            "{host} (pid {}, user {}, {})",
            view.pid.map_or("?".to_string(), |p| p.to_string()),
            view.user.as_deref().unwrap_or("?"),
            view.command.as_deref().unwrap_or("?")
        ),
        None => "an unknown holder".to_string(),
    }
}

pub fn ms(millis: i64) -> Duration {
    Duration::from_millis(millis.max(0) as u64)
}
