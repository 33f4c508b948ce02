//! The options of `acquire` and `extend`: a lock held across steps (CI stages, systemd's
//! ExecStartPre and ExecStopPost), with no process watching its lease. `release --token` gives
//! it back (`operators.rs`).

use std::time::Duration;

use clap::Args;

use super::{ServerArgs, Which};
use crate::duration::{parse_duration, parse_positive};
use crate::exit;

#[derive(Debug, Args)]
pub struct AcquireArgs {
    #[command(flatten)]
    pub lock: Which,

    #[command(flatten)]
    pub servers: ServerArgs,

    /// Length of the lease: the only bound on the hold (required)
    ///
    /// No process keeps this lease alive or stops anything when it ends: the lock is free once
    /// the TTL is up, unless `redlock extend` renewed it or `redlock release --token` gave it
    /// back first. Give the longest the steps may take. At least 100ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive, allow_hyphen_values = true)]
    pub ttl: Duration,

    /// How long to wait for a busy lock (0: try once)
    ///
    /// As `redlock run --wait`: in the queue of waiters, woken by the holder's release. When the
    /// time is up it exits with the busy status.
    #[arg(short, long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub wait: Duration,

    /// Sleep a random time up to DURATION before the first try
    ///
    /// As `redlock run --jitter`: so that the same host does not win every time, and a fleet
    /// does not reach Redis in the same millisecond. --wait counts from the first try.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub jitter: Duration,

    /// Print shell assignments to `eval`, instead of the token and fence
    ///
    /// `export REDLOCK_NAME=...` (REDLOCK_KEY with --key), `export REDLOCK_TOKEN=...` and
    /// `export REDLOCK_FENCE=...`, quoted for sh: `eval "$(redlock acquire ... --export)"`.
    #[arg(long)]
    pub export: bool,

    /// Record TEXT instead of the command line
    ///
    /// What status, list and the busy message on other hosts show as the holder's command (by
    /// default this acquire's command line, credentials hidden).
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,

    /// Exit status when the lock is busy
    ///
    /// 0 to 255, as `redlock run -E`.
    #[arg(short = 'E', long, value_name = "N", default_value_t = exit::BUSY,
          value_parser = clap::value_parser!(u8), allow_negative_numbers = true)]
    pub conflict_exit_code: u8,

    /// Print nothing when the lock is busy
    ///
    /// Other errors are still printed.
    #[arg(short, long)]
    pub quiet: bool,

    /// Report what happens, with timings, on stderr
    ///
    /// The jitter slept, waiting (and for whom), and the acquire.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    #[command(flatten)]
    pub lock: Which,

    #[command(flatten)]
    pub servers: ServerArgs,

    /// The token `redlock acquire` printed (required)
    ///
    /// Only a lock that still holds this token is extended: one that expired, was broken or
    /// was taken by another holder is not, and extend exits with 76.
    #[arg(long, value_name = "TOKEN")]
    pub token: String,

    /// The new lease, from now (required)
    ///
    /// The lock is held for this long from the moment the servers extend it, whatever was
    /// left of the lease before. At least 100ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive, allow_hyphen_values = true)]
    pub ttl: Duration,

    /// Report what happens, with timings, on stderr
    ///
    /// The extension and how long the servers took.
    #[arg(short, long)]
    pub verbose: bool,
}
