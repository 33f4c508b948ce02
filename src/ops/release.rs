//! `redlock release`: break a lock on an operator's order.
//!
//! A live holder is asked first, on the lock's control channel, to stop its command and release
//! the lock itself: deleting the lock under a running command would let a waiter start beside
//! it. Only a holder that does not answer in time (a dead host, a stale lock: what `--force`
//! is for) has its lock deleted. The servers are asked in parallel, and the answer is only
//! "broken" when no majority of them can still hold the lock.

use std::thread;
use std::time::Duration;

use anyhow::anyhow;

use crate::cli::ReleaseArgs;
use crate::clock::Moment;
use crate::duration::human;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::view::{self, ASK_MARGIN, Asked, Broken, ServerView, UNKNOWN_KILL_AFTER};
use crate::lock::{Holder, Keys, Tally, Vote, scripts};
use crate::say::{Event, ms, say};
use crate::settings;

use super::majority::{majority_may_hold, most_held_token, summarize};
use super::{servers::Servers, servers::enough_answered, shares};

/// A holder that took the lock less than this long ago may not listen to its control channel
/// yet (`control::LISTEN_AFTER`): it is asked again until it does.
const JUST_STARTED: Duration = Duration::from_secs(1);
/// How long a holder that may be alive (someone listens, or it took the lock just now) is
/// asked, every `POLL`, before its lock is deleted as a dead holder's. A live holder answers
/// within a round trip or two.
const ANSWER_PATIENCE: Duration = Duration::from_secs(2);
/// How often the holder is asked again, and the lock looked at while the holder stops.
const POLL: Duration = Duration::from_millis(20);

pub fn release(args: &ReleaseArgs) -> Result<u8, Failure> {
    if args.token.as_deref() == Some("") {
        return Err(Failure::new(
            Kind::Usage,
            anyhow!("--token must not be empty"),
        ));
    }
    if let Some(token) = &args.token
        && !args.force
    {
        return super::steps::give_back(args, token);
    }
    let keys = settings::keys(&args.lock, &args.servers.prefix()).kind(Kind::Usage)?;
    let mut servers = Servers::open(&args.servers)?;
    if let Some(place) = args.slot {
        let keys = keys.slot(usize::from(place));
        let views = servers.views(&keys);
        let label = format!("'{}' place {place}", args.lock.label());
        return release_place(args, &mut servers, &keys, &label, &views);
    }
    // A semaphore (`run --limit N`): each place that a server holds, in turn. A server that
    // did not answer is not asked again (each request would cost it a time-out more): it
    // counts as not reached.
    let places = servers.places(&keys);
    if places.len() == 1 {
        if let Some(breaks) = shares::one_by_one(args, &places[0]) {
            let mut outcome = 1;
            for (one, label) in breaks {
                if release_place(&one, &mut servers, &keys, &label, &places[0])? == 0 {
                    outcome = 0;
                }
            }
            return Ok(outcome);
        }
        let label = format!("'{}'", args.lock.label());
        return release_place(args, &mut servers, &keys, &label, &places[0]);
    }
    let failed: Vec<&String> = places[0].iter().filter_map(|v| v.error.as_ref()).collect();
    enough_answered(&failed, servers.len())?;
    let held: Vec<usize> = (0..places.len())
        .filter(|&place| places[place].iter().any(|view| view.held))
        .collect();
    if !args.force {
        return Err(Failure::new(
            Kind::Usage,
            anyhow!(
                "not breaking lock '{}' (--limit {}, {} place(s) held) without --force: it \
                 would ask each holder to stop its command and release its place, then delete \
                 the places that are not released, and wake the waiters (--slot K: only place K)",
                args.lock.label(),
                places.len(),
                held.len()
            ),
        ));
    }
    if held.is_empty() {
        say(
            Event::NothingToBreak,
            format!(
                "lock '{}' (--limit {}) has no place held; nothing to break",
                args.lock.label(),
                places.len()
            ),
            &[
                ("reason", "not_held".into()),
                ("limit", places.len().into()),
            ],
        );
    }
    let mut outcome = 1;
    for place in held {
        let label = format!("'{}' place {place}", args.lock.label());
        let keys = keys.slot(place);
        if release_place(args, &mut servers, &keys, &label, &places[0])? == 0 {
            outcome = 0;
        }
    }
    Ok(outcome)
}

