//! Taking the lock: one attempt on every server at once (`Lock::try_acquire`), and what the
//! answers make of it: ours on a majority, busy (and who holds it), another `--limit`, or too
//! few servers. A semaphore's place must be the same on a majority.

use std::time::Duration;

use anyhow::Result;

use super::holder::{Acquired, Holder, HolderInfo, acquired};
use super::tally::{Tally, Vote};
use super::transport::{self, Answer, Class, Wait};
use super::{Lock, MOST_PLACES, integer, name_keys_in_the_way, said_yes, scripts};
use crate::clock::Moment;
use crate::outcome::Outcome;

/// The outcome of one attempt to take the lock.
#[derive(Debug)]
pub enum Attempt {
    /// A majority is ours until `lease_end`, on the same `place` of the lock (0 for a plain
    /// lock; a semaphore's place is the same on all of them).
    Acquired {
        fence: u64,
        sent: Moment,
        lease_end: Moment,
        place: usize,
    },
    /// Held by others: for each place, the details of the holder with the most servers.
    /// `split` when no one holds a majority of some place (contenders took a few servers each
    /// and are giving them back). `given_back`: on how many servers this attempt took the lock
    /// and gave it back (a minority): each deletes the key there, which a waiter listening to
    /// the key's keyspace notifications hears, and must not take for a release.
    Busy {
        holders: Vec<Holder>,
        split: bool,
        given_back: usize,
    },
    /// The lock is held with another `--limit`: this one.
    Mismatch { limit: usize },
}

/// Why an attempt could not tell whether the lock is ours: too few servers answered, or too
/// late. `unreachable` unless one that answered said the lock is held, or a key of another
/// type is in the way: only unreachable servers are a reason for `--on-unavailable`.
/// `passing` when every server that failed did so in a way that passes (refused, timed out, a
/// failover under way: `transport::transient`): worth trying again within `--wait`.
#[derive(Debug)]
pub struct NotTaken {
    pub message: String,
    pub unreachable: bool,
    pub passing: bool,
}

impl std::fmt::Display for NotTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NotTaken {}

impl Lock {
    /// Tries once to take the lock on every server. `Err` means too few servers answered.
    /// A caller that will wait for a busy lock `queue`s: release notices name the first
    /// waiter. `in_flight` runs on this thread once the request is on its way to the servers,
    /// while their answers are awaited: unless a server could not even be sent the request.
    ///
    /// A semaphore's attempt is made again at once, once: when the servers gave different
    /// places (it then asks for one most of them have free), or when they keep another N that
    /// no holder keeps any more (it is cleared first).
    pub fn try_acquire(
        &mut self,
        me: &HolderInfo,
        queue: bool,
        timeout: Duration,
        in_flight: &mut dyn FnMut(),
    ) -> Result<Attempt> {
        let attempt = self.attempt(me, queue, timeout, in_flight)?;
        let again = match &attempt {
            Attempt::Mismatch { limit } => self.clear_limit(*limit, timeout),
            Attempt::Busy { holders, .. } => {
                matches!(self.ask, scripts::Place::Only(_))
                    && holders.iter().all(|h| h.token.is_none())
            }
            Attempt::Acquired { .. } => false,
        };
        if again {
            return self.attempt(me, queue, timeout, in_flight);
        }
        Ok(attempt)
    }

    /// Clears a stored N that no place of it holds any more (see `limit.lua`): true if a
    /// server did.
    fn clear_limit(&mut self, limit: usize, timeout: Duration) -> bool {
        if limit > MOST_PLACES {
            return false;
        }
        let request = scripts::clear_limit(&self.places[0], limit);
        let answers = self.pool.fan_out(
            Wait::Always,
            &request,
            timeout,
            |reply| Ok(integer(reply)? == 1),
            |_| false,
        );
        answers.iter().any(|a| matches!(a, Some(Ok(true))))
    }

