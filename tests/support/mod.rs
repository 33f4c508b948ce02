//! Test fixtures: real `redis-server` processes on free loopback ports (`server.rs`, with TLS
//! in `tls.rs`, Sentinel in `sentinel.rs`, Cluster in `cluster.rs`), runs of redlock in the
//! background (`holder.rs`), a terminal (`terminal.rs`), event-based waits (`waiting.rs`), the
//! lock libraries (`apps.rs`), and `redlock` itself, below.

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::Signal;

pub mod apps;
pub mod cluster;
mod holder;
pub mod sentinel;
mod server;
mod terminal;
mod tls;
mod waiting;

pub use holder::*;
pub use server::*;
pub use terminal::*;
pub use tls::*;
pub use waiting::*;

/// The keys and channels of lock `name` under the default prefix, as redlock itself names them
/// (src/lock/keys.rs, through the library's seam): no test spells them again.
pub fn keys(name: &str) -> redlock_cli::Keys {
    redlock_cli::Keys::new("redlock", name)
}

/// redlock's exit statuses as `ExitStatus::code` gives them, from src/exit.rs itself.
pub mod code {
    use redlock_cli::exit;

    pub const USAGE: i32 = exit::USAGE as i32;
    pub const UNAVAILABLE: i32 = exit::UNAVAILABLE as i32;
    pub const INTERNAL: i32 = exit::INTERNAL as i32;
    pub const BUSY: i32 = exit::BUSY as i32;
    pub const LOCK_LOST: i32 = exit::LOCK_LOST as i32;
    pub const REPLACED: i32 = exit::REPLACED as i32;
    pub const LIMIT_MISMATCH: i32 = exit::LIMIT_MISMATCH as i32;
    pub const TIMED_OUT: i32 = exit::TIMED_OUT as i32;
    pub const CANNOT_EXECUTE: i32 = exit::CANNOT_EXECUTE as i32;
    pub const NOT_FOUND: i32 = exit::NOT_FOUND as i32;
}

/// The files under src/ whose name ends in `.EXTENSION`, for the tests that read the sources
/// (names.rs, layers.rs, docs.rs).
pub fn src_files(extension: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, extension: &str, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                walk(&path, extension, found);
            } else if path.extension().is_some_and(|e| e == extension) {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&src_dir(), extension, &mut found);
    assert!(!found.is_empty(), "no .{extension} file in src/");
    found
}

/// src/, where the sources are.
pub fn src_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Runs `command`, which must succeed (its stderr shows why not): its stdout.
pub fn succeeded(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs `command`, which must exit with `code` (its stderr shows what it said): its stderr.
pub fn exits_with(command: &mut Command, code: i32) -> String {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    stderr
}

/// `redlock` against `url`, with no REDLOCK_* variables inherited from the caller, no proxy
/// for the pings' endpoints on 127.0.0.1 (`HTTPS_PROXY`, ...), and the signals it handles at
/// their defaults (see `with_default_signals`).
pub fn redlock(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redlock"));
    for (key, _) in std::env::vars() {
        if key.starts_with("REDLOCK_") || key.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(key);
        }
    }
    command.env("REDLOCK_URL", url);
    with_default_signals(&mut command);
    command
}

/// The signals redlock forwards to its command (redlock-run(1), SIGNALS; docs/design.md).
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Starts `command` with the signals redlock handles at their defaults, as a terminal's shell
/// starts a program: a test run started in the background by a shell without job control has
/// SIGINT and SIGQUIT ignored, and redlock keeps a signal ignored at start ignored (as `nohup`
/// needs), so the tests that send them would wait for nothing.
pub fn with_default_signals(command: &mut Command) -> &mut Command {
    // SAFETY: signal(2) only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            for handled in FORWARDED {
                nix::sys::signal::signal(handled, nix::sys::signal::SigHandler::SigDfl)?;
            }
            Ok(())
        })
    }
}
