//! The command line, defined once: parsing, help text, and later the man page and completions.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::{parse_duration, parse_positive};
use crate::exit::{self, operators_exit_table, run_exit_table};
use crate::report::pings::{self, PingBusy};
use crate::say::Format;

mod servers;
pub use servers::ServerArgs;

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
    /// error is said in it too (a bad value here is said in text).
    // Global: one option for every subcommand, before or after its name, as the environment
    // variable is one for all of them.
    #[arg(long, global = true, value_name = "FORMAT", value_enum, default_value_t = Format::Text,
          display_order = 90,
          env = "REDLOCK_LOG_FORMAT")]
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
        environment; if that token still holds the lock on a majority of the servers and this \
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

    /// Break the lock NAME (needs --force).
    #[command(
        long_about = "Break the lock NAME. Without --force it only says what it would do. \
        With --force, a live holder is first asked to stop: it stops its command (SIGTERM, then \
        SIGKILL after its --kill-after), releases the lock and exits with the lock-lost status \
        (76), and release waits for that, up to the holder's --kill-after plus 2s, so that a \
        waiter never starts beside the old command. A holder that does not answer in time (a \
        dead host, a stale lock) has its lock deleted, and its waiters are told at once. With \
        --token only the lock that still holds that token is touched.",
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
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Name of the lock
    ///
    /// As given to `redlock run --name`. (Here -n is the number of runs, as `tail -n` and
    /// `journalctl -n` take it.)
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// How many runs to show
    ///
    /// The newest N runs, from every server's history merged (each keeps at most its run's
    /// --history entries).
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
    pub count: usize,

    /// Print JSON
    ///
    /// An array of runs, newest first, each with token, host, pid, user, command, outcome,
    /// exit (redlock's status; null when --on-unavailable run gave the command its place),
    /// status (the command's), wait_ms, run_ms, fence, slot, servers (of the lock), end_ms
    /// (when a server recorded it, its clock), start_ms and recorded_on (how many servers
    /// recorded it). The fields are stable.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub servers: ServerArgs,
}

