//! The holder's release at the end of a run, and what redlock says of it.

use std::time::Duration;

use crate::clock::Moment;
use crate::duration::human;
use crate::lock::history::Ending;
use crate::lock::{Everywhere, Lock, Released};
use crate::plan::Plan;
use crate::say::{Event, ms, say};

/// Releases every lock of the run (`release`), one after another, each within `timeout`: a
/// slow majority of one does not cost the others their release. True if any was found lost.
pub fn release_all(
    locks: &mut [Lock],
    plan: &Plan,
    keep: Duration,
    timeout: Duration,
    lost: bool,
    ending: Option<Ending>,
) -> bool {
    let mut found_lost = false;
    for (lock, target) in locks.iter_mut().zip(&plan.locks) {
        let released = release(lock, &target.label, plan, keep, timeout, lost, ending);
        found_lost |= released.lost();
    }
    found_lost
}

/// Releases the lock within `timeout`, or with `keep` leaves it to expire then, and says what
/// it found; `ending` is how the run ended, for the history. After a lost lease there is
/// normally nothing left to release, so failures are only reported when `verbose`.
fn release(
    lock: &mut Lock,
    label: &str,
    plan: &Plan,
    keep: Duration,
    timeout: Duration,
    lost: bool,
    ending: Option<Ending>,
) -> Released {
    let started = Moment::now();
    let released = lock.release(keep, timeout, Everywhere::No, ending);
    // With several servers, a majority releasing frees the lock: the rest is for --verbose.
    let freed = released.freed();
    if !released.errors.is_empty() && ((!lost && !freed) || plan.verbose) {
        say(
            Event::ReleaseFailed,
            format!(
                "could not release '{}' ({}); it expires within {}",
                label,
                released.errors.join("; "),
                human(lock.timing.ttl)
            ),
            &[
                ("errors", released.errors.clone().into()),
                ("expires_within_ms", ms(lock.timing.ttl)),
            ],
        );
    } else if plan.verbose {
        let held = if released.ours > 0 {
            ""
        } else {
            " (it was no longer ours)"
        };
        let took = started.elapsed();
        let message = format!("released '{}'{held} in {}", label, human(took));
        let fields = [("ours", (released.ours > 0).into()), ("took_ms", ms(took))];
        if keep.is_zero() {
            say(Event::Released, message, &fields);
        } else {
            let message = format!(
                "{message}; --min-hold keeps it locked for {} more",
                human(keep)
            );
            say(
                Event::Kept,
                message,
                &[&fields[..], &[("kept_ms", ms(keep))]].concat(),
            );
        }
    }
    released
}
