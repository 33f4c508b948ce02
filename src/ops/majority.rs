//! What a majority of the servers says about a lock, for `status`, `list` and `release`,
//! counted by `lock::Tally`.

use serde::Serialize;

use crate::exit::Failure;
use crate::lock::view::{Asked, ServerView};

use super::history::{self, Run};
use super::servers::enough_answered;
use crate::lock::{Tally, Vote, majority};

/// The whole answer of `status`; its field names are the documented JSON.
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
    /// The last run that got past busy, from the lock's history (the newest any server has,
    /// lost when a majority found its token gone, as `history` shows it).
    pub last_run: Option<Run>,
    /// The clock of the server that recorded it, now.
    #[serde(skip)]
    pub now_ms: i64,
}

/// Decides who holds the lock; too few answers is Redis being unavailable.
pub fn summarize(name: &str, servers: Vec<ServerView>) -> Result<Status, Failure> {
    let quorum = majority(servers.len());
    let failed: Vec<&str> = servers.iter().filter_map(|v| v.error.as_deref()).collect();
    enough_answered(&failed, servers.len())?;
    let tally = Tally::of(servers.iter().map(|v| match (&v.holder.token, &v.error) {
        (_, Some(_)) => Vote::Unknown,
        (Some(token), None) if v.held => Vote::For(token.as_str()),
        _ => Vote::Against,
    }));
    let agreeing = tally.leader().map_or(0, |(_, count)| count);
    let holder = tally.winner().and_then(|&token| {
        let holds = |v: &&ServerView| v.held && v.holder.token.as_deref() == Some(token);
        servers.iter().find(holds).cloned()
    });
    let copies = servers.iter().map(|v| v.last_run.clone()).collect();
    let last_run = history::merge(copies).into_iter().next();
    let now_ms = servers.iter().map(|v| v.now_ms).max().unwrap_or(0);
    Ok(Status {
        last_run,
        now_ms,
        name: name.to_string(),
        held: holder.is_some(),
        holder,
        quorum,
        agreeing,
        servers,
    })
}

/// Whether a majority may still hold `token`: the servers that answered holding it, and those
/// that did not answer.
pub fn majority_may_hold(answers: &[Asked], errors: &[Option<String>], token: &str) -> bool {
    let holds = |asked: &&Asked| asked.token.as_deref() == Some(token);
    let holding = answers.iter().filter(holds).count();
    Tally::counted(holding, answers.len() - holding, errors.len()).may_win(&())
}

/// The token most servers hold, if any holds one.
pub fn most_held_token(answers: &[Asked]) -> Option<String> {
    let tally = Tally::of(answers.iter().map(|asked| match &asked.token {
        Some(token) => Vote::For(token),
        None => Vote::Against,
    }));
    tally.leader().map(|(token, _)| token.to_string())
}
