//! `redlock acquire`, `extend` and `release --token`: a lock held across steps (CI stages,
//! systemd's ExecStartPre and ExecStopPost), known by its token. Nothing watches its lease:
//! no heartbeat keeps it, and nothing is stopped when it ends; its TTL is the one bound
//! (docs/design.md, "A lock held across steps").

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::cli::{AcquireArgs, ExtendArgs, ReleaseArgs, ServerArgs, Which};
use crate::duration::human;
use crate::exit::{self, Classify, Failure, Kind};
use crate::lock::{Everywhere, Extension, HolderInfo, Keys, Lock, REQUEST_TIMEOUT, Server};
use crate::run::{Events, Policy, fair_start, wait_for_lock};
use crate::say::{Event, ms, say};
use crate::settings::{self, Lease};

/// Takes the lock and prints its token and fence (or shell assignments), then exits: the
/// lease lasts its TTL unless extended or given back.
pub fn acquire(args: &AcquireArgs) -> Result<u8, Failure> {
    if let Some(label) = &args.label {
        crate::plan::check_label(label).kind(Kind::Usage)?;
    }
    let (keys, servers, lease) = checked(&args.lock, &args.servers, args.ttl)?;
    if prints_to_nothing() {
        return Err(Failure::new(
            Kind::Usage,
            anyhow!(
                "stdout is /dev/null (or was closed): nobody would read the token, and nobody \
                 could give the lock back before --ttl runs out"
            ),
        ));
    }
    let mut events = Events::new()
        .context("cannot set up event handling")
        .kind(Kind::Internal)?;
    let timeout = lease.request_timeout(lease.usable(), servers.len());
    let mut lock = Lock::new(servers, keys, 1, lease.timing);
    // Recorded as the holder's command: this command line, as `redlock ...`.
    let words: Vec<OsString> = std::iter::once(OsString::from("redlock"))
        .chain(std::env::args_os().skip(1))
        .collect();
    let me = HolderInfo::current(&words, args.label.as_deref(), Duration::ZERO);
    fair_start(args.busy.jitter, args.verbose, &mut events)?;
    let policy = Policy {
        name: args.lock.label(),
        wait: args.busy.wait,
        asked: args.busy.wait,
        replace: false,
        timeout,
        verbose: args.verbose,
    };
    let granted = wait_for_lock(&mut lock, &me, &policy, &mut events, &mut || {})?;
    if args.verbose {
        let took = granted.sent.elapsed();
        say(
            Event::Acquired,
            format!(
                "acquired '{}' (fence {}) in {}, for {}: nothing extends it (redlock extend)",
                args.lock.label(),
                granted.fence,
                human(took),
                human(args.ttl)
            ),
            &[("fence", granted.fence.into()), ("took_ms", ms(took))],
        );
    }
    let (variable, _) = args.lock.variables();
    let text = if args.export {
        format!(
            "export {variable}={}\nexport REDLOCK_TOKEN={}\nexport REDLOCK_FENCE={}\n",
            sh_quoted(args.lock.label()),
            sh_quoted(&lock.token),
            granted.fence
        )
    } else {
        format!("{} {}\n", lock.token, granted.fence)
    };
    // A token nobody reads is a lock nobody can give back: it is given back at once.
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        let released = lock.release(Duration::ZERO, timeout, Everywhere::No, None);
        let given_back = match released.freed() {
            true => "the lock was given back".to_string(),
            false => format!(
                "the lock could not be given back, and is free in {}",
                human(args.ttl)
            ),
        };
        return Err(Failure::new(
            Kind::Internal,
            anyhow!("cannot print the token ({e}): {given_back}"),
        ));
    }
    Ok(0)
}

/// Renews the lease of the lock that holds `--token`, for `--ttl` from now.
pub fn extend(args: &ExtendArgs) -> Result<u8, Failure> {
    check_token(&args.token)?;
    let (keys, servers, lease) = checked(&args.lock, &args.servers, args.ttl)?;
    let timeout = lease.request_timeout(lease.usable(), servers.len());
    let mut lock = Lock::holding(servers, keys, lease.timing, args.token.clone());
    let sent = std::time::Instant::now();
    match lock.extend(timeout, false) {
        Extension::Confirmed { .. } => {
            if args.verbose {
                let took = sent.elapsed();
                say(
                    Event::Extended,
                    format!(
                        "extended '{}' for {} in {}",
                        args.lock.label(),
                        human(args.ttl),
                        human(took)
                    ),
                    &[("took_ms", ms(took))],
                );
            }
            Ok(0)
        }
        Extension::Lost => Ok(no_longer_ours(args.lock.label(), &args.token, "extend")),
        Extension::Refused => Err(not_a_step(&args.lock, &args.token, "extending")),
        Extension::Unconfirmed(e) => Err(Failure::new(
            Kind::Unavailable,
            e.context(format!("cannot extend lock '{}'", args.lock.label())),
        )),
    }
}