    fn attempt(
        &mut self,
        me: &HolderInfo,
        queue: bool,
        timeout: Duration,
        in_flight: &mut dyn FnMut(),
    ) -> Result<Attempt> {
        let (sent, answers) = self.send_acquire(me, queue, timeout, in_flight);
        let lease_end = self.timing.lease_end(sent);
        let tally = places_granted(&answers);
        let won = tally.winner().is_some();
        let place = tally.leader().map_or(0, |(&p, _)| p);
        let sorted = self.sort(answers, place);
        // The place is a lock of its own: from here on, its keys are the ones used.
        self.keys = self.places[place].clone();
        self.place = place;
        let fences = &sorted.fences;
        let fence = fences.iter().copied().max().unwrap_or(0);
        let min_validity = self.timing.min_validity;
        let in_time = || Moment::now() + min_validity < lease_end;
        // Only a counter a majority holds is sure to be exceeded by the next holder's: when the
        // servers disagree, the largest is written back before the command may use it.
        let mut fence_agreed =
            || fences.iter().all(|&f| f == fence) || self.raise_fence(fence, timeout);
        if won && in_time() && fence_agreed() && in_time() {
            if sorted.strays {
                // Other places a few servers gave us: each is a place another run could have,
                // and its waiters are told.
                self.give_back(Some(place), timeout, None, true);
            }
            self.ask = scripts::Place::Any;
            return Ok(Attempt::Acquired {
                fence,
                sent,
                lease_end,
                place,
            });
        }
        self.keys = self.places[0].clone();
        self.place = 0;
        self.not_acquired(sorted, &tally, lease_end, timeout)
    }

    /// Sends the acquire to every server (`in_flight` runs while it travels), and collects
    /// the answers once a majority granted a place, or every server answered.
    fn send_acquire(
        &mut self,
        me: &HolderInfo,
        queue: bool,
        timeout: Duration,
        in_flight: &mut dyn FnMut(),
    ) -> (Moment, Vec<Answer<Acquired>>) {
        // A run that will not wait ends here if the lock is busy: the script records it then.
        let busy = match (&self.record, queue) {
            (Some(record), false) => {
                Some(record.without_lock(&self.token, self.addresses.len(), Outcome::Busy, false))
            }
            _ => None,
        };
        let request = scripts::acquire(
            &self.places,
            &self.token,
            self.timing.ttl,
            me,
            queue,
            self.ask,
            self.recorded(busy.as_deref()),
            self.shared,
        );
        let sent = Moment::now();
        let on_its_way = self.pool.send(Wait::Never, &request, timeout);
        in_flight();
        let answers = on_its_way.collect(acquired, |answers| {
            places_granted(answers).winner().is_some()
        });
        (sent, answers)
    }

    /// Sorts the servers' answers, for the place most of them granted.
    fn sort(&self, answers: Vec<Answer<Acquired>>, place: usize) -> Sorted {
        let mut sorted = Sorted {
            fences: Vec::new(),
            strays: false,
            busy: Vec::new(),
            mismatch: None,
            errors: Vec::new(),
            in_the_way: false,
            passing: true,
            free_on: vec![0; self.places.len()],
            took: 0,
        };
        for (address, answer) in self.addresses.iter().zip(answers) {
            if let Some(Ok(Acquired::Yes { free, .. })) = &answer {
                sorted.took += 1;
                for &p in free {
                    if let Some(count) = sorted.free_on.get_mut(p) {
                        *count += 1;
                    }
                }
            }
            match answer {
                Some(Ok(Acquired::Yes {
                    fence, place: p, ..
                })) if p == place => sorted.fences.push(fence),
                Some(Ok(Acquired::Yes { .. })) => sorted.strays = true,
                Some(Ok(Acquired::Busy(holders))) => sorted.busy.push(holders),
                Some(Ok(Acquired::Mismatch(limit))) => sorted.mismatch = Some(limit),
                Some(Err(e)) => {
                    sorted.passing &= transport::transient(&e);
                    let in_the_way = matches!(transport::class(&e), Some(Class::WrongType { .. }));
                    sorted.in_the_way |= in_the_way;
                    let error = name_keys_in_the_way(e, address, &self.keys);
                    sorted.errors.push(format!("{error:#}"));
                }
                None => sorted.errors.push(transport::unanswered(address)),
            }
        }
        sorted
    }

