//! The command line, defined once: parsing, help text, and later the man page and completions.

use clap::{Parser, Subcommand};

use crate::exit::{operators_exit_table, run_exit_table};
use crate::say::Format;

mod busy;
mod operators;
mod run;
mod servers;
mod steps;
mod which;
pub use busy::BusyArgs;
pub use operators::{HistoryArgs, ListArgs, ReleaseArgs, StatusArgs};
pub use run::{OnUnavailable, PingBusy, RunArgs};
pub use servers::ServerArgs;
pub use steps::{AcquireArgs, ExtendArgs};
pub use which::{Locks, Which};

/// Run a command under a distributed lock held in Redis.
///
/// redlock takes a lease on a named lock, runs the command while a heartbeat keeps the lease
/// alive, and releases it when the command exits. At most one holder of a name runs at a time,
/// across every machine that shares the Redis server.
#[derive(Debug, Parser)]
#[command(
    name = "redlock",
    version,
    about,
    long_about,
    max_term_width = WIDTH,
    after_long_help = MAIN_AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Format of redlock's own lines on stderr: text or json
    ///
    /// text: one `redlock: MESSAGE` line each. json: one JSON object per line, with event,
    /// level, name (the lock's), message and the numbers the message states (durations as
    /// *_ms integers); the events and their fields are listed in docs/events.md. Either way,
    /// when stderr is the systemd journal (JOURNAL_STREAM names it), each line starts with the
    /// <N> priority journald reads. Read before the rest of the command line, so that a usage
    /// error is said in it too (a bad value here is said in text). REDLOCK_LOG_FORMAT sets it
    /// too; the option wins.
    // Global: one option for every subcommand, before or after its name, as the environment
    // variable is one for all of them.
    // REDLOCK_LOG_FORMAT is read before clap (say::format_before_parsing): as clap's `env`, a
    // bad value in it was an error even with the option given after the subcommand.
    #[arg(long, global = true, value_name = "FORMAT", value_enum, default_value_t = Format::Text,
          display_order = 90)]
    pub log_format: Format,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND while holding the lock NAME.
    #[command(long_about = "Run COMMAND while holding the lock NAME.\n\n\
        The lock is taken with a lease of --ttl, kept alive every --heartbeat while the command runs, \
        and released when it exits. If the lease cannot be kept, or the lock is broken or taken \
        over, the command's process group is terminated before the lease can run out and redlock \
        exits with the lock-lost status (76), as it does when the release finds the lock no \
        longer ours.\n\n\
        Durations are written like 30s, 1m30s, 250ms, 2h, or a plain number of seconds (5, 0.5), \
        as flock -w and timeout take them. Zero is refused for --ttl, --heartbeat and \
        --kill-after; no duration may be negative or longer than 365 days. Combinations that \
        cannot be safe are refused as usage errors, with the reason.\n\n\
        redlock's own messages go to stderr, one line each, starting with 'redlock:'. A busy \
        lock names its holder: host, pid of its redlock, command, for how long, and when it \
        expires.\n\n\
        A run inside a run of the same lock (a locking script that calls another that locks the \
        same NAME) finds the outer run's REDLOCK_NAME, REDLOCK_TOKEN and REDLOCK_FENCE in its \
        environment (or REDLOCK_FENCES naming NAME, from a run of several locks); if that token still holds the lock on a majority of the servers and this \
        run is inside the outer run's command (its process group, on its host), it runs its \
        command at once under the outer lease (same fence, its command's status), instead of \
        waiting for itself. Otherwise the token is ignored.",
        after_long_help = RUN_AFTER_HELP)]
    Run(RunArgs),

    /// Show who holds the lock NAME (exit 0), or that it is free (exit 1).
    #[command(
        long_about = "Show who holds the lock NAME: host, pid, user, command line, start \
        time, age, time left, fencing token and token, and with several servers the view of each \
        server and whether a majority agrees. Like `systemctl is-active`, it exits with 0 when \
        the lock is held and 1 when it is free.",
        after_long_help = OPERATORS_AFTER_HELP
    )]
    Status(StatusArgs),

    /// List the held locks, optionally those whose name matches PATTERN.
    #[command(
        long_about = "List the held locks under the key prefix, one line each: name, holder, \
        age and time left, tab-separated. PATTERN is a Redis glob on the lock name (`backup-*`). The keys are \
        found with SCAN, never KEYS, so a large database is not blocked.",
        after_long_help = OPERATORS_AFTER_HELP
    )]
    List(ListArgs),

    /// Break the lock NAME (needs --force), or give back your own (--token).
    #[command(
        long_about = "Break the lock NAME, or with --token and without --force, give back a \
        lock `redlock acquire` took: deleted if it still holds the token (exit 0), 76 if it no \
        longer does.\n\n\
        To break a lock: without --force it only says what it would do. \
        With --force, a live holder is first asked to stop: it stops its command (SIGTERM, then \
        SIGKILL after its --kill-after), releases the lock and exits with the lock-lost status \
        (76), and release waits for that, up to the holder's --kill-after plus 2s, so that a \
        waiter never starts beside the old command. A holder that does not answer in time (a \
        dead host, a stale lock) has its lock deleted, and its waiters are told at once. With \
        --token and --force only the lock that still holds that token is broken.",
        after_long_help = OPERATORS_AFTER_HELP
    )]
    Release(ReleaseArgs),

    /// Show the last runs of the lock NAME, on every host, newest first.
    #[command(
        long_about = "Show the last runs of the lock NAME, on every host, newest first, one line \
        each: start (the server's clock), host, pid, user, outcome with redlock's exit status, \
        wait, run time, fence and command, tab-separated. Outcomes: ran (the command ran; its \
        status is the run's), busy (skipped: the lock was held), unavailable (too few servers \
        answered; recorded by those that did), lost, timeout, replaced. Each run is recorded by \
        the requests it sends anyway (see `redlock run --history`); with several servers, each \
        keeps its own list and they are merged here.",
        after_long_help = OPERATORS_AFTER_HELP
    )]
    History(HistoryArgs),

    /// Take the lock NAME and exit, printing its token and fence: a lock held across steps.
    #[command(
        long_about = "Take the lock NAME and exit, printing its token and fencing token (`TOKEN \
        FENCE` on one line, or shell assignments with --export): for a lock held across steps, \
        such as the stages of a CI pipeline or systemd's ExecStartPre and ExecStopPost. \
        `redlock extend --token` renews the lease, and `redlock release --token` gives the lock \
        back.\n\n\
        Unlike `redlock run`, nothing watches this lease: there is no heartbeat, and nothing is \
        stopped when the lease ends. The lock is free again once --ttl is up, whatever the \
        steps are doing: give the longest they may take, and check REDLOCK_FENCE where a late \
        step could do harm.",
        after_long_help = OPERATORS_AFTER_HELP
    )]
    Acquire(AcquireArgs),

    /// Renew the lease of a lock taken by `redlock acquire`, by its token.
    #[command(
        long_about = "Renew the lease of a lock taken by `redlock acquire`: the lock is held for \
        --ttl from now, if it still holds --token on a majority of the servers. Exits with 76 \
        when it does not (the lease ran out, the lock was broken or taken by another holder): \
        the steps are no longer covered by the lock.",
        after_long_help = OPERATORS_AFTER_HELP
    )]
    Extend(ExtendArgs),
}