/// Breaks one place of a lock (the only one of a plain lock), named `label` in messages.
/// `views`: each server's view of the lock, read just before (a server that failed there is
/// not reached).
fn release_place(
    args: &ReleaseArgs,
    servers: &mut Servers,
    keys: &Keys,
    label: &str,
    views: &[ServerView],
) -> Result<u8, Failure> {
    if !args.force {
        return Err(without_force(args, servers.len(), keys, label, views));
    }
    let mut targets = Targets {
        tokens: vec![args.token.clone(); servers.len()],
        settled: vec![None; servers.len()],
        // A server that failed on an earlier place is not asked again: it may hold this one.
        errors: (views.iter().enumerate())
            .map(|(i, view)| match (&view.error, servers.forgotten(i)) {
                (None, true) => Some(format!("Redis at {}: failed before", view.address)),
                (error, _) => error.clone(),
            })
            .collect(),
    };
    for (i, error) in targets.errors.iter().enumerate() {
        if error.is_some() {
            servers.forget(i);
        }
    }
    if !args.now {
        let Some(answers) = ask_to_stop(args, servers, keys, label, &mut targets) else {
            return Ok(0);
        };
        if let Some((asked, kill_after)) = heard(&answers) {
            if wait_for_holder(servers, keys, label, &asked, kill_after) {
                return Ok(0);
            }
            targets.tokens.fill(Some(asked));
        }
    }
    delete(servers, keys, label, targets)
}

/// What each server's lock is deleted with.
struct Targets {
    /// The token each server's lock must still hold to be deleted (`None`: any).
    tokens: Vec<Option<String>>,
    /// What a server was found to hold, when that settles it without a second request.
    settled: Vec<Option<Broken>>,
    /// Why a server was not reached (it is not asked again).
    errors: Vec<Option<String>>,
}

/// The refusal without --force: what breaking the lock would do.
fn without_force(
    args: &ReleaseArgs,
    total: usize,
    keys: &Keys,
    label: &str,
    views: &[ServerView],
) -> Failure {
    let holder = match summarize(args.lock.label(), views.to_vec()) {
        Ok(status) => status.holder.map(|view| view.holder),
        Err(failure) => return failure,
    };
    let plan = match &holder {
        Some(holder) if holder.shared.is_some() => shares::plan(holder, total, keys),
        // A lock library's holder (or a key set by hand) hears nothing of it, and goes on.
        Some(holder) if holder.host.is_none() => format!(
            "it would delete {} on {total} server(s) and wake its waiters; its holder, {holder}, \
             cannot be asked to stop, and would go on as if it held the lock",
            keys.lock
        ),
        _ => format!(
            "it would ask its holder ({}) to stop its command and release the lock, then \
             delete {} on {total} server(s) if it does not, and wake its waiters",
            holder.map_or("nobody".to_string(), |holder| format!("{holder:#}")),
            keys.lock
        ),
    };
    Failure::new(
        Kind::Usage,
        anyhow!("not breaking lock {label} without --force: {plan}"),
    )
}