impl Command {
    /// The lock it is about, for redlock's lines on stderr (`list` has none).
    pub fn name(&self) -> Option<&str> {
        match self {
            Command::Run(args) => Some(&args.name),
            Command::Status(args) => Some(&args.name),
            Command::List(_) => None,
            Command::Release(args) => Some(&args.name),
            Command::History(args) => Some(&args.name),
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
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Name of the lock
    ///
    /// As given to `redlock run --name`.
    #[arg(short, long, value_name = "NAME")]
    pub name: String,

    /// Print JSON
    ///
    /// An object: name, held (a majority holds it with one token), holder (that majority's
    /// view, or null), quorum (servers needed), agreeing (servers holding that token) and servers
    /// (one view each). A view: address, held, token, ttl_ms (-1: no expiry), fence, host, pid,
    /// user, command, started_ms (ms since the epoch, server clock), age_ms, ended_ms (when
    /// --min-hold keeps a finished command's lock), limit_ms (when its --timeout ends, about)
    /// and error. For a semaphore (run --limit N): name, limit (N), held (a place is held),
    /// places_held, and places (such an object for each place). The fields are stable.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub servers: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only locks whose name matches this pattern
    ///
    /// A Redis glob (`*`, `?`, `[abc]`) on the lock name.
    #[arg(value_name = "PATTERN", default_value = "*")]
    pub pattern: String,

    /// Print JSON
    ///
    /// An array of the held locks, each with name, servers (how many hold it) and the fields of
    /// a `redlock status` view: address, held, token, ttl_ms (-1: no expiry), fence, host, pid,
    /// user, command, started_ms, age_ms, ended_ms, limit_ms and error; a semaphore's places
    /// (run --limit N) each with slot and limit. The fields are stable.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub servers: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Name of the lock
    ///
    /// As given to `redlock run --name`.
    #[arg(short, long, value_name = "NAME")]
    pub name: String,

    /// Really break the lock
    ///
    /// Without it, release only says what it would do, and exits with 64.
    #[arg(long)]
    pub force: bool,

    /// Only if the lock still holds this token
    ///
    /// The token `redlock status` shows: a lock taken again since is left alone.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Only this place of a semaphore (run --limit), 0 to N-1
    ///
    /// Without it, every place of a semaphore that is held is broken, one after the other.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(0..100))]
    pub slot: Option<u16>,

    /// Delete the lock at once, without asking its holder to stop first
    ///
    /// The holder hears of it within milliseconds and stops its command, but a waiter takes
    /// the lock at once: for up to the holder's --kill-after, the old command may still run
    /// beside the new holder's. Use it for a holder you know is gone.
    #[arg(long, requires = "force")]
    pub now: bool,

    #[command(flatten)]
    pub servers: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Name of the lock
    ///
    /// The same name on every host means the same lock. At most 200 bytes; no braces or control
    /// characters.
    #[arg(short, long, value_name = "NAME")]
    pub name: String,

    #[command(flatten)]
    pub servers: ServerArgs,

    /// Length of the lease
    ///
    /// How long a crashed holder can block the lock, at most. The heartbeat keeps it alive while
    /// the command runs. At least 100ms. Durations: 30s, 1m30s, 250ms, or plain seconds.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive, allow_hyphen_values = true)]
    pub ttl: Duration,

    /// How long to wait for a busy lock (0: try once)
    ///
    /// A waiter sleeps until a release notice or the holder's expiry, not in a polling loop, and
    /// takes over at once. When the time is up it exits with the busy status.
    #[arg(short, long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub wait: Duration,

    /// Allow up to N runs of the name at once: a counting semaphore (default 1: a lock)
    ///
    /// Each run holds one of N places, with its own lease, heartbeat and fencing token: a
    /// crashed holder frees its place within its TTL. The command learns its place as
    /// REDLOCK_SLOT (0 to N-1). Every run of a name must use the same N: while any holds it, a
    /// run with another N exits with 78. 1 to 100; not with --replace above 1.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub limit: u16,

    /// Interval between lease extensions [default: a third of --ttl]
    ///
    /// Must leave room for a retry before the command would have to be signalled: at most half
    /// of (ttl - drift - kill-after), where drift is 1% of the TTL + 2ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive, allow_hyphen_values = true)]
    pub heartbeat: Option<Duration>,

    /// Grace between SIGTERM and SIGKILL [default: a quarter of --ttl]
    ///
    /// When the lease cannot be kept, the command's process group gets SIGTERM this long before
    /// the lease ends and SIGKILL before it ends. Also the grace given to processes the command
    /// leaves behind. Must be shorter than the TTL less the drift allowance.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive, allow_hyphen_values = true)]
    pub kill_after: Option<Duration>,

    /// Take over from the current holder: ask it to stop its command and let go
    ///
    /// The newest run wins (as Kubernetes' concurrencyPolicy: Replace): the holder is asked to
    /// stop its command, as `redlock release --force` asks (SIGTERM, then SIGKILL after its
    /// --kill-after), releases the lock and exits with 77; this run takes the lock at once then,
    /// never while the old command runs. A holder that does not let go within its --kill-after
    /// plus 2s (a frozen or vanished host) is waited for as --wait waits: until its lease ends,
    /// or until --wait runs out (75).
    #[arg(long)]
    pub replace: bool,

    /// What to do when too few Redis servers can be reached: fail, skip, or run
    ///
    /// fail: exit with 69 (the default). skip: treat it as busy: one line on stderr (not with
    /// -q) and the -E status (75 unless -E says otherwise; -E 0 -q skips quietly). run: run the
    /// command without the lock, after a warning line, with REDLOCK_UNLOCKED=1 and no
    /// REDLOCK_FENCE or REDLOCK_TOKEN in its environment, for jobs where running twice is
    /// better than not running; redlock gives its place to the command (exec), whose status is
    /// the run's. Only servers that cannot be reached, refuse the login or do not answer in time
    /// trigger it: never a busy lock (also when one server says it is held and the others cannot
    /// be reached), a key of another type in the way, a usage error, or a lease lost while the
    /// command runs.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = OnUnavailable::Fail, env = "REDLOCK_ON_UNAVAILABLE")]
    pub on_unavailable: OnUnavailable,

    /// Stop the command once it has run this long (as timeout(1) does)
    ///
    /// Counted from the command's start, not from the wait for the lock. When it is up, the
    /// command's process group gets SIGTERM, then SIGKILL after --kill-after; the lock is
    /// released at once, and redlock exits with 124, as timeout(1) does. A hung job then cannot
    /// hold the lock for ever, as the heartbeat would otherwise let it.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive)]
    pub timeout: Option<Duration>,

    /// Keep the lock at least this long after acquiring it
    ///
    /// Even if the command ends sooner, so that the same cron entry on a host whose clock is
    /// behind does not run the job again. On release the lease is shortened to what remains;
    /// redlock does not stay alive for it. Not applied when the command could not be started.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub min_hold: Duration,

    /// How many runs the lock's history keeps (0: record none)
    ///
    /// Each run is recorded next to the lock, by the requests it sends anyway: host, pid, user,
    /// command, wait and run time, outcome, exit status, fence. `redlock history` shows them.
    #[arg(long, value_name = "N", default_value_t = 100, env = "REDLOCK_HISTORY",
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub history: u32,

    /// After each run, write its outcome to DIR/redlock_NAME.prom (Prometheus textfile)
    ///
    /// For node_exporter's textfile collector: last start and end time, duration, exit status
    /// and outcome, the wait for the lock, runs by outcome (a counter kept in the file) and the
    /// fence. Written to a temporary file in DIR and renamed; a DIR that cannot be written is a
    /// warning, never a failed run.
    #[arg(long, value_name = "DIR", env = "REDLOCK_METRICS_DIR")]
    pub metrics_dir: Option<std::path::PathBuf>,

    /// Health-check pings to URL (the healthchecks.io protocol)
    ///
    /// URL/start?rid=ID once the lock is taken, and URL/STATUS?rid=ID after the command with
    /// redlock's exit status (URL/fail for a lost lock, a timeout or Redis unavailable; URL,
    /// a success, for a run replaced by --replace), with redlock's summary line as the body.
    /// ID is new for each run, so overlapping runs pair up. A busy run sends nothing (see
    /// --ping-busy). The command never waits for a ping, and a failed ping is a warning only.
    #[arg(long, value_name = "URL", env = "REDLOCK_PING", value_parser = pings::parse_url)]
    pub ping: Option<String>,

    /// What a busy run pings: nothing (none), or a success (ok)
    ///
    /// A busy run left the job to the run that holds the lock: by default it sends no ping at
    /// all, not even a start. With ok it sends URL?rid=ID, a success, for a check that expects
    /// a ping from every run that was due.
    #[arg(long, value_name = "WHAT", value_enum, default_value_t = PingBusy::None)]
    pub ping_busy: PingBusy,

    /// How long redlock's exit may wait for the final ping
    ///
    /// Each ping gets this long, its one retry included; the final ping also waits in it for a
    /// start ping still in flight.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_positive)]
    pub ping_timeout: Duration,

    /// Replicas that must confirm each acquire and extension
    ///
    /// For a primary with replicas: each acquire and extension is followed by WAIT N and counts
    /// only when N replicas confirm it, so a failover cannot lose a lock the primary granted.
    /// A short answer is a failure: Redis unavailable (69) when taking the lock, a failed
    /// extension afterwards.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub wait_replicas: u32,

    /// Exit status when the lock is busy
    ///
    /// 0 to 255. Choose one the command never uses, so that a script can tell them apart;
    /// -E 0 -q makes a busy lock a silent success.
    ///
    /// Also the status of --on-unavailable skip.
    #[arg(short = 'E', long, value_name = "N", default_value_t = exit::BUSY,
          value_parser = clap::value_parser!(u8), allow_negative_numbers = true)]
    pub conflict_exit_code: u8,

