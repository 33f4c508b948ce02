//! `redlock release`: break a lock on an operator's order.

use anyhow::anyhow;

use crate::cli::ReleaseArgs;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::view::{Broken, break_lock};
use crate::lock::{Keys, beyond_minority};
use crate::settings;
use crate::status::{self, TIMEOUT, describe};

pub fn release(args: &ReleaseArgs) -> Result<u8, Failure> {
    settings::check_name("the lock name", &args.name).kind(Kind::Usage)?;
    if args.token.as_deref() == Some("") {
        return Err(Failure::new(
            Kind::Usage,
            anyhow!("--token must not be empty"),
        ));
    }
    let keys = Keys::new(&args.servers.prefix, &args.name);
    let (mut servers, addresses) = status::targets(&args.servers)?;
    let total = servers.len();
    if !args.force {
        let views = status::views(&mut servers, &addresses, &keys);
        let status = status::summarize(&args.name, views)?;
        let holder = status
            .holder
            .as_ref()
            .map_or("nobody".to_string(), describe);
        return Err(Failure::new(
            Kind::Usage,
            anyhow!(
                "not breaking lock '{}' without --force: it would delete {} (held by {holder}) on \
                 {total} server(s) and wake its waiters; its holder would stop its command",
                args.name,
                keys.lock
            ),
        ));
    }
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    for server in servers.iter_mut().flatten() {
        match break_lock(server, &keys, args.token.as_deref(), TIMEOUT) {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let deleted = outcomes.iter().filter(|o| **o == Broken::Deleted).count();
    if deleted > 0 {
        let unreached = match errors.is_empty() {
            true => String::new(),
            false => format!("; not reached: {}", errors.join("; ")),
        };
        eprintln!(
            "redlock: broke lock '{}' on {deleted} of {total} server(s){unreached}",
            args.name
        );
        return Ok(0);
    }
    if beyond_minority(errors.len(), total) {
        return Err(Failure::new(
            Kind::Unavailable,
            anyhow!("{}", errors.join("; ")),
        ));
    }
    if outcomes.contains(&Broken::OtherToken) {
        eprintln!(
            "redlock: lock '{}' holds another token; nothing was broken",
            args.name
        );
    } else {
        eprintln!(
            "redlock: lock '{}' is not held; nothing to break",
            args.name
        );
    }
    Ok(1)
}
