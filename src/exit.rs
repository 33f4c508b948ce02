//! Exit statuses: redlock's own, documented in the README and man page, and the command's.
//! [`RUN`] and [`OPERATORS`] are the one table of them: `--help` and the man pages are
//! rendered from it, and a test checks the README's copy against `--help` and the man pages.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Usage error: bad flag, duration, URL or an unsafe combination (EX_USAGE).
pub const USAGE: u8 = 64;
/// Redis unavailable before the command ran: connect, auth, timeout, key in the way (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// Internal error (EX_SOFTWARE).
pub const INTERNAL: u8 = 70;
/// Busy: not acquired within `--wait` (EX_TEMPFAIL); `-E` changes it.
pub const BUSY: u8 = 75;
/// The lease was lost while the command ran, and the command was terminated.
pub const LOCK_LOST: u8 = 76;
/// Another run took the lock over with `--replace`; the command was stopped.
pub const REPLACED: u8 = 77;
/// The lock is held with another `--limit` than this run's (EX_CONFIG).
pub const LIMIT_MISMATCH: u8 = 78;
/// The command ran for its `--timeout` and was stopped, as `timeout(1)` exits.
pub const TIMED_OUT: u8 = 124;
/// The command exists but could not be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;

/// The first column of an exit-status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Whatever the command exited with.
    Command,
    /// 128 + the number of the signal that killed the command.
    Signal,
    Code(u8),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Command => f.write_str("the command's"),
            Status::Signal => f.write_str("128+N"),
            Status::Code(code) => write!(f, "{code}"),
        }
    }
}

/// `redlock run`'s statuses, in the order a script checks them. A meaning is written as the
/// README writes it, code in backquotes: `--help` drops them, the man page sets it in bold.
pub const RUN: &[(Status, &str)] = &[
    (
        Status::Command,
        "the command ran and exited: its status, unchanged",
    ),
    (
        Status::Signal,
        "the command was killed by signal N (also when redlock is interrupted by signal N while \
         it waits for the lock)",
    ),
    (
        Status::Code(BUSY),
        "busy: the lock was not acquired within `--wait`; the command did not run (EX_TEMPFAIL; \
         `-E` changes it)",
    ),
    (
        Status::Code(UNAVAILABLE),
        "Redis unavailable before the command ran: cannot connect, wrong or missing password, no \
         answer within the timeout, or a key of the wrong type in the way (EX_UNAVAILABLE)",
    ),
    (
        Status::Code(USAGE),
        "usage error: bad flag, duration, name or URL, or an unsafe combination (EX_USAGE)",
    ),
    (
        Status::Code(LIMIT_MISMATCH),
        "the lock is held with another `--limit` than this run's (every run of a name must use \
         the same N; the message says which is in force); the command did not run (EX_CONFIG)",
    ),
    (
        Status::Code(LOCK_LOST),
        "the lock was lost: deleted, broken by `redlock release --force` (which asks a live \
         holder to stop first), taken by another holder, or not extended in time. Noticed while \
         the command ran, the command was stopped (SIGTERM, then SIGKILL after `--kill-after`); \
         found at release, the command had ended. Never 0 for a run that lost its lock. The \
         last `redlock:` line gives the command's own status",
    ),
    (
        Status::Code(REPLACED),
        "replaced: another run asked for the lock with `--replace`; the command was stopped \
         (SIGTERM, then SIGKILL after `--kill-after`) and the lock handed over. The last \
         `redlock:` line gives the command's own status",
    ),
    (
        Status::Code(TIMED_OUT),
        "the command ran for its `--timeout` and was stopped (SIGTERM, then SIGKILL after \
         `--kill-after`); the lock was released at once, as `timeout(1)` exits",
    ),
    (
        Status::Code(CANNOT_EXECUTE),
        "the command exists but cannot be executed (a script without a `#!` line is run with \
         `/bin/sh`, as `execvp` does)",
    ),
    (Status::Code(NOT_FOUND), "the command was not found"),
    (
        Status::Code(INTERNAL),
        "internal error: redlock itself could not work (e.g. out of file descriptors), or a bug \
         (EX_SOFTWARE)",
    ),
];

