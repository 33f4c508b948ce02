//! `redlock history`: the last runs of a lock across all hosts, newest first. Each server keeps
//! its own list (`lock::history`); the same run on several servers is one entry (its token),
//! and whether its lock was lost at release is decided here by the majority, as the run did.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::cli::HistoryArgs;
use crate::duration::human;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::history::Entry;
use crate::lock::{Request, Tally, one_line};
use crate::out;
use crate::outcome::Outcome;
use crate::say;
use crate::settings;

use super::servers::{Servers, enough_answered};

/// One run as `history --json` (and `status --json`'s `last_run`) shows it: the recorded
/// entry, when it started by the server's clock, and how many servers recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    #[serde(flatten)]
    pub entry: Entry,
    pub start_ms: Option<i64>,
    pub recorded_on: usize,
}

pub fn history(args: &HistoryArgs) -> Result<u8, Failure> {
    let keys = settings::keys(&args.lock(), &args.servers.prefix()).kind(Kind::Usage)?;
    let mut servers = Servers::open(&args.servers)?;
    let lists = servers.ask(
        |_| {
            let mut range = redis::cmd("LRANGE");
            range.arg(&keys.history).arg(0).arg(-1);
            Some(Request::command(&range))
        },
        |reply| Ok(redis::from_redis_value::<Vec<String>>(reply)?),
    );
    let mut failed = Vec::new();
    let mut entries = Vec::new();
    for list in lists.into_iter().flatten() {
        match list {
            // Entries someone else wrote are skipped, not fatal.
            Ok(list) => entries.push(
                (list.iter())
                    .filter_map(|e| serde_json::from_str(e).ok())
                    .collect::<Vec<Entry>>(),
            ),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    enough_answered(&failed, servers.len())?;
    for error in &failed {
        say::warning(format!("not in this history: {error}"), &[]);
    }
    let mut runs = merge(entries);
    runs.truncate(args.count);
    if args.json {
        out::line(serde_json::to_string_pretty(&runs).expect("plain data"))?;
    } else {
        for run in &runs {
            out::line(line(run))?;
        }
    }
    Ok(0)
}

/// The entries of all servers, a list each, as one list of runs, newest first.
pub fn merge(lists: Vec<impl IntoIterator<Item = Entry>>) -> Vec<Run> {
    let mut by_token: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for list in lists {
        // One copy a server: a minority server that had not run the last holder's release yet
        // said busy to a run the others granted, and records it again at its release.
        let mut copies: BTreeMap<String, Entry> = BTreeMap::new();
        for entry in list {
            match copies.get(&entry.token) {
                Some(kept) if latest(kept) >= latest(&entry) => {}
                _ => drop(copies.insert(entry.token.clone(), entry)),
            }
        }
        for (token, entry) in copies {
            by_token.entry(token).or_default().push(entry);
        }
    }
    let mut runs: Vec<Run> = by_token.into_values().map(one_run).collect();
    runs.sort_by_key(|run| std::cmp::Reverse(run.start_ms));
    runs
}

/// Which of a run's entries tells how it ended: one that got past busy before a busy one,
/// whatever the servers' clocks say; then the later.
fn latest(entry: &Entry) -> (bool, Option<i64>) {
    (entry.outcome != Outcome::Busy, entry.end_ms)
}

/// What the servers recorded of one run, a copy each: the `latest` of their entries, lost when
/// a majority of the servers no longer held its token at release (its redlock exited with 76
/// then).
fn one_run(mut copies: Vec<Entry>) -> Run {
    let gone = copies.iter().filter(|e| e.held == Some(false)).count();
    copies.sort_by_key(latest);
    let recorded_on = copies.len();
    let mut entry = copies.pop().expect("a run has an entry");
    let lost = entry.servers > 0 && Tally::counted(0, gone, entry.servers).no();
    if lost && entry.outcome.found_lost() != entry.outcome {
        entry.outcome = entry.outcome.found_lost();
        entry.exit = entry.exit.map(|status| entry.outcome.held_exit(status));
    }
    entry.held = None;
    // A run that held the lock started its command then; one that did not began its wait.
    let since = entry.run_ms.unwrap_or(entry.wait_ms);
    let start_ms = entry.end_ms.map(|end| end - since as i64);
    Run {
        entry,
        start_ms,
        recorded_on,
    }
}

/// `2026-11-30T03:00:00Z  db2  4242  backup  ran, exit 0  waited 1ms  took 41s  fence 17  cmd`
fn line(run: &Run) -> String {
    let e = &run.entry;
    let start = run
        .start_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or("?".into(), |ms| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        });
    let exit = e.exit.map_or("exec".into(), |code| format!("exit {code}"));
    let took = e.run_ms.map_or("-".into(), |ms| {
        format!("took {}", human(Duration::from_millis(ms)))
    });
    let fence = e.fence.map_or("-".into(), |f| format!("fence {f}"));
    format!(
        "{start}\t{}\t{}\t{}\t{}, {exit}\twaited {}\t{took}\t{fence}\t{}",
        one_line(&e.host),
        e.pid,
        one_line(&e.user),
        e.outcome.as_str(),
        human(Duration::from_millis(e.wait_ms)),
        one_line(&e.command)
    )
}

/// "db2, 3m ago, exit 0, took 41s": the last run that got past busy, for `status`.
pub fn last_run(entry: &Entry, now_ms: i64) -> String {
    let ago = entry.end_ms.map_or("?".into(), |end| {
        human(Duration::from_millis((now_ms - end).max(0) as u64))
    });
    let exit = entry
        .exit
        .map_or("exec".into(), |code| format!("exit {code}"));
    let took = entry.run_ms.map_or(String::new(), |ms| {
        format!(", took {}", human(Duration::from_millis(ms)))
    });
    let outcome = match entry.outcome {
        Outcome::Ran => String::new(),
        other => format!(", {}", other.as_str()),
    };
    format!(
        "{}, {ago} ago{outcome}, {exit}{took}",
        one_line(&entry.host)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: &str, end_ms: i64, held: Option<bool>) -> Entry {
        Entry {
            token: token.into(),
            host: "db2".into(),
            pid: 1,
            user: "u".into(),
            command: "c".into(),
            outcome: Outcome::Ran,
            exit: Some(0),
            status: Some(0),
            wait_ms: 5,
            run_ms: Some(1_000),
            fence: Some(1),
            slot: Some(0),
            servers: 3,
            end_ms: Some(end_ms),
            held,
        }
    }

    #[test]
    fn a_run_on_several_servers_is_one_and_lost_by_the_majority() {
        let runs = merge(vec![
            vec![
                entry("a", 10_000, Some(true)),
                entry("b", 20_000, Some(false)),
            ],
            vec![
                entry("a", 10_001, Some(true)),
                entry("b", 20_001, Some(false)),
            ],
            vec![entry("a", 10_002, Some(false))],
        ]);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].entry.token, "b");
        assert_eq!(runs[0].entry.outcome, Outcome::Lost);
        assert_eq!(runs[0].entry.exit, Some(76));
        assert_eq!(runs[1].entry.outcome, Outcome::Ran);
        assert_eq!(runs[1].recorded_on, 3);
        assert_eq!(runs[1].start_ms, Some(9_002));
        assert_eq!(
            last_run(&runs[1].entry, 70_002),
            "db2, 1m ago, exit 0, took 1.0s"
        );
    }

    /// A server that said busy to a run the others granted records it twice: one copy.
    #[test]
    fn a_server_s_busy_and_ran_copies_of_a_run_are_one() {
        let busy = Entry {
            outcome: Outcome::Busy,
            exit: Some(75),
            run_ms: None,
            ..entry("a", 10_005, None)
        };
        let runs = merge(vec![
            vec![entry("a", 10_000, Some(true))],
            vec![entry("a", 10_001, Some(true))],
            vec![entry("a", 10_002, Some(false)), busy],
        ]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].recorded_on, 3);
        assert_eq!(runs[0].entry.outcome, Outcome::Ran);
        assert_eq!(runs[0].entry.end_ms, Some(10_002));
    }
}