/// Asks the holder, on its control channel, to stop its command and release the lock, until
/// it says it heard, nobody may answer any more, or `ANSWER_PATIENCE` is over: the last
/// answers then. `None` when the holder let go meanwhile (the run is done).
fn ask_to_stop(
    args: &ReleaseArgs,
    servers: &mut Servers,
    keys: &Keys,
    label: &str,
    targets: &mut Targets,
) -> Option<Vec<Asked>> {
    let first_ask = Moment::now();
    // The token the lock held when first asked: the one asked to stop.
    let mut asked_first: Option<String> = None;
    loop {
        let token = args.token.as_deref();
        let asked = servers.ask(
            |_| Some(scripts::ask_to_stop(keys, token, scripts::Ask::Stop)),
            view::asked,
        );
        let mut answers = Vec::new();
        for (i, answer) in asked.into_iter().enumerate() {
            match answer {
                Some(Ok(asked)) => {
                    // What the server held then, and nothing taken since: a lock a waiter
                    // took meanwhile is not ours to break.
                    (targets.tokens[i], targets.settled[i]) = match (&asked.token, &args.token) {
                        (None, _) => (None, Some(Broken::NotHeld)),
                        (Some(held), Some(wanted)) if held != wanted => {
                            (None, Some(Broken::OtherToken))
                        }
                        (Some(held), _) => (Some(held.clone()), None),
                    };
                    answers.push(asked);
                }
                // Failed before, and not asked again.
                None => {}
                Some(Err(e)) => {
                    // Not asked again: it would only take the time-out once more.
                    servers.forget(i);
                    targets.errors[i] = Some(format!("{e:#}"));
                }
            }
        }
        if heard(&answers).is_some() {
            return Some(answers);
        }
        match &asked_first {
            // Asked again, and a majority no longer holds it: the holder let go (stopped
            // its command and released it before its answer was seen, or its command ended).
            Some(token) if !majority_may_hold(&answers, &targets.errors, token) => {
                say(
                    Event::HolderReleased,
                    format!("the holder of {label} stopped its command and released the lock"),
                    &[],
                );
                return None;
            }
            Some(_) => {}
            None => asked_first = most_held_token(&answers),
        }
        // Someone may still answer, for a moment: a listener (the holder, about to say it
        // heard; or another run, which never will), or a holder that took the lock just now
        // and does not listen yet (`control::LISTEN_AFTER`). Asked again until then.
        let may_answer = answers.iter().any(|asked| {
            asked.token.is_some()
                && !asked.ended
                && (asked.listeners > 0 || asked.age.is_some_and(|age| age < JUST_STARTED))
        });
        if !may_answer {
            return Some(answers);
        }
        if first_ask.elapsed() >= ANSWER_PATIENCE {
            say(
                Event::NoAnswer,
                format!(
                    "no holder of {} answered within {} (gone, or not running); \
                     deleting the lock",
                    label,
                    human(ANSWER_PATIENCE)
                ),
                &[("wait_ms", ms(ANSWER_PATIENCE))],
            );
            return Some(answers);
        }
        thread::sleep(POLL);
    }
}

/// Waits for the holder that heard (holding `token`) to stop its command and release the
/// lock: its --kill-after and `ASK_MARGIN`. True when it let go in time.
fn wait_for_holder(
    servers: &mut Servers,
    keys: &Keys,
    label: &str,
    token: &str,
    kill_after: Duration,
) -> bool {
    let patience = kill_after + ASK_MARGIN;
    say(
        Event::Asking,
        format!(
            "asked the holder of {} to stop its command and release the lock; \
             waiting up to {} (its --kill-after of {}, plus {})",
            label,
            human(patience),
            human(kill_after),
            human(ASK_MARGIN)
        ),
        &[
            ("wait_ms", ms(patience)),
            ("kill_after_ms", ms(kill_after)),
            ("margin_ms", ms(ASK_MARGIN)),
        ],
    );
    if holder_let_go(servers, keys, token, patience) {
        say(
            Event::HolderReleased,
            format!("the holder of {label} stopped its command and released the lock"),
            &[],
        );
        return true;
    }
    say(
        Event::NotReleased,
        format!(
            "the holder of {} did not release the lock within {}; deleting it",
            label,
            human(patience)
        ),
        &[("wait_ms", ms(patience))],
    );
    false
}

