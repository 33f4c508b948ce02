//! `redlock status`: who holds a lock, as each server sees it, and whether a majority agrees.

use crate::cli::StatusArgs;
use crate::duration::human;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::Keys;
use crate::settings;

use super::majority::{Status, summarize};
use super::servers::Servers;

pub fn status(args: &StatusArgs) -> Result<u8, Failure> {
    settings::check_name("the lock name", &args.name).kind(Kind::Usage)?;
    let keys = Keys::new(&args.servers.prefix, &args.name);
    let views = Servers::open(&args.servers)?.views(&keys);
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

fn text(status: &Status) -> String {
    let mut out = String::new();
    match &status.holder {
        None => out.push_str(&format!("lock '{}' is free\n", status.name)),
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
