//! `redlock status`: who holds a lock, as each server sees it, and whether a majority agrees.

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::duration::human;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::view::ServerView;
use crate::out;
use crate::settings;

use super::history::{self, Run};
use super::majority::{Status, summarize};
use super::servers::Servers;

pub fn status(args: &StatusArgs) -> Result<u8, Failure> {
    let keys = settings::keys(&args.lock, &args.servers.prefix()).kind(Kind::Usage)?;
    let mut places = Servers::open(&args.servers)?.places(&keys);
    if places.len() == 1 {
        let status = summarize(args.lock.label(), places.remove(0))?;
        if args.json {
            out::line(serde_json::to_string_pretty(&status).expect("plain data"))?;
        } else {
            out::print(text(&status))?;
            out::print(last_run(&status))?;
        }
        return Ok(if status.held { 0 } else { 1 });
    }
    let places = places
        .into_iter()
        .map(|views| summarize(args.lock.label(), views))
        .collect::<Result<Vec<_>, _>>()?;
    let semaphore = Semaphore {
        last_run: places[0].last_run.clone(),
        name: args.lock.label().to_string(),
        limit: places.len(),
        held: places.iter().any(|place| place.held),
        places_held: places.iter().filter(|place| place.held).count(),
        places,
    };
    if args.json {
        out::line(serde_json::to_string_pretty(&semaphore).expect("plain data"))?;
    } else {
        out::line(format!(
            "lock '{}' has {} of {} places held (--limit {})",
            semaphore.name, semaphore.places_held, semaphore.limit, semaphore.limit
        ))?;
        out::print(last_run(&semaphore.places[0]))?;
        for (place, status) in semaphore.places.iter().enumerate() {
            let about = text(status);
            let about = about.strip_prefix(&format!("lock '{}' ", status.name));
            out::print(format!("place {place} {}", about.unwrap_or_default()))?;
        }
    }
    Ok(if semaphore.held { 0 } else { 1 })
}

/// `status` of a semaphore (`run --limit N`): its field names are the documented JSON.
#[derive(Debug, Serialize)]
struct Semaphore {
    name: String,
    /// Its N, as stored while any place is held.
    limit: usize,
    /// A majority holds one place or more.
    held: bool,
    /// How many places a majority holds.
    places_held: usize,
    /// Each place as `status` shows a lock, place 0 first.
    places: Vec<Status>,
    /// The last run that got past busy, from the lock's history.
    last_run: Option<Run>,
}

/// `  last run: db2, 3m ago, exit 0, took 41s`, when the history has one.
fn last_run(status: &Status) -> String {
    status.last_run.as_ref().map_or(String::new(), |run| {
        format!(
            "  last run: {}\n",
            history::last_run(&run.entry, status.now_ms)
        )
    })
}

/// A lock held shared (`run --shared`): each of its shared holders, on a line of its own.
fn shared_text(status: &Status, view: &ServerView) -> String {
    let mut out = format!(
        "lock '{}' is held shared by {} run(s)\n",
        status.name,
        view.readers.len()
    );
    for h in &view.readers {
        let since = h
            .age()
            .map_or(String::new(), |age| format!(" for {}", human(age)));
        let left = h.remaining().map_or(String::new(), |left| {
            format!(", expires in {}", human(left))
        });
        let token = h.token.as_deref().unwrap_or("?");
        out.push_str(&format!("  {h:#}{since}{left}, token {token}\n"));
    }
    if let Some(fence) = view.holder.fence {
        out.push_str(&format!(
            "  fence    {fence} (the next exclusive holder's is larger)\n"
        ));
    }
    out
}

fn text(status: &Status) -> String {
    let mut out = String::new();
    match &status.holder {
        None => out.push_str(&format!("lock '{}' is free\n", status.name)),
        Some(view) if view.holder.shared.is_some() => out.push_str(&shared_text(status, view)),
        Some(view) => {
            let h = &view.holder;
            out.push_str(&format!("lock '{}' is held by {h}\n", status.name));
            if let Some(user) = &h.user {
                out.push_str(&format!("  user     {user}\n"));
            }
            if let Some(at) = h.started() {
                out.push_str(&format!(
                    "  since    {}",
                    humantime::format_rfc3339_seconds(at)
                ));
                if let Some(age) = h.age() {
                    out.push_str(&format!(" ({} ago)", human(age)));
                }
                out.push('\n');
            }
            if h.ended_ms.is_some() {
                let ago = h.ended_ago();
                let ago = ago.map_or(String::new(), |a| format!(" {} ago", human(a)));
                out.push_str(&format!(
                    "  kept     by --min-hold: its command finished{ago}\n"
                ));
            }
            match h.remaining() {
                Some(left) => out.push_str(&format!("  expires  in {}\n", human(left))),
                None => out.push_str("  expires  never: the key has no expiry\n"),
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
            let state = match (&server.error, &server.holder.token) {
                (Some(error), _) => format!("unavailable: {error}"),
                (None, None) => "free".to_string(),
                (None, Some(token)) => format!("held by token {token}"),
            };
            out.push_str(&format!("    {}  {state}\n", server.address));
        }
    }
    out
}