    /// Print nothing when the lock is busy
    ///
    /// cron mails any output; other errors are still printed.
    #[arg(short, long)]
    pub quiet: bool,

    /// Report what happens, with timings, on stderr
    ///
    /// Waiting (and for whom), acquire, each extension, retries and release.
    #[arg(short, long)]
    pub verbose: bool,

    /// The command to run, and its arguments
    ///
    /// Everything after --. It runs in its own process group with its stdin, stdout and stderr
    /// untouched, and REDLOCK_NAME, REDLOCK_TOKEN and REDLOCK_FENCE in its environment.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// The widest help clap renders; the text after the options is wrapped to it here, as clap
/// leaves that text as it is.
const WIDTH: usize = 100;

macro_rules! run_environment {
    () => {
        "\
The command's environment:
  REDLOCK_NAME      the lock name
  REDLOCK_TOKEN     this run's token (the lock key's value)
  REDLOCK_FENCE     fencing token: strictly increasing for each acquisition of NAME
  REDLOCK_SLOT      its place, 0 to N-1 (with --limit N; 0 for a lock)
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
    "\n\nExit status of redlock status, list, release and history:\n",
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
    use crate::exit::{operators_exit_table, run_exit_table};
    use clap::CommandFactory;

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

/// `--on-unavailable`: what a run does when too few servers can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnUnavailable {
    /// Exit with 69.
    Fail,
    /// Exit as if busy (the -E status).
    Skip,
    /// Run the command without the lock.
    Run,
}
