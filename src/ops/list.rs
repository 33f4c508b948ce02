//! `redlock list`: the held locks under the prefix, found with SCAN (never KEYS).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::cli::ListArgs;
use crate::duration::human;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::view::ServerView;
use crate::lock::{Keys, Request, check_name, lock_of, scan_pattern};
use crate::out;

use super::majority::{Status, summarize};
use super::servers::{Servers, enough_answered};

/// One held lock; its field names are the documented JSON.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    /// How many servers hold it (with several servers).
    servers: usize,
    /// A semaphore's place (`run --limit`), and its N: one entry for each place held.
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    #[serde(flatten)]
    view: ServerView,
}

pub fn list(args: &ListArgs) -> Result<u8, Failure> {
    let prefix = &args.servers.prefix();
    check_name("the key prefix", prefix).kind(Kind::Usage)?;
    let mut servers = Servers::open(&args.servers)?;
    let total = servers.len();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut failed = Vec::new();
    // Every node that holds keys: a cluster's primaries, each scanned.
    let mut owners = Vec::new();
    let mut nodes = Vec::new();
    for (i, found) in servers.nodes().into_iter().enumerate() {
        match found {
            Ok(found) => {
                owners.extend(found.iter().map(|_| i));
                nodes.extend(found);
            }
            Err(e) => {
                failed.push(format!("{e:#}"));
                // Not asked again for every lock: it would cost a time-out each.
                servers.forget(i);
            }
        }
    }
    let mut nodes = Servers::over(nodes);
    for (node, found) in scan(&mut nodes, prefix, &args.pattern)
        .into_iter()
        .enumerate()
    {
        let owner = owners[node];
        match found {
            Ok(found) => names.extend(found),
            // A cluster with a node that fails counts as failed, once.
            Err(e) if !servers.forgotten(owner) => {
                failed.push(format!("{e:#}"));
                servers.forget(owner);
            }
            Err(_) => {}
        }
    }
    enough_answered(&failed, total)?;
    let mut listed = Vec::new();
    let names: Vec<String> = names.into_iter().collect();
    let locks: Vec<Keys> = names.iter().map(|name| Keys::new(prefix, name)).collect();
    // A page of locks per round trip where the servers can read them together.
    let mut first = servers.views_of(&locks).map(Vec::into_iter);
    for (name, keys) in names.into_iter().zip(&locks) {
        let places = match first.as_mut().and_then(Iterator::next) {
            Some(views) => servers.places_after(keys, views),
            None => servers.places(keys),
        };
        let limit = (places.len() > 1).then_some(places.len());
        for (place, views) in places.into_iter().enumerate() {
            // A server that failed once is not asked again: each lock would cost a time-out.
            for (i, view) in views.iter().enumerate() {
                if view.error.is_some() {
                    servers.forget(i);
                }
            }
            // Held means what `status` means: a majority with one token.
            if let Ok(Status {
                holder: Some(view),
                agreeing,
                ..
            }) = summarize(&name, views)
            {
                listed.push(Listed {
                    name: name.clone(),
                    servers: agreeing,
                    slot: limit.map(|_| place),
                    limit,
                    view,
                });
            }
        }
    }
    if args.json {
        out::line(serde_json::to_string_pretty(&listed).expect("plain data"))?;
    } else {
        for lock in &listed {
            let holder = &lock.view.holder;
            let age = holder.age().map_or("?".into(), human);
            let ttl = match holder.remaining() {
                Some(left) => format!("expires in {}", human(left)),
                None => "never expires".to_string(),
            };
            let name = match (lock.slot, lock.limit, holder.shared) {
                (Some(place), Some(limit), _) => {
                    format!("{} [place {place} of {limit}]", lock.name)
                }
                (_, _, Some(readers)) => format!("{} [shared by {readers}]", lock.name),
                _ => lock.name.clone(),
            };
            out::line(format!("{name}\t{holder:#}\tfor {age}\t{ttl}"))?;
        }
    }
    Ok(0)
}

/// The names of the locks on each server whose name matches `pattern`: every server scanned
/// at once, a page of each per round trip.
fn scan(servers: &mut Servers, prefix: &str, pattern: &str) -> Vec<anyhow::Result<Vec<String>>> {
    // The lock key itself is `PREFIX:{NAME}`, a semaphore's other places `PREFIX:{NAME}:slot:K`;
    // the companions of both are told apart here (`lock_of`).
    let matching = scan_pattern(prefix, pattern);
    let mut found: Vec<anyhow::Result<Vec<String>>> =
        (0..servers.len()).map(|_| Ok(Vec::new())).collect();
    // Each server's next cursor, while it has more to scan.
    let mut cursors: Vec<Option<u64>> = vec![Some(0); servers.len()];
    while cursors.iter().any(Option::is_some) {
        let pages = servers.ask(
            |i| {
                let cursor = cursors[i]?;
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&matching)
                    .arg("COUNT")
                    .arg(1000);
                Some(Request::command(&scan))
            },
            |reply| Ok(redis::from_redis_value::<(u64, Vec<String>)>(reply)?),
        );
        for (i, page) in pages.into_iter().enumerate() {
            let Some(page) = page else { continue };
            let (next, keys) = match page {
                Ok(page) => page,
                Err(e) => {
                    (found[i], cursors[i]) = (Err(e), None);
                    continue;
                }
            };
            if let Ok(names) = &mut found[i] {
                names.extend(
                    keys.iter()
                        .filter_map(|key| lock_of(key, prefix))
                        .map(|(name, _)| name),
                );
            }
            cursors[i] = (next != 0).then_some(next);
        }
    }
    found
}
