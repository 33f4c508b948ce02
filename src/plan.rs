//! The plan of a run: the one place where `run`'s command line (clap's `RunArgs`) becomes what
//! the run does, checked before anything touches Redis: which lock (its keys, its servers, its
//! places), every duration of the lease, how it waits, what it records and reports, and the
//! command. `run/` works from the plan alone; a bad or unsafe value is a usage error that
//! says why.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::cli::{OnUnavailable, RunArgs};
use crate::exit;
use crate::lock::{Keys, MAX_COMMAND, Server};
use crate::report::pings;
use crate::settings::{self, Lease};

/// A run, checked.
pub struct Plan {
    /// The lock's name, or its key with `--key`: as messages and the metrics name it; several
    /// names joined by "+".
    pub label: String,
    /// The variable that names the lock in the command's environment (REDLOCK_NAME, or
    /// REDLOCK_KEY), and the other one, which an outer run may have set.
    pub variables: (&'static str, &'static str),
    /// Each lock, in the order taken (sorted): one, or several with `--name a --name b`.
    pub locks: Vec<Target>,
    pub servers: Vec<Server>,
    /// How many places the lock has: a semaphore's N, 1 for a plain lock.
    pub limit: usize,
    /// `--shared`: one of the lock's shared holders.
    pub shared: bool,
    pub lease: Lease,
    /// How long to wait for a busy lock, and whether to ask its holder to let go.
    pub wait: Duration,
    pub replace: bool,
    /// `--jitter`: the longest random sleep before the first try.
    pub jitter: Duration,
    /// The bound on each request to the servers while the lock is taken: with several
    /// servers, small next to the TTL, so that a slow one cannot eat the lease the others
    /// granted.
    pub request_timeout: Duration,
    pub on_unavailable: OnUnavailable,
    /// The status of a busy run (`-E`).
    pub busy_exit: u8,
    /// How many runs the lock's history keeps: none with `--history 0`.
    pub history: Option<usize>,
    /// What the holder's record shows (`--label`), besides its command line.
    pub holder_label: Option<String>,
    /// `--timeout`, `--min-hold`.
    pub time_limit: Option<Duration>,
    pub min_hold: Duration,
    pub verbose: bool,
    pub metrics_dir: Option<PathBuf>,
    pub ping: Option<Ping>,
    pub command: Vec<OsString>,
}

impl Plan {
    /// The status of a run that found too few servers: none when it runs its command without
    /// the lock.
    pub fn unavailable_exit(&self) -> Option<u8> {
        match self.on_unavailable {
            OnUnavailable::Fail => Some(exit::UNAVAILABLE),
            OnUnavailable::Skip => Some(self.busy_exit),
            OnUnavailable::Run => None,
        }
    }
}

/// One lock of a run: its name (or key), and its keys.
#[derive(Clone)]
pub struct Target {
    pub label: String,
    pub keys: Keys,
}

/// `--ping`, `--ping-timeout`, `--ping-busy ok`.
#[derive(Debug)]
pub struct Ping {
    pub url: String,
    pub timeout: Duration,
    pub busy_ok: bool,
}

/// Turns `run`'s arguments into its plan, or says what is wrong with them.
pub fn plan(args: &RunArgs) -> Result<Plan> {
    // First, as the parser checked them before they moved here.
    if let Some(label) = &args.label {
        check_label(label)?;
    }
    if let Some(url) = &args.ping {
        pings::check_url(url).map_err(|e| anyhow::anyhow!("--ping: {e}"))?;
    }
    let locks = (args.lock.each().iter())
        .map(|which| {
            Ok(Target {
                label: which.label().to_string(),
                keys: settings::keys(which, &args.servers.prefix())?,
            })
        })
        .collect::<Result<Vec<Target>>>()?;
    if args.command.first().is_none_or(|c| c.is_empty()) {
        bail!("no command given: redlock run --name NAME -- COMMAND [ARGS...]");
    }
    if args.replace && args.limit > 1 {
        bail!(
            "--replace cannot be used with --limit {}: it takes over from the one holder of a \
             lock, and a semaphore has several",
            args.limit
        );
    }
    if args.shared {
        let other = match (args.limit > 1, args.lock.key.is_some(), args.replace) {
            (true, _, _) => Some(format!(
                "--limit {}: a semaphore's places are each held alone",
                args.limit
            )),
            (_, true, _) => Some(
                "--key: the libraries that lock a key know of no shared holders, and would \
                 take it beside them"
                    .to_string(),
            ),
            (_, _, true) => Some(
                "--replace: it takes over from the one holder of a lock, and shared holders are \
                 many"
                    .to_string(),
            ),
            _ => None,
        };
        if let Some(why) = other {
            bail!("--shared cannot be used with {why}");
        }
    }
    if locks.len() > 1 {
        let other = match (args.limit > 1, args.shared, args.replace) {
            (true, _, _) => Some(format!("--limit {}", args.limit)),
            (_, true, _) => Some("--shared".to_string()),
            (_, _, true) => Some("--replace".to_string()),
            _ => None,
        };
        if let Some(other) = other {
            bail!("several --name cannot be used with {other}: it is for a run of one lock");
        }
    }
    if args.lock.key.is_some() && args.limit > 1 {
        bail!(
            "--key cannot be used with --limit {}: the libraries that lock a key hold it once, \
             and a semaphore has several places",
            args.limit
        );
    }
    let lease = Lease::new(args.ttl, args.heartbeat, args.kill_after)?;
    let servers = settings::servers(&args.servers.redis, args.wait_replicas)?;
    Ok(Plan {
        label: args.lock.label(),
        variables: args.lock.variables(),
        locks,
        // A reply later than this could not leave time to run the command safely.
        request_timeout: lease.request_timeout(lease.usable(), servers.len()),
        servers,
        limit: usize::from(args.limit),
        shared: args.shared,
        lease,
        wait: args.busy.wait,
        replace: args.replace,
        jitter: args.busy.jitter,
        on_unavailable: args.on_unavailable,
        busy_exit: args.busy.conflict_exit_code,
        history: (args.history > 0).then_some(args.history as usize),
        holder_label: args.label.clone(),
        time_limit: args.timeout,
        min_hold: args.min_hold,
        verbose: args.verbose,
        metrics_dir: args.metrics_dir.clone(),
        ping: args.ping.as_ref().map(|url| Ping {
            url: url.clone(),
            timeout: args.ping_timeout,
            busy_ok: args.ping_busy == crate::cli::PingBusy::Ok,
        }),
        command: args.command.clone(),
    })
}

/// A label is shown on one line, as the command line is (its control characters shown as `?`
/// when it is printed), and at most as long as a recorded command line.
pub fn check_label(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        bail!("--label must say something");
    }
    if text.len() > MAX_COMMAND {
        bail!("--label is at most {MAX_COMMAND} bytes, as a recorded command line");
    }
    Ok(())
}
