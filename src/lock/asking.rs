//! What a run asks of another holder of its lock: whether the holder is the run it is nested
//! in (`holder_with`), and to let go for `run --replace` (`ask_to_replace`).

use std::time::Duration;

use redis::Value;

use super::holder::Holder;
use super::tally::Tally;
use super::transport::Wait;
use super::{Lock, scripts, view};

impl Lock {
    /// The holder, if a majority of the servers hold `place` of the lock with `token` now, as a
    /// lock with this one's N (a plain lock inside a semaphore's run is not the same lock) (a run that
    /// finds its own lock's token in its environment may run under that lease).
    pub fn holder_with(&mut self, token: &str, place: usize, timeout: Duration) -> Option<Holder> {
        let request = scripts::view(&self.keys.slot(place));
        let answers = self
            .pool
            .fan_out(Wait::Always, &request, timeout, Ok, |_| false);
        let servers = answers.len();
        let holding: Vec<Holder> = answers
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|reply| redis::from_redis_value::<Vec<Value>>(reply).ok())
            .filter(|fields| view::stored_limit(fields).unwrap_or(1) == self.limit())
            .filter_map(|fields| {
                // Held shared, the first holder is one of the shared holders; a run alone is not
                // covered by a shared holder's lease (others hold it too).
                let holder = Holder::decode(&fields);
                let holders = match (holder.shared, self.shared) {
                    (None, _) => vec![holder],
                    (Some(_), true) => view::shared_holders(&fields),
                    (Some(_), false) => Vec::new(),
                };
                holders
                    .into_iter()
                    .find(|holder| holder.token.as_deref() == Some(token))
            })
            .collect();
        let majority = Tally::counted(holding.len(), 0, servers).yes();
        majority.then(|| holding.into_iter().next()).flatten()
    }

    /// Asks the holder of the lock (the one holding `token`) to stop its command and let the
    /// lock go to this run, for `run --replace`; returns its --kill-after, as the servers that
    /// answered know it, and the first refusal of a server that answered with an error (an
    /// ACL: the holder may have been asked all the same, but this run was not moved to the
    /// front of the queue). The answers are otherwise of no interest: the release notice tells
    /// the rest.
    pub fn ask_to_replace(
        &mut self,
        token: &str,
        timeout: Duration,
    ) -> (Option<Duration>, Option<anyhow::Error>) {
        let by = scripts::Ask::Replace { by: &self.token };
        let request = scripts::ask_to_stop(&self.keys, Some(token), by);
        let answers = self
            .pool
            .fan_out(Wait::Always, &request, timeout, view::asked, |_| false);
        let mut kill_after = None;
        let mut refused = None;
        for answer in answers.into_iter().flatten() {
            match answer {
                Ok(asked) => kill_after = kill_after.max(asked.kill_after),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        (kill_after, refused)
    }
}
