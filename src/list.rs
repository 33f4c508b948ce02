//! `redlock list`: the held locks under the prefix, found with SCAN (never KEYS).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::cli::ListArgs;
use crate::duration::human;
use crate::exit::{Failure, Kind};
use crate::lock::view::ServerView;
use crate::lock::{Keys, Request, beyond_minority};
use crate::status::{self, describe, ms};

/// One held lock; its field names are the documented JSON.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    /// How many servers hold it (with several servers).
    servers: usize,
    #[serde(flatten)]
    view: ServerView,
}

pub fn list(args: &ListArgs) -> Result<u8, Failure> {
    let mut servers = status::Servers::open(&args.servers)?;
    let prefix = &args.servers.prefix;
    let total = servers.len();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut failed = Vec::new();
    for index in 0..total {
        match scan(&mut servers, index, prefix, &args.pattern) {
            Ok(found) => names.extend(found),
            Err(e) => {
                failed.push(format!("{e:#}"));
                // Not asked again for every lock: it would cost a time-out each.
                servers.failed[index] = true;
            }
        }
    }
    if beyond_minority(failed.len(), total) {
        return Err(Failure::new(
            Kind::Unavailable,
            anyhow::anyhow!("{}", failed.join("; ")),
        ));
    }
    let mut listed = Vec::new();
    for name in names {
        let views = servers.views(&Keys::new(prefix, &name));
        // A server that failed once is not asked again: each lock would cost a time-out.
        for (failed, view) in servers.failed.iter_mut().zip(&views) {
            *failed |= view.error.is_some();
        }
        // Held means what `status` means: a majority with one token.
        if let Ok(status::Status {
            holder: Some(view),
            agreeing,
            ..
        }) = status::summarize(&name, views)
        {
            listed.push(Listed {
                name,
                servers: agreeing,
                view,
            });
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).expect("plain data")
        );
    } else {
        for lock in &listed {
            let age = lock.view.age_ms.map_or("?".into(), |a| human(ms(a)));
            let ttl = match lock.view.ttl_ms {
                Some(t) if t >= 0 => format!("expires in {}", human(ms(t))),
                _ => "never expires".to_string(),
            };
            println!("{}\t{}\tfor {age}\t{ttl}", lock.name, describe(&lock.view));
        }
    }
    Ok(0)
}

/// The names of the locks on one server whose name matches `pattern`.
fn scan(
    servers: &mut status::Servers,
    index: usize,
    prefix: &str,
    pattern: &str,
) -> anyhow::Result<Vec<String>> {
    // The lock key itself is `PREFIX:{NAME}`; its companions end after the brace.
    let matching = format!("{}:{{{pattern}}}", escape_glob(prefix));
    let mut names = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(&matching)
            .arg("COUNT")
            .arg(1000);
        let reply = servers.one(index, &Request::command(&scan))?;
        let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)?;
        for key in keys {
            let name = key
                .strip_prefix(&format!("{prefix}:{{"))
                .and_then(|rest| rest.strip_suffix('}'));
            if let Some(name) = name.filter(|n| !n.contains('{') && !n.contains('}')) {
                names.push(name.to_string());
            }
        }
        if next == 0 {
            return Ok(names);
        }
        cursor = next;
    }
}

/// The prefix is matched literally: its glob characters are escaped for SCAN MATCH.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::new();
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_are_matched_literally() {
        assert_eq!(super::escape_glob("team[a]*"), "team\\[a\\]\\*");
        assert_eq!(super::escape_glob("redlock"), "redlock");
    }
}
