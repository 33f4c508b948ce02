//! redlock's own output on stdout: what `list`, `status` and `history` print (text or
//! `--json`), and `--generate`. A reader that stops reading (`redlock list | head -1`) is no
//! error: the rest is dropped quietly, and the subcommand ends with the status it had decided,
//! as if everything had been read (0 for `list` and `history`; `status` 0 or 1 by the lock), as
//! ripgrep ends. Rust ignores SIGPIPE, so such a write fails with EPIPE, which `println!` turns
//! into a panic (an "internal error", 70); coreutils' 141 (death by SIGPIPE) would fail a
//! `set -o pipefail` script that only wanted the first line.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;

use crate::exit::{Failure, Kind};

/// Set once the reader is gone: nothing more is written.
static READER_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout at once. Only a failure other than a closed pipe (a full disk
/// behind `> file`) is an error.
pub fn print(text: impl AsRef<[u8]>) -> Result<(), Failure> {
    if READER_GONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    written(
        stdout
            .write_all(text.as_ref())
            .and_then(|()| stdout.flush()),
    )
}

/// What a write to stdout came to (another's, as clap's help): a closed pipe is no error.
pub fn written(result: std::io::Result<()>) -> Result<(), Failure> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            READER_GONE.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(Failure::new(
            Kind::Internal,
            anyhow!("cannot write to stdout: {e}"),
        )),
    }
}

/// `text` and a newline.
pub fn line(text: impl std::fmt::Display) -> Result<(), Failure> {
    print(format!("{text}\n"))
}
