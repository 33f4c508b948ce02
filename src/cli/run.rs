//! The options of `redlock run`.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{BusyArgs, Locks, ServerArgs};
use crate::duration::{parse_duration, parse_positive};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub lock: Locks,

    #[command(flatten)]
    pub servers: ServerArgs,

    #[command(flatten)]
    pub busy: BusyArgs,

    /// Length of the lease
    ///
    /// How long a crashed holder can block the lock, at most. The heartbeat keeps it alive while
    /// the command runs. At least 100ms. Durations: 30s, 1m30s, 250ms, or plain seconds.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive, allow_hyphen_values = true)]
    pub ttl: Duration,

    /// Allow up to N runs of the name at once: a counting semaphore (default 1: a lock)
    ///
    /// Each run holds one of N places, with its own lease, heartbeat and fencing token: a
    /// crashed holder frees its place within its TTL. The command learns its place as
    /// REDLOCK_SLOT (0 to N-1). Every run of a name must use the same N: while any holds it, a
    /// run with another N exits with 78. 1 to 100; not with --replace above 1.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub limit: u16,

    /// Hold the lock shared: beside other --shared runs, never beside an exclusive one
    ///
    /// A reader-writer lock, as flock -s: any number of --shared runs of a name hold it at
    /// once, each with its own lease and heartbeat; a run without it waits for all of them and
    /// excludes them all. A run without --shared that waits in the queue goes before the
    /// --shared runs that come after it, so that a stream of them cannot starve it. The
    /// command gets REDLOCK_SHARED=1 and the current fence (the next exclusive holder's is
    /// larger). Not with --limit, --key or --replace.
    #[arg(long)]
    pub shared: bool,

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

    /// Record TEXT instead of the command line
    ///
    /// The command line is recorded next to the lock, where every Redis user reads it (status,
    /// list, history, the busy message on other hosts), with the credentials of its URLs and
    /// the values of options and variables named like a password, token, secret or key
    /// replaced by ***. For anything else it must not show, give a label: "nightly backup".
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,

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
    #[arg(long, value_name = "URL", env = "REDLOCK_PING")]
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
    /// extension afterwards. Default: 1 wherever the primary has a replica connected (a
    /// Sentinel set, a Cluster with replicas, a primary with replicas), as its ROLE says when
    /// redlock connects; none for a primary without one. 0 opts out.
    #[arg(long, value_name = "N")]
    pub wait_replicas: Option<u32>,

    /// Report what happens, with timings, on stderr
    ///
    /// Waiting (and for whom), acquire, each extension, retries and release.
    #[arg(short, long)]
    pub verbose: bool,

    /// The command to run, and its arguments
    ///
    /// Everything after --. It runs in its own process group with its stdin, stdout and stderr
    /// untouched, and REDLOCK_NAME (REDLOCK_KEY with --key), REDLOCK_TOKEN, REDLOCK_FENCE and
    /// REDLOCK_FENCES in its environment.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
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

/// What `--ping` sends for a busy run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PingBusy {
    /// Nothing: a skipped run is not a failure, and not a run either.
    None,
    /// A success ping: the job is accounted for.
    Ok,
}
