//! The run history kept next to the lock (`PREFIX:{NAME}:history`): each run that ends adds
//! one entry, written by the script that run sends anyway (`history.lua` is prepended to
//! acquire.lua, leave.lua and release.lua), so that recording costs no request of its own.
//! Each server keeps its own list; `redlock history` merges them by token.

use serde::{Deserialize, Serialize};

use super::holder::HolderInfo;
use crate::clock::Moment;
use crate::outcome::Outcome;

/// One run as the history keeps it. The field names are the documented JSON of `redlock
/// history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The run's token: the same run on several servers is one entry.
    pub token: String,
    pub host: String,
    pub pid: u32,
    pub user: String,
    pub command: String,
    /// `ran`, `busy`, `unavailable`, `lost`, `timeout` or `replaced`.
    pub outcome: Outcome,
    /// redlock's exit status; none when it gave the command its place (`--on-unavailable
    /// run`).
    pub exit: Option<u8>,
    /// The command's own status, when it ran.
    pub status: Option<u8>,
    /// How long the run waited for the lock.
    pub wait_ms: u64,
    /// How long its command ran, when it ran.
    pub run_ms: Option<u64>,
    pub fence: Option<u64>,
    /// A semaphore's place (`run --limit`).
    pub slot: Option<usize>,
    /// How many servers the lock has.
    pub servers: usize,
    /// When the server recorded it (its clock, ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<i64>,
    /// Whether the server still held the run's token at its release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<bool>,
}

/// What a run records, and how (`run --history N`).
#[derive(Debug, Clone)]
pub struct Record {
    /// How many entries the history keeps.
    pub cap: usize,
    /// When the run began, for its wait.
    pub began: Moment,
    pub me: HolderInfo,
    /// The status a busy run exits with (`-E`).
    pub busy_exit: u8,
    /// The status a run that found too few servers exits with: none when it runs its command
    /// without the lock (`--on-unavailable run`).
    pub unavailable_exit: Option<u8>,
}

/// How a run that held the lock ended, as it knows before its release (which may find the
/// lock lost: `history.lua` and `redlock history` decide that).
#[derive(Debug, Clone, Copy)]
pub struct Ending {
    pub outcome: Outcome,
    pub exit: u8,
    pub status: Option<u8>,
    pub wait_ms: u64,
    pub run_ms: u64,
    pub fence: u64,
}

impl Record {
    /// The entry of a run that did not get the lock: `busy`, or `unavailable`, when
    /// `--on-unavailable` applies if `policy` (not when the servers that answered said the lock
    /// is held, or a key of another type is in the way: the run exits with 69 then).
    pub fn without_lock(
        &self,
        token: &str,
        servers: usize,
        outcome: Outcome,
        policy: bool,
    ) -> String {
        let exit = match outcome {
            Outcome::Busy => Some(self.busy_exit),
            _ if policy => self.unavailable_exit,
            _ => Some(crate::exit::UNAVAILABLE),
        };
        self.entry(Entry {
            outcome,
            exit,
            status: None,
            run_ms: None,
            fence: None,
            slot: None,
            ..self.base(token, servers)
        })
    }

    /// The entry of a run that held place `place` of the lock.
    pub fn with_lock(&self, token: &str, servers: usize, place: usize, ending: Ending) -> String {
        self.entry(Entry {
            outcome: ending.outcome,
            exit: Some(ending.exit),
            status: ending.status,
            wait_ms: ending.wait_ms,
            run_ms: Some(ending.run_ms),
            fence: Some(ending.fence),
            slot: Some(place),
            ..self.base(token, servers)
        })
    }

    fn base(&self, token: &str, servers: usize) -> Entry {
        Entry {
            token: token.to_string(),
            host: self.me.host.clone(),
            pid: self.me.pid,
            user: self.me.user.clone(),
            command: self.me.command.clone(),
            outcome: Outcome::Ran,
            exit: None,
            status: None,
            wait_ms: self.began.elapsed().as_millis() as u64,
            run_ms: None,
            fence: None,
            slot: None,
            servers,
            end_ms: None,
            held: None,
        }
    }

    fn entry(&self, entry: Entry) -> String {
        serde_json::to_string(&entry).expect("plain data")
    }
}