/// `release --token` without `--force`: the holder gives its lock back, and the first waiter
/// is woken.
pub fn give_back(args: &ReleaseArgs, token: &str) -> Result<u8, Failure> {
    if args.slot.is_some() {
        return Err(Failure::new(
            Kind::Usage,
            anyhow!("--slot breaks one place of a semaphore, with --force"),
        ));
    }
    let keys = settings::keys(&args.lock, &args.servers.prefix()).kind(Kind::Usage)?;
    let servers = settings::servers(&args.servers.redis, None).kind(Kind::Usage)?;
    // The TTL plays no part in a release.
    let timing = crate::lock::Timing::new(Duration::from_secs(1), Duration::ZERO);
    let mut lock = Lock::holding(servers, keys, timing, token.to_string());
    let released = lock.release(Duration::ZERO, REQUEST_TIMEOUT, Everywhere::No, None);
    if released.refused > 0 {
        return Err(not_a_step(&args.lock, token, "releasing"));
    }
    if released.freed() {
        Ok(0)
    } else if released.lost() {
        Ok(no_longer_ours(args.lock.label(), token, "release"))
    } else {
        let why = match released.errors.is_empty() {
            true => "no majority of the servers answered that it held the token".to_string(),
            false => released.errors.join("; "),
        };
        Err(Failure::new(
            Kind::Unavailable,
            anyhow!("cannot give back lock '{}': {why}", args.lock.label()),
        ))
    }
}

/// The lock's keys, its servers and the lease, checked.
fn checked(
    which: &Which,
    servers: &ServerArgs,
    ttl: Duration,
) -> Result<(Keys, Vec<Server>, Lease), Failure> {
    let keys = settings::keys(which, &servers.prefix()).kind(Kind::Usage)?;
    let lease = Lease::new(ttl, None, None).kind(Kind::Usage)?;
    let servers = settings::servers(&servers.redis, None).kind(Kind::Usage)?;
    Ok((keys, servers, lease))
}

fn check_token(token: &str) -> Result<(), Failure> {
    if token.is_empty() {
        return Err(Failure::new(
            Kind::Usage,
            anyhow!("--token must not be empty"),
        ));
    }
    Ok(())
}

/// The refusal of a run's token: `extend` and `release --token` act on `redlock acquire`'s
/// holds only. A run keeps its own lease; cut short or deleted behind its back, a waiter would
/// start before the run stops its command.
fn not_a_step(which: &Which, token: &str, what: &str) -> Failure {
    Failure::new(
        Kind::Usage,
        anyhow!(
            "not {what} lock '{}': token {token} is a `redlock run`'s, and `extend` and \
             `release --token` act only on a lock `redlock acquire` took (break a run's with \
             `release --force`, which asks it to stop its command first)",
            which.label()
        ),
    )
}

/// Says that the lock no longer holds the token, and gives the status for it (76).
fn no_longer_ours(label: &str, token: &str, what: &str) -> u8 {
    say(
        Event::Lost,
        format!(
            "cannot {what} lock '{label}': it no longer holds token {token} (its lease ran out, \
             or it was broken or taken)"
        ),
        &[("exit_code", exit::LOCK_LOST.into())],
    );
    exit::LOCK_LOST
}

/// Whether stdout is /dev/null: also when it was closed, as Rust's runtime puts /dev/null in
/// place of a closed standard descriptor when the program starts.
fn prints_to_nothing() -> bool {
    use nix::sys::stat::{SFlag, fstat, stat};
    let device = |mode: u32| SFlag::from_bits_truncate(mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    matches!((fstat(std::io::stdout()), stat("/dev/null")), (Ok(out), Ok(null))
        if device(out.st_mode) && out.st_rdev == null.st_rdev)
}

/// `text` quoted for sh: in single quotes, each of its own as '\''.
fn sh_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_for_sh_survives_quotes() {
        assert_eq!(sh_quoted("deploy"), "'deploy'");
        assert_eq!(sh_quoted("it's"), r"'it'\''s'");
    }
}
