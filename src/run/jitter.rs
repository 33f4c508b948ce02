//! Random pauses: `--jitter`'s sleep before a run's first try (`fair_start`), and the small
//! jitter a waiter adds to its retries, so that contenders do not all come at once.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use crate::clock::Moment;
use crate::duration::human;
use crate::exit::Failure;
use crate::run::events::Events;
use crate::run::heard::{Heed, sleep_until};
use crate::say::{self, ms, say};

/// `--jitter`: sleeps a random time up to `jitter` before the first try, saying how long with
/// `-v`; a signal ends the run as it would end a wait. Nothing is subscribed to yet: no notice
/// can come.
pub fn fair_start(jitter: Duration, verbose: bool, events: &mut Events) -> Result<(), Failure> {
    if jitter.is_zero() {
        return Ok(());
    }
    let pause = random_below(jitter);
    if verbose {
        say(
            say::Event::Waiting,
            format!(
                "sleeping {} before the first try (--jitter {})",
                human(pause),
                human(jitter)
            ),
            &[("jitter_ms", ms(pause))],
        );
    }
    let until = Moment::now() + pause;
    let mut heed = Heed::quiet();
    while sleep_until(until, events, &mut heed)?.is_some() {}
    Ok(())
}

/// Up to a tenth of the wait, at most 50 ms: contenders waking on expiry do not all collide.
pub(super) fn jitter(remaining: Duration) -> Duration {
    random_below((remaining / 10).min(Duration::from_millis(50)))
}

/// A random duration below `limit` (zero for none): the standard library's randomly keyed
/// hasher over the monotonic clock, a new key each time.
pub(super) fn random_below(limit: Duration) -> Duration {
    let span = limit.as_micros() as u64;
    let random = RandomState::new().hash_one(Moment::now());
    Duration::from_micros(if span == 0 { 0 } else { random % span })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_small() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(30)) < Duration::from_millis(50));
            assert!(jitter(Duration::from_millis(100)) < Duration::from_millis(10));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
