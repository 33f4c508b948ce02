//! `--ping URL`: health-check pings, as healthchecks.io takes them.

use std::time::Duration;

use super::Report;
use crate::cli::PingBusy;

/// The pings of one run.
pub struct Pings {}

impl Pings {
    pub fn new(_url: &str, _timeout: Duration, _busy: PingBusy) -> Self {
        Pings {}
    }

    /// The lock is ours and the command about to start: `URL/start`, in the background.
    pub fn start(&mut self) {}

    /// The run is over: the final ping, bounded by the time-out.
    pub fn finish(&mut self, _report: &Report) {}
}
