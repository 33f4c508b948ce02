//! `--metrics-dir DIR`: the run's outcome as a Prometheus textfile (node_exporter's textfile
//! collector), `DIR/redlock_NAME.prom`. The text is `exposition.rs`'s; this file owns the file:
//! its name, the counters' read-modify-write, and the rename that makes it appear whole.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{Report, exposition};

/// How long a run waits for another redlock writing to DIR (see `lock`).
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// Writes `DIR/redlock_NAME.prom` for `report`. A DIR that cannot be written is a warning: the
/// job's own status is what the caller returns.
pub fn write(dir: &Path, report: &Report) {
    if let Err(e) = try_write(dir, report) {
        crate::say::warning(
            format!("cannot write metrics to {}: {e}", dir.display()),
            &[("metrics_dir", dir.display().to_string().into())],
        );
    }
}

fn try_write(dir: &Path, report: &Report) -> io::Result<()> {
    let name = file_name(&report.name);
    let _lock = lock(dir);
    // Missing, unreadable or not text: the counters start again (exposition::count).
    let previous = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
    let runs = exposition::count(&previous, &report.name, report.outcome);
    let text = exposition::render(report, SystemTime::now(), &runs);
    // The collector reads only `*.prom`, so it never sees the file half written; rename(2)
    // then replaces the old file in one step. No fsync: a crash that loses the new file only
    // resets the counters, which Prometheus takes as a counter reset.
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written =
        write_new(&temporary, &text).and_then(|()| std::fs::rename(&temporary, dir.join(&name)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Creates `path` afresh (a file left by a crashed run with the same pid is replaced, a
/// symbolic link planted there is not followed) with `text`, readable by all whatever the
/// umask: the collector runs as a user of its own.
fn write_new(path: &Path, text: &str) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file = File::options().write(true).create_new(true).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.write_all(text.as_bytes())
}

/// `redlock_NAME.prom`, NAME with every character outside `[a-zA-Z0-9_]` made `_` (a file name
/// any tool takes). When that changed the name, a hash of the real one is added, so `a-b` and
/// `a.b` get files of their own; the real name is the `name` label. At most 200 bytes of name
/// keep it well within a file name's 255: one name is no longer (lock::check_name), several
/// joined (`a+b`) are cut there, with the hash.
fn file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(200)
        .collect();
    if safe == name {
        format!("redlock_{safe}.prom")
    } else {
        format!("redlock_{safe}_{:08x}.prom", fnv1a(name) as u32)
    }
}

/// FNV-1a: a file name must not change with the Rust release, as std's hasher may.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An exclusive flock(2) on DIR itself (no lock file to leave behind), held while the counters
/// are read, incremented and renamed into place: runs of one name that end together on this
/// host (a `--limit` semaphore, overlapping cron entries) would otherwise lose increments, last
/// writer wins. Bounded, since a redlock stopped while it holds the lock must not keep the
/// others from exiting: after `LOCK_PATIENCE`, or on a DIR that takes no locks, the file is
/// written without it, and at worst an increment is lost.
fn lock(dir: &Path) -> Option<Flock<File>> {
    let mut file = File::open(dir).ok()?;
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Some(lock),
            Err((back, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_need_no_change_keep_it() {
        assert_eq!(file_name("backup_2"), "redlock_backup_2.prom");
    }

    #[test]
    fn changed_names_get_a_hash_of_the_real_one() {
        let dash = file_name("db-backup");
        let dot = file_name("db.backup");
        assert!(dash.starts_with("redlock_db_backup_"), "{dash}");
        assert!(dash.ends_with(".prom") && dash.len() == "redlock_db_backup_12345678.prom".len());
        assert_ne!(dash, dot);
        assert_ne!(file_name("db_backup"), dash);
        assert_eq!(file_name("db-backup"), dash, "stable");
        // One `_` a character, not a byte.
        assert!(file_name("é/x").starts_with("redlock___x_"));
    }

    /// Several names of 200 bytes each, joined: still a file name (at most 255 bytes).
    #[test]
    fn a_set_of_long_names_is_cut_with_its_hash() {
        let long = ["a".repeat(200), "b".repeat(200)].join("+");
        let name = file_name(&long);
        assert!(name.len() <= 255, "{}", name.len());
        assert_ne!(
            name,
            file_name(&["a".repeat(200), "c".repeat(200)].join("+"))
        );
    }

    #[test]
    fn fnv1a_is_the_published_one() {
        // Test vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
