//! The options of `status`, `list`, `release` and `history`: the operators' commands.

use clap::Args;

use super::{ServerArgs, Which};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub lock: Which,

    /// Print JSON
    ///
    /// An object: name, held (a majority holds it with one token), holder (that majority's
    /// view, or null), quorum (servers needed), agreeing (servers holding that token) and servers
    /// (one view each). A view: address, held, token, ttl_ms (-1: no expiry), fence, host, pid,
    /// user, command, started_ms (ms since the epoch, server clock), age_ms, ended_ms (when
    /// --min-hold keeps a finished command's lock), limit_ms (when its --timeout ends, about),
    /// shared (held by run --shared: how many, this view being the one whose lease ends last;
    /// null otherwise), readers (then: such a view of each) and error; and last_run (the last run that got past busy, as `redlock history --json`
    /// shows a run, or null). For a semaphore (run --limit N) while a place is held (its N is
    /// stored only then; all free, it shows as a free lock): name, limit (N), held (a place is
    /// held), places_held, places (such an object for each place) and last_run. The fields are
    /// stable.
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
    /// user, command, started_ms, age_ms, ended_ms, limit_ms, shared, readers (a lock held by
    /// run --shared) and error; a semaphore's places (run --limit N) each with slot and limit.
    /// The fields are stable.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub servers: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub lock: Which,

    /// Really break the lock
    ///
    /// Without it, release only says what it would do, and exits with 64; with --token and
    /// without it, release gives back a lock taken by `redlock acquire`.
    #[arg(long)]
    pub force: bool,

    /// Only if the lock still holds this token; without --force, give it back
    ///
    /// With --force: the token `redlock status` shows; a lock taken again since is left alone.
    /// Without --force: the holder's own release of a lock `redlock acquire` took (the token it
    /// printed): the lock is deleted if it still holds the token and the first waiter woken;
    /// exit 0, or 76 when it no longer held the token (the lease ran out, or it was broken).
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
#[group(id = "which", required = true, multiple = false)]
pub struct HistoryArgs {
    /// Name of the lock
    ///
    /// As given to `redlock run --name`. (Here -n is the number of runs, as `tail -n` and
    /// `journalctl -n` take it.)
    #[arg(long, value_name = "NAME", group = "which")]
    pub name: Option<String>,

    /// The application's key, as given to `redlock run --key` (not with --name)
    ///
    /// Its runs are recorded in {KEY}:history; a library's own holds of the key are not.
    #[arg(
        long,
        value_name = "KEY",
        group = "which",
        conflicts_with = "given_prefix"
    )]
    pub key: Option<String>,

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

impl HistoryArgs {
    /// The lock, as the other commands name it (here without -n).
    pub fn lock(&self) -> Which {
        Which {
            name: self.name.clone(),
            key: self.key.clone(),
        }
    }
}