/// The statuses of `status`, `list`, `release`, `history`, `acquire` and `extend`.
pub const OPERATORS: &[(Status, &str)] = &[
    (
        Status::Code(0),
        "`status`: the lock is held; `list`, `history`: done; `release`: no majority of the \
         servers holds the lock any more (its holder released it when asked, or it was \
         deleted); `acquire`: the lock is ours; `extend`: renewed; `release --token` without \
         `--force`: given back",
    ),
    (
        Status::Code(1),
        "`status`: the lock is free; `release`: there was nothing to break (free, or another \
         token)",
    ),
    (
        Status::Code(USAGE),
        "usage error, and `release` without `--force` or `--token`",
    ),
    (
        Status::Code(UNAVAILABLE),
        "Redis unavailable: too few servers answered; for `release`, too few to know that no \
         majority holds the lock (the message names them)",
    ),
    (
        Status::Code(BUSY),
        "`acquire`: busy, not acquired within `--wait` (`-E` changes it)",
    ),
    (
        Status::Code(LOCK_LOST),
        "`extend`, and `release --token` without `--force`: the lock no longer held the token \
         (its lease ran out, or it was broken or taken)",
    ),
    (
        Status::Code(LIMIT_MISMATCH),
        "`acquire`: the lock is held as a semaphore (`run --limit N`)",
    ),
];

/// What went wrong, as far as a calling script needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Usage,
    Unavailable,
    /// Unavailable, but no reason for `--on-unavailable` to run or skip: the lock was seen held
    /// by another run (alive, as far as anyone knows), or a key of another type is in the way
    /// (the servers answered: it is not theirs to be unreachable).
    UnavailableNoPolicy,
    Busy,
    /// Held with another `--limit`.
    LimitMismatch,
    CannotExecute,
    NotFound,
    /// Interrupted by signal N before the command started: exit as if killed by it.
    Signal(i32),
    Internal,
}

/// An error that ends redlock, with the status it exits with.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub error: anyhow::Error,
    /// What the message states, as fields of its JSON line (src/say.rs): a busy lock's holder.
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl Failure {
    pub fn new(kind: Kind, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            kind,
            error: error.into(),
            fields: Vec::new(),
        }
    }

    pub fn with_fields(self, fields: Vec<(&'static str, serde_json::Value)>) -> Self {
        Failure { fields, ..self }
    }

    /// The exit status; `busy_code` is the one chosen with `-E`.
    pub fn exit_code(&self, busy_code: u8) -> u8 {
        match self.kind {
            Kind::Usage => USAGE,
            Kind::Unavailable | Kind::UnavailableNoPolicy => UNAVAILABLE,
            Kind::Busy => busy_code,
            Kind::LimitMismatch => LIMIT_MISMATCH,
            Kind::CannotExecute => CANNOT_EXECUTE,
            Kind::NotFound => NOT_FOUND,
            Kind::Signal(n) => signal_code(n),
            Kind::Internal => INTERNAL,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Attaches an exit kind to any error.
pub trait Classify<T> {
    fn kind(self, kind: Kind) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Classify<T> for Result<T, E> {
    fn kind(self, kind: Kind) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(kind, e))
    }
}

/// The command's status as a shell reports it: its exit code, else 128 + the signal.
pub fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => signal_code(signal),
        // Stopped or continued: waitpid without WUNTRACED never reports these.
        (None, None) => INTERNAL,
    }
}

/// The command's status for messages: `0`, or `143 (killed by SIGTERM)`.
pub fn describe_status(status: ExitStatus) -> String {
    let code = status_code(status);
    match status.signal() {
        Some(signal) => format!("{code} (killed by {})", signal_name(signal)),
        None => code.to_string(),
    }
}

fn signal_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

