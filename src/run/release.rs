//! The holder's release at the end of a run, and what redlock says of it.

use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Moment;
use crate::duration::human;
use crate::lock::history::Ending;
use crate::lock::{Everywhere, Lock, Released};
use crate::plan::Plan;
use crate::say::{Event, ms, say};

/// Releases every lock of the run (`release`), each within `timeout`, all at once: a slow
/// majority of one does not cost the others their release, nor the run more than one time-out.
/// True if any was found lost.
pub fn release_all(
    locks: &mut [Lock],
    plan: &Plan,
    keep: Duration,
    timeout: Duration,
    lost: bool,
    ending: Option<Ending>,
) -> bool {
    if let [lock] = locks {
        return release(lock, &plan.label, plan, keep, timeout, lost, ending).lost();
    }
    // Each lock in a slot its thread takes it from; where no thread can be made, this one does.
    let slots: Vec<Mutex<Option<&mut Lock>>> =
        locks.iter_mut().map(|l| Mutex::new(Some(l))).collect();
    let release_one = |i: usize| {
        let lock = slots[i].lock().ok().and_then(|mut slot| slot.take());
        lock.map(|lock| {
            release(
                lock,
                &plan.locks[i].label,
                plan,
                keep,
                timeout,
                lost,
                ending,
            )
        })
    };
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..slots.len())
            .map(|i| std::thread::Builder::new().spawn_scoped(scope, move || release_one(i)))
            .collect();
        let mut found_lost = false;
        for (i, thread) in threads.into_iter().enumerate() {
            let released = match thread {
                Ok(handle) => handle.join().ok().flatten(),
                Err(_) => release_one(i),
            };
            found_lost |= released.is_some_and(|released| released.lost());
        }
        found_lost
    })
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
