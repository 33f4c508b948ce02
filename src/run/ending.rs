//! redlock's exit status at the end of a run that held the lock, and the line that says why
//! when it is not the command's own.

use std::process::ExitStatus;

use crate::exit;
use crate::report::{Facts, Outcome};
use crate::run::lapse::Lapse;
use crate::run::supervise::Stop;
use crate::say::{Event, say};

/// redlock's exit status, from how the run ended (`Facts::held`): the command's own, or 76 if
/// the lock was lost (and then why: `lapse`, for a lock the release found gone), 77 when
/// replaced, 124 at --timeout; said in an `exiting` line unless it is the command's.
pub fn exit_status(status: ExitStatus, stopped: Option<Stop>, facts: &Facts, lapse: &Lapse) -> u8 {
    let outcome = facts.held();
    let code = outcome.held_exit(exit::status_code(status));
    let own = exit::describe_status(status);
    let lost = |why: &str| format!("exiting with 76: {why}; the command's own status was {own}");
    let (reason, message) = match (outcome, stopped) {
        (Outcome::Ran | Outcome::Busy | Outcome::Unavailable, _) => return code,
        (Outcome::Timeout, _) => (
            "timeout",
            format!(
                "exiting with 124: the command ran for its --timeout; its own status was {own}"
            ),
        ),
        (Outcome::Replaced, _) => (
            "replaced",
            format!(
                "exiting with 77: replaced by another run (--replace); the command's own status \
                 was {own}"
            ),
        ),
        (Outcome::Lost, Some(Stop::Lost(_))) => ("lost", lost("the lock was lost")),
        (Outcome::Lost, Some(Stop::Asked)) if facts.lost_at_release => (
            "broken",
            lost(
                "the lock was broken by `redlock release --force` (it deleted the lock before \
                 this run could let it go)",
            ),
        ),
        (Outcome::Lost, Some(Stop::Asked)) => (
            "broken",
            lost("the lock was broken by `redlock release --force` (this run let it go)"),
        ),
        (Outcome::Lost, Some(Stop::Replaced)) => (
            "lost",
            lost("the lock was lost (found at release, after --replace asked for it)"),
        ),
        (Outcome::Lost, Some(Stop::TimedOut)) => (
            "lost",
            lost("the lock was lost (found at release, after --timeout stopped the command)"),
        ),
        (Outcome::Lost, None) => (
            "lost",
            format!("lock lost: found at release that {lapse}; the command's own status was {own}"),
        ),
    };
    let fields = [
        ("exit_code", code.into()),
        ("reason", reason.into()),
        ("status", exit::status_code(status).into()),
    ];
    say(Event::Exiting, message, &fields);
    code
}