// `RUN` and `OPERATORS` as `redlock --help` shows them (wrapped to its width, without the
// README's backquotes): written out, since clap builds every help text on every run and
// rendering them there cost each run more than its own parsing. A test in `cli.rs` checks that
// they say what the tables above say.
macro_rules! run_exit_table {
    () => {
        concat!(
            "  the command's  the command ran and exited: its status, unchanged\n",
            "  128+N          the command was killed by signal N (also when redlock is interrupted by signal N\n",
            "                 while it waits for the lock)\n",
            "  75             busy: the lock was not acquired within --wait; the command did not run\n",
            "                 (EX_TEMPFAIL; -E changes it)\n",
            "  69             Redis unavailable before the command ran: cannot connect, wrong or missing\n",
            "                 password, no answer within the timeout, or a key of the wrong type in the way\n",
            "                 (EX_UNAVAILABLE)\n",
            "  64             usage error: bad flag, duration, name or URL, or an unsafe combination (EX_USAGE)\n",
            "  78             the lock is held with another --limit than this run's (every run of a name must use\n",
            "                 the same N; the message says which is in force); the command did not run\n",
            "                 (EX_CONFIG)\n",
            "  76             the lock was lost: deleted, broken by redlock release --force (which asks a live\n",
            "                 holder to stop first), taken by another holder, or not extended in time. Noticed\n",
            "                 while the command ran, the command was stopped (SIGTERM, then SIGKILL after\n",
            "                 --kill-after); found at release, the command had ended. Never 0 for a run that lost\n",
            "                 its lock. The last redlock: line gives the command's own status\n",
            "  77             replaced: another run asked for the lock with --replace; the command was stopped\n",
            "                 (SIGTERM, then SIGKILL after --kill-after) and the lock handed over. The last\n",
            "                 redlock: line gives the command's own status\n",
            "  124            the command ran for its --timeout and was stopped (SIGTERM, then SIGKILL after\n",
            "                 --kill-after); the lock was released at once, as timeout(1) exits\n",
            "  126            the command exists but cannot be executed (a script without a #! line is run with\n",
            "                 /bin/sh, as execvp does)\n",
            "  127            the command was not found\n",
            "  70             internal error: redlock itself could not work (e.g. out of file descriptors), or a\n",
            "                 bug (EX_SOFTWARE)",
        )
    };
}
macro_rules! operators_exit_table {
    () => {
        concat!(
            "  0              status: the lock is held; list, history: done; release: no majority of the servers\n",
            "                 holds the lock any more (its holder released it when asked, or it was deleted);\n",
            "                 acquire: the lock is ours; extend: renewed; release --token without --force: given\n",
            "                 back\n",
            "  1              status: the lock is free; release: there was nothing to break (free, or another\n",
            "                 token)\n",
            "  64             usage error, and release without --force or --token\n",
            "  69             Redis unavailable: too few servers answered; for release, too few to know that no\n",
            "                 majority holds the lock (the message names them)\n",
            "  75             acquire: busy, not acquired within --wait (-E changes it)\n",
            "  76             extend, and release --token without --force: the lock no longer held the token (its\n",
            "                 lease ran out, or it was broken or taken)\n",
            "  78             acquire: the lock is held as a semaphore (run --limit N)",
        )
    };
}
pub(crate) use {operators_exit_table, run_exit_table};

/// The signal's name for messages: `SIGINT`.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pass_through() {
        for code in [0, 1, 42, 255] {
            assert_eq!(status_code(ExitStatus::from_raw(code << 8)), code as u8);
        }
    }

    #[test]
    fn signals_map_to_128_plus_n() {
        assert_eq!(status_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(status_code(ExitStatus::from_raw(15)), 143);
        // A core dump sets bit 7; the signal is still the low bits.
        assert_eq!(status_code(ExitStatus::from_raw(0x80 | 11)), 139);
    }

    #[test]
    fn statuses_are_described_with_their_signal() {
        assert_eq!(describe_status(ExitStatus::from_raw(3 << 8)), "3");
        assert_eq!(
            describe_status(ExitStatus::from_raw(15)),
            "143 (killed by SIGTERM)"
        );
    }

    /// Every status redlock exits with on its own is in the table the documents are made from.
    #[test]
    fn every_status_is_documented() {
        for code in [
            USAGE,
            UNAVAILABLE,
            INTERNAL,
            BUSY,
            LIMIT_MISMATCH,
            LOCK_LOST,
            REPLACED,
            TIMED_OUT,
            CANNOT_EXECUTE,
            NOT_FOUND,
        ] {
            assert!(
                RUN.iter().any(|(status, _)| *status == Status::Code(code)),
                "{code} is not in exit::RUN"
            );
        }
        for (status, meaning) in RUN.iter().chain(OPERATORS) {
            // The table is rendered into markdown, roff and plain text: nothing that needs
            // escaping in one of them, and no break inside a row.
            assert!(
                !meaning.contains(['|', '\\', '\n', '*']) && !meaning.ends_with('.'),
                "{status}: {meaning:?}"
            );
            assert_eq!(meaning.matches('`').count() % 2, 0, "{status}: {meaning:?}");
        }
    }

    #[test]
    fn busy_code_is_configurable() {
        let busy = Failure::new(Kind::Busy, anyhow::anyhow!("busy"));
        assert_eq!(busy.exit_code(BUSY), 75);
        assert_eq!(busy.exit_code(0), 0);
        assert_eq!(
            Failure::new(Kind::Signal(2), anyhow::anyhow!("x")).exit_code(BUSY),
            130
        );
    }
}