impl Command {
    /// The lock it is about, for redlock's lines on stderr (`list` has none).
    pub fn name(&self) -> Option<String> {
        let label = |which: &Which| Some(which.label().to_string());
        match self {
            Command::Run(args) => Some(args.lock.label()),
            Command::Status(args) => label(&args.lock),
            Command::List(_) => None,
            Command::Release(args) => label(&args.lock),
            Command::History(args) => args.name.clone().or(args.key.clone()),
            Command::Acquire(args) => label(&args.lock),
            Command::Extend(args) => label(&args.lock),
        }
    }

    /// Where the locks are, for whichever subcommand it is.
    pub fn servers(&self) -> &ServerArgs {
        match self {
            Command::Run(args) => &args.servers,
            Command::Status(args) => &args.servers,
            Command::List(args) => &args.servers,
            Command::Release(args) => &args.servers,
            Command::History(args) => &args.servers,
            Command::Acquire(args) => &args.servers,
            Command::Extend(args) => &args.servers,
        }
    }
}

/// The widest help clap renders; the text after the options is wrapped to it here, as clap
/// leaves that text as it is.
const WIDTH: usize = 100;

macro_rules! run_environment {
    () => {
        "\
The command's environment:
  REDLOCK_NAME      the lock name (REDLOCK_KEY instead: the key, with --key); unset with several
  REDLOCK_TOKEN     this run's token (the lock key's value; the same in each of several locks)
  REDLOCK_FENCE     fencing token: strictly increasing for each acquisition of NAME; unset with
                    several names
  REDLOCK_FENCES    each lock's fence, as JSON by name, sorted: {\"db\":4,\"nas\":17}
  REDLOCK_SLOT      its place, 0 to N-1 (with --limit N; 0 for a lock)
  REDLOCK_SHARED    1 for a shared holder (--shared); unset otherwise
  REDLOCK_UNLOCKED  1 when it runs without the lock (--on-unavailable run), with no token,
                    fence or place

redlock also reads REDLOCK_HOST: the host name it records in the lock's details and history
(a container's host name is often a meaningless id).

Example:
  redlock run --name backup --wait 10m -- ./backup.sh"
    };
}

