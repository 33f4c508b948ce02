//! How a lease ended that this run did not let go of, in words: the heartbeat that finds the
//! token gone, the supervisor whose extensions were not confirmed in time, and the release that
//! finds the lock no longer ours all say it here. A lease that ran out while servers did not
//! answer is not a lock "taken by another holder": the words say which, and name the servers
//! that did not answer.

use std::time::Duration;

use crate::clock::Moment;
use crate::duration::human;

/// The ways a lease ends without our release.
#[derive(Debug, PartialEq, Eq)]
pub enum Lapse<'a> {
    /// Servers answered that our token is gone while the lease was still ours: deleted,
    /// broken, or taken by another holder.
    Taken,
    /// No majority confirmed an extension before `kill_after` of the lease was left;
    /// `failures`: what the servers that did not confirm said, if anything.
    NotExtended {
        kill_after: Duration,
        failures: Option<&'a str>,
    },
    /// Found gone once the lease had already run out (a server frozen or cut off past it
    /// answered late): it expired, nobody took it from us.
    RanOut { failures: Option<&'a str> },
}

impl<'a> Lapse<'a> {
    /// The token was found gone at `now`, with the lease confirmed until `lease_end` and the
    /// last extensions' `failures`.
    pub fn found_gone(now: Moment, lease_end: Moment, failures: Option<&'a str>) -> Self {
        if now >= lease_end {
            Lapse::RanOut { failures }
        } else {
            Lapse::Taken
        }
    }
}

impl std::fmt::Display for Lapse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let said = |failures: &Option<&str>| match failures {
            Some(failures) => format!(" ({failures})"),
            None => String::new(),
        };
        match self {
            Lapse::Taken => f.write_str("the lock was deleted or taken by another holder"),
            Lapse::NotExtended {
                kill_after,
                failures,
            } => write!(
                f,
                "the lease could not be extended before {} of it was left{}",
                human(*kill_after),
                said(failures)
            ),
            Lapse::RanOut { failures } => write!(
                f,
                "the lease ran out: no majority of the servers confirmed an extension in time{}",
                said(failures)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_that_ran_out_is_not_called_taken() {
        let now = Moment::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(Lapse::found_gone(now, later, None), Lapse::Taken);
        let failures = Some("Redis at 127.0.0.1:7001: no answer in time");
        let ran_out = Lapse::found_gone(later, now, failures);
        assert_eq!(ran_out, Lapse::RanOut { failures });
        assert_eq!(
            ran_out.to_string(),
            "the lease ran out: no majority of the servers confirmed an extension in time \
             (Redis at 127.0.0.1:7001: no answer in time)"
        );
        assert_eq!(
            Lapse::Taken.to_string(),
            "the lock was deleted or taken by another holder"
        );
        let not_extended = Lapse::NotExtended {
            kill_after: Duration::from_millis(250),
            failures,
        };
        assert_eq!(
            not_extended.to_string(),
            "the lease could not be extended before 250ms of it was left \
             (Redis at 127.0.0.1:7001: no answer in time)"
        );
    }
}
