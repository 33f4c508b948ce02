//! `run --replace`: asking the holder of the lock to let go, and for how long it may answer.

use std::time::Duration;

use crate::clock::Moment;
use crate::duration::human;
use crate::lock::view::{ASK_MARGIN, UNKNOWN_KILL_AFTER};
use crate::lock::{Holder, Lock};
use crate::say::{self, ms, say};

use super::holders::holder_fields;

/// With --replace: the holder asked (the one found holding the lock), and until when it is
/// asked again, while it may still answer. Only that holder is replaced: a waiter that gets the
/// lock after it (its lease ran out) came before this run, and keeps its turn.
#[derive(Default)]
pub(super) struct Replacing {
    asked: Option<(String, Moment)>,
}

impl Replacing {
    /// Asks the holder of the lock to let go (again, on each attempt: a holder that took the
    /// lock a moment ago may not listen yet, see `control::LISTEN_AFTER`), if it is the one
    /// first found and may still answer; the first time, returns until when it may.
    /// `--replace` is refused with `--limit` above 1: there is one holder to replace.
    pub(super) fn ask(
        &mut self,
        lock: &mut Lock,
        holders: &[Holder],
        now: Moment,
        timeout: Duration,
        verbose: bool,
    ) -> Option<Moment> {
        let token = holders[0].token.as_ref()?;
        if self.asked.is_some() {
            if self.answering(holders, now) {
                lock.ask_to_replace(token, timeout);
            }
            return None;
        }
        let (kill_after, refused) = lock.ask_to_replace(token, timeout);
        if let Some(refused) = refused {
            // A timed-out answer is asked again; a refusal would be refused again.
            say::warning(
                format!("--replace could not ask the holder to let go: {refused:#}"),
                &[],
            );
        }
        let until = now + kill_after.unwrap_or(UNKNOWN_KILL_AFTER) + ASK_MARGIN;
        self.asked = Some((token.clone(), until));
        if verbose {
            let fields = [vec![("wait_ms", ms(until - now))], holder_fields(holders)];
            say(
                say::Event::Replacing,
                format!(
                    "asked the holder to stop its command (--replace); waiting up to {}",
                    human(until - now)
                ),
                &fields.concat(),
            );
        }
        Some(until)
    }

    /// Whether the holder asked still holds the lock (of `holders`) and may still answer.
    pub(super) fn answering(&self, holders: &[Holder], now: Moment) -> bool {
        self.asked
            .as_ref()
            .is_some_and(|(asked, until)| now < *until && holders[0].token.as_ref() == Some(asked))
    }
}