const MAIN_AFTER_HELP: &str = concat!(
    "Exit status of redlock run:\n",
    run_exit_table!(),
    "\n\nExit status of redlock status, list, release, history, acquire and extend:\n",
    operators_exit_table!()
);

/// The end of `redlock run --help`: what scripts need to know.
const RUN_AFTER_HELP: &str = concat!(
    "Exit status:\n",
    run_exit_table!(),
    "\n\n",
    run_environment!()
);

const OPERATORS_AFTER_HELP: &str = concat!("Exit status:\n", operators_exit_table!());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit;
    use crate::exit::{operators_exit_table, run_exit_table};
    use clap::CommandFactory;
    use std::time::Duration;

    /// An exit-status table for `--help`: the status in a column, its meaning wrapped beside it,
    /// without the README's backquotes.
    fn exit_table(rows: &[(exit::Status, &str)]) -> String {
        const INDENT: usize = 17;
        let mut out = String::new();
        for (status, meaning) in rows {
            let mut line = format!("  {:<width$}", status.to_string(), width = INDENT - 2);
            for word in meaning.replace('`', "").split(' ') {
                if line.len() + 1 + word.len() > WIDTH && line.len() > INDENT {
                    out.push_str(line.trim_end());
                    out.push('\n');
                    line = " ".repeat(INDENT);
                } else if line.len() > INDENT {
                    line.push(' ');
                }
                line.push_str(word);
            }
            out.push_str(&line);
            out.push('\n');
        }
        out.pop();
        out
    }

    #[test]
    fn the_help_exit_tables_are_what_exit_rs_says() {
        assert_eq!(run_exit_table!(), exit_table(exit::RUN));
        assert_eq!(operators_exit_table!(), exit_table(exit::OPERATORS));
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every option has a one-line help and a longer explanation for --help.
    #[test]
    fn every_option_explains_itself() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || arg.is_hide_set() {
                    continue;
                }
                let short = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let long = arg
                    .get_long_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                assert!(
                    !short.is_empty() && !short.contains('\n'),
                    "{} {id}: {short:?}",
                    sub.get_name()
                );
                assert!(
                    long.len() > short.len(),
                    "{} {id}: no longer help",
                    sub.get_name()
                );
            }
        }
    }

    #[test]
    fn run_takes_everything_after_the_separator() {
        let cli = Cli::try_parse_from(["redlock", "run", "-n", "x", "--", "ls", "-l", "--", "-n"])
            .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("parsed as run")
        };
        assert_eq!(run.command, ["ls", "-l", "--", "-n"]);
        assert_eq!(run.ttl, Duration::from_secs(30));
    }
}