/// Deletes the lock on every server not settled yet, holding the token it must hold there.
fn delete(
    servers: &mut Servers,
    keys: &Keys,
    label: &str,
    mut targets: Targets,
) -> Result<u8, Failure> {
    let outcomes = servers.ask(
        |i| {
            let token = targets.tokens[i].as_deref();
            targets.settled[i]
                .is_none()
                .then(|| scripts::break_lock(keys, token))
        },
        view::broken,
    );
    let mut broken = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        // A server whose answer to the ask settled it was not asked again; one that failed
        // since (forgotten) counts as failed, whatever it said before.
        let outcome = match targets.errors[i] {
            Some(_) => None,
            None => targets.settled[i].map(Ok).or(outcome),
        };
        match outcome {
            // It failed already, and was not asked again.
            None => {}
            Some(Ok(outcome)) => broken.push(outcome),
            Some(Err(e)) => targets.errors[i] = Some(format!("{e:#}")),
        }
    }
    report(label, servers.len(), &broken, &targets.errors)
}

/// The token of a holder that said it heard the request and stops its command, and its
/// --kill-after: `None` when no holder said so.
fn heard(answers: &[Asked]) -> Option<(String, Duration)> {
    let stopping: Vec<Asked> = answers.iter().filter(|a| a.stopping).cloned().collect();
    let kill_after = stopping.iter().filter_map(|asked| asked.kill_after).max();
    let token = most_held_token(&stopping)?;
    Some((token, kill_after.unwrap_or(UNKNOWN_KILL_AFTER)))
}

/// Waits until no majority holds `token` any more (the holder stopped its command and
/// released it), up to `patience`. A read that fails (a server slow for a moment) tells
/// nothing: the wait goes on. False when it was not seen released by then.
fn holder_let_go(servers: &mut Servers, keys: &Keys, token: &str, patience: Duration) -> bool {
    let deadline = Moment::now() + patience;
    loop {
        let views = servers.views(keys);
        let holds = |h: &Holder| h.token.as_deref() == Some(token);
        let tally = Tally::of(views.iter().map(|v| match &v.error {
            Some(_) => Vote::Unknown,
            None if holds(&v.holder) || v.readers.iter().any(holds) => Vote::For(()),
            None => Vote::Against,
        }));
        // Seen released only by a majority that answered: one that did not tells nothing.
        if !tally.too_few_answered() && tally.no() {
            return true;
        }
        if Moment::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// The outcome: 0 once no majority can hold the lock any more and something was deleted, 1 when
/// nothing was held, 69 when the servers that did not answer could still be a majority.
fn report(
    name: &str,
    total: usize,
    broken: &[Broken],
    errors: &[Option<String>],
) -> Result<u8, Failure> {
    let deleted = broken.iter().filter(|b| **b == Broken::Deleted).count();
    let unreached: Vec<&str> = errors.iter().flatten().map(String::as_str).collect();
    // A server that did not answer may still hold it; every other one no longer does.
    if Tally::counted(0, total - unreached.len(), total).may_win(&()) {
        return Err(Failure::new(
            Kind::Unavailable,
            anyhow!(
                "cannot tell whether lock {name} is broken: deleted on {deleted} of {total} \
                 server(s), and a majority may still hold it; {}",
                unreached.join("; ")
            ),
        ));
    }
    if deleted > 0 {
        let unreached = match unreached.is_empty() {
            true => String::new(),
            false => format!("; not reached: {}", unreached.join("; ")),
        };
        say(
            Event::Broken,
            format!("broke lock {name} on {deleted} of {total} server(s){unreached}"),
            &[("deleted", deleted.into()), ("servers", total.into())],
        );
        return Ok(0);
    }
    if broken.contains(&Broken::OtherToken) {
        say(
            Event::NothingToBreak,
            format!("lock {name} holds another token; nothing was broken"),
            &[("reason", "other_token".into())],
        );
    } else {
        say(
            Event::NothingToBreak,
            format!("lock {name} is not held; nothing to break"),
            &[("reason", "not_held".into())],
        );
    }
    Ok(1)
}
