//! What became of a run, for those who watch the jobs: the Prometheus textfile (`metrics.rs`)
//! and the health-check pings (`pings.rs`); and how a run that held the lock ended, for the
//! history its release records (`Facts::ending`). A run's facts are gathered as it goes
//! (`Facts`) and turned into one `Report` when it ends.

mod exposition;
pub mod metrics;
pub mod pings;

use std::time::{Duration, SystemTime};

use crate::clock::Moment;
use crate::exit::{Failure, Kind};
use crate::lock::history::Ending;
pub use crate::outcome::Outcome;

fn millis(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The lock's name.
    pub name: String,
    pub outcome: Outcome,
    /// redlock's exit status.
    pub exit_code: u8,
    /// When the run began, before it waited for the lock (this machine's clock).
    pub began: SystemTime,
    /// How long it waited for the lock: until it got it, or gave up.
    pub waited: Duration,
    /// When the command started and how long it ran, when it ran.
    pub started: Option<SystemTime>,
    pub ran: Option<Duration>,
    /// The fencing token the command was given.
    pub fence: Option<u64>,
    /// redlock's own one-line summary (a ping's body).
    pub summary: String,
}

/// What a run has found out so far, filled in as it goes (`run::run`).
#[derive(Debug)]
pub struct Facts {
    began: SystemTime,
    began_at: Moment,
    /// When the lock was granted, and its fence.
    pub acquired: Option<(Moment, u64)>,
    /// When the command started, by both clocks.
    pub started: Option<(SystemTime, Moment)>,
    /// When the command ended, and its status.
    pub ended: Option<(Moment, u8)>,
    /// How it was stopped, when it was (a lost lock, --timeout, --replace).
    pub stopped: Option<Outcome>,
    /// The lock turned out to be lost at release.
    pub lost_at_release: bool,
    /// Redis was unavailable (also when `--on-unavailable skip` made it a busy status).
    pub unavailable: bool,
    /// Reported already (`--on-unavailable run` reports before the command takes its place).
    pub reported: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            began: SystemTime::now(),
            began_at: Moment::now(),
            acquired: None,
            started: None,
            ended: None,
            stopped: None,
            lost_at_release: false,
            unavailable: false,
            reported: false,
        }
    }
}

impl Facts {
    /// When the run began.
    pub fn began_at(&self) -> Moment {
        self.began_at
    }

    /// How a run that held the lock ended, as it knows before its release (for the history):
    /// its command's status `code`.
    pub fn ending(&self, code: u8) -> Ending {
        let outcome = self.held();
        let exit = outcome.held_exit(code);
        let at = |moment: Option<Moment>| moment.unwrap_or_else(Moment::now);
        let acquired = at(self.acquired.map(|(at, _)| at));
        let started = at(self.started.map(|(_, at)| at));
        let ended = at(self.ended.map(|(at, _)| at));
        Ending {
            outcome,
            exit,
            status: Some(code),
            wait_ms: millis(acquired.saturating_duration_since(self.began_at)),
            run_ms: millis(ended.saturating_duration_since(started)),
            fence: self.acquired.map_or(0, |(_, fence)| fence),
        }
    }

    /// How a run that held the lock ended: as its command was stopped, or `Ran`; lost when
    /// its release found the lock gone.
    pub fn held(&self) -> Outcome {
        let outcome = self.stopped.unwrap_or(Outcome::Ran);
        match self.lost_at_release {
            true => outcome.found_lost(),
            false => outcome,
        }
    }

    /// The ending of a run whose command could not be started: `code` is 126 or 127.
    pub fn not_started(&self, code: u8) -> Ending {
        Ending {
            run_ms: 0,
            ..self.ending(code)
        }
    }

    /// How the run ends with `result`: `None` when nothing worth recording happened (a usage
    /// error, an interrupted wait, an internal error, another `--limit`).
    pub fn outcome(&self, result: &Result<u8, Failure>) -> Option<Outcome> {
        if self.unavailable {
            return Some(Outcome::Unavailable);
        }
        match result {
            Ok(_) => Some(self.held()),
            Err(failure) => match failure.kind {
                Kind::Busy => Some(Outcome::Busy),
                Kind::Unavailable | Kind::UnavailableNoPolicy => Some(Outcome::Unavailable),
                Kind::CannotExecute | Kind::NotFound if self.acquired.is_some() => {
                    Some(Outcome::Ran)
                }
                _ => None,
            },
        }
    }

    /// The run's report, when it ends with `result` (see `outcome`); `busy_code` is `-E`.
    pub fn report(
        &mut self,
        name: &str,
        result: &Result<u8, Failure>,
        busy_code: u8,
    ) -> Option<Report> {
        if std::mem::replace(&mut self.reported, true) {
            return None;
        }
        let outcome = self.outcome(result)?;
        let exit_code = match result {
            Ok(code) => *code,
            Err(failure) => failure.exit_code(busy_code),
        };
        let status = match (self.ended, result) {
            (Some((_, status)), _) => Some(status),
            (None, Err(failure)) if outcome == Outcome::Ran => Some(failure.exit_code(busy_code)),
            _ => None,
        };
        let waited = match self.acquired {
            Some((at, _)) => at.saturating_duration_since(self.began_at),
            None => self.began_at.elapsed(),
        };
        let ran = match (self.started, self.ended) {
            (Some((_, from)), Some((to, _))) => Some(to.saturating_duration_since(from)),
            _ => None,
        };
        let summary = summary(name, outcome, exit_code, status, ran, result);
        Some(Report {
            name: name.to_string(),
            outcome,
            exit_code,
            began: self.began,
            waited,
            started: self.started.map(|(at, _)| at),
            ran,
            fence: self.acquired.map(|(_, fence)| fence),
            summary,
        })
    }
}

/// `redlock: 'backup' ran for 41s on db2: exit 0`, or the failure's own message.
fn summary(
    name: &str,
    outcome: Outcome,
    exit_code: u8,
    status: Option<u8>,
    ran: Option<Duration>,
    result: &Result<u8, Failure>,
) -> String {
    let host = crate::lock::host_name();
    let ran = ran.map_or(String::new(), |ran| {
        format!(" for {}", crate::duration::human(ran))
    });
    let status = status.map_or(String::new(), |status| format!(", the command's {status}"));
    let why = match result {
        Err(failure) => format!(": {failure}"),
        Ok(_) => String::new(),
    };
    format!(
        "redlock: '{name}' on {host}: {}{ran}, exit {exit_code}{status}{why}",
        outcome.as_str()
    )
}

/// What a run does once it is over: the metrics file and the final ping.
pub fn finished(
    report: &Report,
    metrics_dir: Option<&std::path::Path>,
    pings: Option<&mut pings::Pings>,
) {
    if let Some(dir) = metrics_dir {
        metrics::write(dir, report);
    }
    if let Some(pings) = pings {
        pings.finish(report);
    }
}
