//! What a majority of the servers says about a lock: the rules `status`, `list` and `release`
//! share, over `lock::majority`.

use serde::Serialize;

use crate::exit::Failure;
use crate::lock::view::ServerView;

use super::history::{self, Run};
use super::servers::enough_answered;
use crate::lock::majority;

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
    let best = most_held(&servers, |v| v.holder.token.as_deref().filter(|_| v.held));
    let agreeing = best.map_or(0, |(_, count)| count);
    let held = agreeing >= quorum;
    let copies = servers.iter().filter_map(|v| v.last_run.clone()).collect();
    let last_run = history::merge(copies).into_iter().next();
    let now_ms = servers.iter().map(|v| v.now_ms).max().unwrap_or(0);
    Ok(Status {
        last_run,
        now_ms,
        name: name.to_string(),
        held,
        holder: best.filter(|_| held).map(|(view, _)| view.clone()),
        quorum,
        agreeing,
        servers,
    })
}

/// The answer whose token the most answers hold, and how many hold it; on a tie, the last.
pub fn most_held<T>(answers: &[T], token: impl Fn(&T) -> Option<&str>) -> Option<(&T, usize)> {
    let count = |wanted: &str| answers.iter().filter(|a| token(a) == Some(wanted)).count();
    answers
        .iter()
        .filter_map(|answer| Some((answer, count(token(answer)?))))
        .max_by_key(|(_, count)| *count)
}

/// Whether a majority of `total` servers may hold a lock: `holding` said they do, and the
/// `unknown` ones that did not answer may.
pub fn may_hold(holding: usize, unknown: usize, total: usize) -> bool {
    holding + unknown >= majority(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_most_hold_wins_and_the_last_breaks_a_tie() {
        let tokens = [Some("a"), None, Some("b"), Some("b"), Some("a")];
        let found = most_held(&tokens, |t| *t);
        assert_eq!(found.map(|(t, n)| (*t, n)), Some((Some("a"), 2)));
        let found = most_held(&tokens[..4], |t| *t);
        assert_eq!(found.map(|(t, n)| (*t, n)), Some((Some("b"), 2)));
        assert!(most_held(&[None::<&str>], |t| *t).is_none());
    }

    #[test]
    fn servers_that_did_not_answer_may_hold_it() {
        assert!(may_hold(1, 1, 3));
        assert!(!may_hold(1, 0, 3));
        assert!(may_hold(0, 2, 3));
        assert!(!may_hold(0, 1, 3));
    }
}
