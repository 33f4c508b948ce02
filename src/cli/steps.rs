//! The options of `acquire` and `extend`: a lock held across steps (CI stages, systemd's
//! ExecStartPre and ExecStopPost), with no process watching its lease. `release --token` gives
//! it back (`operators.rs`).

use std::time::Duration;

use clap::Args;

use super::{BusyArgs, ServerArgs, Which};
use crate::duration::parse_positive;

#[derive(Debug, Args)]
pub struct AcquireArgs {
    #[command(flatten)]
    pub lock: Which,

    #[command(flatten)]
    pub servers: ServerArgs,

    #[command(flatten)]
    pub busy: BusyArgs,

    /// Length of the lease: the only bound on the hold (required)
    ///
    /// No process keeps this lease alive or stops anything when it ends: the lock is free once
    /// the TTL is up, unless `redlock extend` renewed it or `redlock release --token` gave it
    /// back first. Give the longest the steps may take. At least 100ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive, allow_hyphen_values = true)]
    pub ttl: Duration,

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
