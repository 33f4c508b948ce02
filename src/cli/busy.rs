//! How a command that takes a lock (`run`, `acquire`) meets a busy one: how long it waits, the
//! random sleep before its first try, and the status and silence of a busy lock. One set of
//! options for both, so that they cannot drift apart.

use std::time::Duration;

use clap::Args;

use crate::duration::parse_duration;
use crate::exit;

#[derive(Debug, Args)]
pub struct BusyArgs {
    /// How long to wait for a busy lock (0: try once)
    ///
    /// A waiter sleeps until a release notice or the holder's expiry, not in a polling loop, and
    /// takes over at once. When the time is up it exits with the busy status.
    #[arg(short, long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub wait: Duration,

    /// Sleep a random time up to DURATION before the first try
    ///
    /// So that the same host does not win every night's run, and a fleet's cron does not reach
    /// Redis in the same millisecond: each run sleeps its own random share of DURATION, then
    /// tries. With `run --min-hold`, the fleet's runs are spread over the window. --wait counts
    /// from the first try; a signal during the sleep ends the run as it would end a wait.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub jitter: Duration,

    /// Exit status when the lock is busy
    ///
    /// 0 to 255. Choose one the command never uses, so that a script can tell them apart;
    /// -E 0 -q makes a busy lock a silent success.
    ///
    /// Also the status of `run --on-unavailable skip`.
    #[arg(short = 'E', long, value_name = "N", default_value_t = exit::BUSY,
          value_parser = clap::value_parser!(u8), allow_negative_numbers = true)]
    pub conflict_exit_code: u8,

    /// Print nothing when the lock is busy
    ///
    /// cron mails any output; other errors are still printed.
    #[arg(short, long)]
    pub quiet: bool,
}
