//! `redlock release --force` of a lock held shared (`run --shared`): each shared holder is
//! broken in turn, as a lock's holder is (`release.rs` does it).

use crate::cli::ReleaseArgs;
use crate::lock::view::ServerView;
use crate::lock::{Holder, Keys};

use super::majority::summarize;

/// The shared holders (`run --shared`) the servers name, each once, the one whose lease ends
/// last first.
fn shared_holders(views: &[ServerView]) -> Vec<Holder> {
    let mut found: Vec<Holder> = Vec::new();
    for holder in views.iter().flat_map(|view| view.readers.iter().rev()) {
        if !found.iter().any(|h| h.token == holder.token) {
            found.push(holder.clone());
        }
    }
    found
}

/// What breaking a lock held shared would do, for `release` without `--force`; `last` is the
/// shared holder whose lease ends last.
pub(super) fn plan(last: &Holder, total: usize, keys: &Keys) -> String {
    format!(
        "it would ask each of its {} shared holders (the last to end: {last:#}) to stop its \
         command and release its share, then delete {} on {total} server(s) for those that do \
         not, and wake its waiters",
        last.shared.unwrap_or(0),
        keys.readers
    )
}

/// Breaking a lock held shared (`release --force` without `--token`) is breaking each shared
/// holder in turn, as a lock's holder is broken (asked to stop its command and release, then
/// deleted if it does not): the arguments of each of those breaks (`--token` its token), and
/// its label in messages. `None` unless the majority sees the lock held shared: a stray share
/// on one server is not the lock.
pub(super) fn one_by_one(
    args: &ReleaseArgs,
    views: &[ServerView],
) -> Option<Vec<(ReleaseArgs, String)>> {
    let held_shared = summarize(args.lock.label(), views.to_vec())
        .ok()
        .and_then(|status| status.holder)
        .is_some_and(|view| view.holder.shared.is_some());
    if args.token.is_some() || !args.force || !held_shared {
        return None;
    }
    let breaks = shared_holders(views).into_iter().map(|reader| {
        let label = format!("'{}' (shared holder {reader})", args.lock.label());
        let one = ReleaseArgs {
            token: reader.token,
            ..args.clone()
        };
        (one, label)
    });
    Some(breaks.collect())
}
