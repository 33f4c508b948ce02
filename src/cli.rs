//! The command line, defined once: parsing, help text, and later the man page and completions.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration::{parse_duration, parse_positive};

/// Run a command under a distributed lock held in Redis.
///
/// redlock takes a lease on a named lock, runs the command while a heartbeat keeps the lease
/// alive, and releases it when the command exits. At most one holder of a name runs at a time,
/// across every machine that shares the Redis server.
#[derive(Debug, Parser)]
#[command(name = "redlock", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND while holding the lock NAME.
    #[command(long_about = "Run COMMAND while holding the lock NAME.\n\n\
        The lock is taken with a lease of --ttl, kept alive every --heartbeat while the command runs, \
        and released when it exits. If the lease cannot be kept, the command's process group is \
        terminated before the lease can run out and redlock exits with the lock-lost status.",
        after_long_help = RUN_AFTER_HELP)]
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Name of the lock (the same name on every host means the same lock).
    #[arg(short, long, value_name = "NAME")]
    pub name: String,

    /// Redis server URL: redis://, rediss:// (TLS) or redis+unix://, with optional
    /// user:password@ and /DB. Repeat it (or give a comma-separated list) for several
    /// independent servers: the lock then needs a majority of them (the Redlock algorithm).
    #[arg(
        long = "redis",
        value_name = "URL",
        env = "REDLOCK_URL",
        default_value = "redis://127.0.0.1:6379",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis: Vec<String>,

    /// Prefix of every key redlock writes.
    #[arg(
        long,
        value_name = "PREFIX",
        env = "REDLOCK_PREFIX",
        default_value = "redlock",
        hide_env_values = true
    )]
    pub prefix: String,

    /// Length of the lease: how long a crashed holder can block the lock.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive, allow_hyphen_values = true)]
    pub ttl: Duration,

    /// How long to wait for a busy lock before giving up (0: try once).
    #[arg(short, long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub wait: Duration,

    /// Interval between lease extensions [default: a third of --ttl].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive, allow_hyphen_values = true)]
    pub heartbeat: Option<Duration>,

    /// Grace between SIGTERM and SIGKILL when the lease is lost [default: a quarter of --ttl].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive, allow_hyphen_values = true)]
    pub kill_after: Option<Duration>,

    /// Keep the lock at least this long after acquiring it, even if the command ends sooner.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub min_hold: Duration,

    /// Replicas that must confirm each acquire and extension (WAIT N) before it counts, for a
    /// primary with replicas: a failover then cannot lose a lock the primary granted.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub wait_replicas: u32,

    /// Exit status when the lock is busy.
    #[arg(short = 'E', long, value_name = "N", default_value_t = crate::exit::BUSY,
          value_parser = clap::value_parser!(u8), allow_negative_numbers = true)]
    pub conflict_exit_code: u8,

    /// Print nothing when the lock is busy.
    #[arg(short, long)]
    pub quiet: bool,

    /// Report acquire, extend and release events with their timings on stderr.
    #[arg(short, long)]
    pub verbose: bool,

    /// The command to run, and its arguments.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// The end of `redlock run --help`: what scripts need to know.
const RUN_AFTER_HELP: &str = "\
Exit status:
  the command's  the command ran and exited with it
  128+N          the command was killed by signal N (or redlock, while waiting, got signal N)
  75             busy: not acquired within --wait; the command did not run (-E changes it)
  69             Redis unavailable before the command ran
  64             usage error
  76             the lock was lost while the command ran, and the command was stopped
  126, 127       the command could not be executed / was not found
  70             internal error

The command's environment:
  REDLOCK_NAME   the lock name
  REDLOCK_TOKEN  this run's token (the lock key's value)
  REDLOCK_FENCE  fencing token: strictly increasing for each acquisition of NAME

Example:
  redlock run --name backup --wait 10m -- ./backup.sh";

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_everything_after_the_separator() {
        let cli = Cli::try_parse_from(["redlock", "run", "-n", "x", "--", "ls", "-l", "--", "-n"])
            .unwrap();
        let Command::Run(run) = cli.command;
        assert_eq!(run.command, ["ls", "-l", "--", "-n"]);
        assert_eq!(run.ttl, Duration::from_secs(30));
    }
}
