//! How a run ended, named once for all who read it: its exit status, its history entry, the
//! metrics, the pings and its `exiting` line are all made from an `Outcome`. A run that held
//! the lock ends `Ran`, or as it was stopped; when its release (or, for `redlock history`, a
//! majority of the servers' records) finds its token gone, it was `found_lost`. The servers'
//! scripts record facts (whether they still held the token); they decide nothing.

use serde::{Deserialize, Serialize};

use crate::exit;

/// How a run ended; the names are those of the history, the metrics and the pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The command ran and exited (or could not be started: 126, 127); its status is the run's.
    Ran,
    /// Busy: the lock was not acquired within `--wait`; the command did not run.
    Busy,
    /// Redis could not be reached: the command did not run (or ran without the lock, with
    /// `--on-unavailable run`).
    Unavailable,
    /// The lock was lost while the command ran, or found lost at release (76).
    Lost,
    /// The command ran for its `--timeout` and was stopped (124).
    Timeout,
    /// Another run took over with `--replace` (77).
    Replaced,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Ran,
        Outcome::Busy,
        Outcome::Unavailable,
        Outcome::Lost,
        Outcome::Timeout,
        Outcome::Replaced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Busy => "busy",
            Outcome::Unavailable => "unavailable",
            Outcome::Lost => "lost",
            Outcome::Timeout => "timeout",
            Outcome::Replaced => "replaced",
        }
    }

    /// What a run that held the lock and ended so becomes when no majority held its token at
    /// its release: lost, however its command ended. A run that never held it stays as it was.
    pub fn found_lost(self) -> Outcome {
        match self {
            Outcome::Ran | Outcome::Timeout | Outcome::Replaced => Outcome::Lost,
            other => other,
        }
    }

    /// redlock's exit status for a run that held the lock and ended so, its command's own
    /// status being `status`.
    pub fn held_exit(self, status: u8) -> u8 {
        match self {
            Outcome::Lost => exit::LOCK_LOST,
            Outcome::Timeout => exit::TIMED_OUT,
            Outcome::Replaced => exit::REPLACED,
            Outcome::Ran | Outcome::Busy | Outcome::Unavailable => status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialized_ones() {
        for outcome in Outcome::ALL {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), outcome);
        }
    }

    #[test]
    fn a_held_run_found_lost_exits_76_whatever_its_command_did() {
        for outcome in [
            Outcome::Ran,
            Outcome::Timeout,
            Outcome::Replaced,
            Outcome::Lost,
        ] {
            assert_eq!(outcome.found_lost().held_exit(0), exit::LOCK_LOST);
        }
        assert_eq!(Outcome::Busy.found_lost(), Outcome::Busy);
        assert_eq!(Outcome::Ran.held_exit(3), 3);
        assert_eq!(Outcome::Timeout.held_exit(0), exit::TIMED_OUT);
        assert_eq!(Outcome::Replaced.held_exit(0), exit::REPLACED);
    }
}