    /// What an attempt that did not take the lock found: busy, another N, or too few servers
    /// (`Err`). What a few servers granted is given back first.
    fn not_acquired(
        &mut self,
        sorted: Sorted,
        tally: &Tally<usize>,
        lease_end: Moment,
        timeout: Duration,
    ) -> Result<Attempt> {
        let (place, granted) = tally.leader().map_or((0, 0), |(&p, count)| (p, count));
        let won = tally.winner().is_some();
        let n = self.addresses.len();
        let Sorted {
            busy,
            mismatch,
            errors,
            in_the_way,
            ..
        } = &sorted;
        // Too few servers answered: the run ends here, and the servers that did record it.
        let unavailable = match &self.record {
            Some(record) if tally.too_few_answered() => {
                let policy =
                    !self.seen_held && busy.is_empty() && mismatch.is_none() && !in_the_way;
                Some(record.without_lock(&self.token, n, Outcome::Unavailable, policy))
            }
            _ => None,
        };
        // Next time, ask for a place a majority had free, if one had, or else first for the one
        // most of them gave: they then agree more often.
        let free_on = &sorted.free_on;
        let most_free = (0..free_on.len()).max_by_key(|&p| (free_on[p], std::cmp::Reverse(p)));
        self.ask = match most_free {
            Some(p) if free_on[p] >= self.quorum() => scripts::Place::Only(p),
            _ if granted > 0 => scripts::Place::Prefer(place),
            _ => scripts::Place::Any,
        };
        // For each place, who the busy servers name, and whether a majority names them.
        let seen = (!busy.is_empty()).then(|| most_seen(busy, n));
        if granted > 0 || sorted.strays || !errors.is_empty() {
            // A minority (or a majority that came too late) is worthless and would block others;
            // a server that timed out may still execute our request once it wakes up.
            let held = seen.as_ref().is_some_and(|seen| !split(seen));
            self.give_back(None, timeout, unavailable.as_deref(), !held);
        }
        if tally.too_few_answered() {
            let answered = n - errors.len();
            return Err(sorted
                .not_taken(match n {
                    1 => errors.join("; "),
                    _ => format!(
                        "only {answered} of {n} Redis servers answered; {}",
                        errors.join("; ")
                    ),
                })
                .into());
        }
        if let Some(limit) = *mismatch {
            return Ok(Attempt::Mismatch { limit });
        }
        if busy.is_empty() && (won || self.places.len() == 1) {
            let message = if won && Moment::now() + self.timing.min_validity < lease_end {
                "the fencing token could not be recorded on a majority of the servers"
            } else {
                "the lock was granted too late to be of use; raise --ttl"
            };
            return Err(sorted.not_taken(message.to_string()).into());
        }
        let Some(seen) = seen else {
            // The servers gave different places of a semaphore, none of them to a majority:
            // contenders took them in different orders, and are giving them back. Tried again
            // at once (after the split vote's pause), as their holders are unknown.
            let unknown = Holder {
                ttl_ms: Some(0),
                ..Holder::default()
            };
            return Ok(Attempt::Busy {
                holders: vec![unknown; self.places.len()],
                split: true,
                given_back: sorted.took,
            });
        };
        self.seen_held = true;
        Ok(Attempt::Busy {
            split: split(&seen),
            holders: seen.into_iter().map(|(holder, _)| holder).collect(),
            given_back: sorted.took,
        })
    }

    /// Gives back what an acquire got that is of no use (all of it, or every place but
    /// `keep`), on every server: one that executes the acquire late gets this after it.
    /// `run`: the history entry of a run that ends here. `tell_waiters` unless another holder
    /// has a majority of every place: the lock is not free then, and its holder's release will
    /// tell them; a notice woke every waiter, this one too, into trying again at once, over and
    /// over while the holder kept its majority (a minority that had lost the key granted it
    /// each time). Without such a holder (a split vote) the lock may be free: told, they try.
    fn give_back(
        &mut self,
        keep: Option<usize>,
        timeout: Duration,
        run: Option<&str>,
        tell_waiters: bool,
    ) {
        let request = scripts::release(
            &self.places,
            &self.token,
            Duration::ZERO,
            keep,
            self.recorded(run),
            tell_waiters,
            self.hold(),
        );
        self.pool.fan_out(
            Wait::Always,
            &request,
            timeout,
            |reply| integer(reply).map(drop),
            |_| false,
        );
    }

    /// Writes `fence` back to every server whose counter is lower; true once a majority has it.
    fn raise_fence(&mut self, fence: u64, timeout: Duration) -> bool {
        let request = scripts::raise_fence(&self.keys, &self.token, fence);
        let answers = self.pool.fan_out(
            Wait::Never,
            &request,
            timeout,
            |reply| integer(reply).map(drop),
            |answers| said_yes(answers, |_| true).yes(),
        );
        said_yes(&answers, |_| true).yes()
    }
}

/// The answers of one attempt, sorted.
struct Sorted {
    /// The fencing counters of the servers that granted the place most of them granted.
    fences: Vec<u64>,
    /// Some server granted another place.
    strays: bool,
    /// The holders each busy server named, a place each.
    busy: Vec<Vec<Holder>>,
    mismatch: Option<usize>,
    errors: Vec<String>,
    /// A key of another type is in the way.
    in_the_way: bool,
    /// Every server that failed did so in a way that passes (`transport::transient`).
    passing: bool,
    /// How many servers had each place free.
    free_on: Vec<usize>,
    /// How many servers granted a place.
    took: usize,
}

impl Sorted {
    fn not_taken(&self, message: String) -> NotTaken {
        NotTaken {
            message,
            unreachable: self.busy.is_empty() && self.mismatch.is_none() && !self.in_the_way,
            // Only servers that failed are a reason to try again: a grant that came too late
            // is not (raise --ttl).
            passing: self.passing && !self.in_the_way && !self.errors.is_empty(),
        }
    }
}

/// Which place each server granted.
fn places_granted(answers: &[Answer<Acquired>]) -> Tally<usize> {
    Tally::of(answers.iter().map(|answer| match answer {
        Some(Ok(Acquired::Yes { place, .. })) => Vote::For(*place),
        Some(Ok(_)) => Vote::Against,
        _ => Vote::Unknown,
    }))
}

/// For each place, the holder on the most of the busy servers (of `servers`), and whether that
/// is a majority. Of the same holder's answers, the one with the most time left.
fn most_seen(busy: &[Vec<Holder>], servers: usize) -> Vec<(Holder, bool)> {
    let places = busy.iter().map(Vec::len).min().expect("busy is not empty");
    (0..places)
        .map(|place| {
            let seen = || busy.iter().map(|holders| &holders[place]);
            let others = std::iter::repeat_n(Vote::Unknown, servers - busy.len());
            // On a tie, a holder before no holder (`None` sorts last).
            let vote = |h: &Holder| Vote::For((h.token.is_none(), h.token.clone()));
            let tally = Tally::of(seen().map(vote).chain(others));
            let ((_, token), _) = tally.leader().expect("busy is not empty");
            let best = seen()
                .filter(|h| &h.token == token)
                .max_by_key(|h| h.remaining())
                .expect("the leader was seen");
            (best.clone(), tally.winner().is_some())
        })
        .collect()
}

/// Whether some place is held by no one on a majority of the servers (of `most_seen`).
fn split(seen: &[(Holder, bool)]) -> bool {
    seen.iter().any(|(_, held)| !held)
}
