//! The man pages and shell completions, generated from the one clap definition (`--generate`).
//! The outputs are committed under man/ and completions/; a test fails when they drift.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// `redlock --generate WHAT`: kept out of the clap definition, so that no completion offers it.
pub const FLAG: &str = "--generate";

/// Prints one output (`man`, `bash`, `zsh`, `fish`, `elvish`, `powershell`), or with `all`
/// writes every file under the current directory.
pub fn generate(what: &str) -> Result<()> {
    let shell = match what {
        "man" => {
            let page = man_page(&Cli::command(), Page::Main)?;
            return std::io::stdout().write_all(&page).map_err(Into::into);
        }
        "all" => {
            for (path, contents) in files()? {
                std::fs::create_dir_all(path.parent().expect("a directory"))?;
                std::fs::write(&path, contents)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            return Ok(());
        }
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        "elvish" => Shell::Elvish,
        "powershell" => Shell::PowerShell,
        other => anyhow::bail!(
            "cannot generate {other:?}: man, bash, zsh, fish, elvish, powershell or all"
        ),
    };
    std::io::stdout().write_all(&completion(shell))?;
    Ok(())
}

/// Which man page: the sections differ.
#[derive(Clone, Copy, PartialEq)]
enum Page {
    Main,
    Run,
    Operator,
}

/// Every generated file, with its path in the repository.
pub fn files() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "redlock.bash"),
        (Shell::Zsh, "_redlock"),
        (Shell::Fish, "redlock.fish"),
        (Shell::Elvish, "redlock.elv"),
        (Shell::PowerShell, "_redlock.ps1"),
    ] {
        files.push((PathBuf::from("completions").join(name), completion(shell)));
    }
    let cli = Cli::command();
    files.push((PathBuf::from("man/redlock.1"), man_page(&cli, Page::Main)?));
    for sub in cli.get_subcommands() {
        // clap names are 'static; a few short strings in a one-off generator may leak.
        let file: &'static str = format!("redlock-{}", sub.get_name()).leak();
        let shown: &'static str = format!("redlock {}", sub.get_name()).leak();
        let page = match sub.get_name() {
            "run" => Page::Run,
            _ => Page::Operator,
        };
        let cmd = sub.clone().name(file).display_name(file).bin_name(shown);
        files.push((
            PathBuf::from(format!("man/{file}.1")),
            man_page(&cmd, page)?,
        ));
    }
    Ok(files)
}

fn completion(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "redlock", &mut out);
    out
}

/// A man page: what clap_mangen renders, plus the sections scripts and operators need.
fn man_page(cmd: &clap::Command, page: Page) -> Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone())
        .manual("redlock manual")
        .source(format!("redlock {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.get_subcommands().next().is_some() {
        man.render_subcommands_section(&mut out)?;
    }
    out.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    if page != Page::Operator {
        out.extend_from_slice(EXIT_STATUS_RUN.as_bytes());
    }
    if page != Page::Run {
        out.extend_from_slice(EXIT_STATUS_OPERATORS.as_bytes());
    }
    out.extend_from_slice(ENVIRONMENT.as_bytes());
    if page == Page::Main {
        out.extend_from_slice(EXAMPLES.as_bytes());
    }
    out.extend_from_slice(SEE_ALSO.as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

const EXIT_STATUS_RUN: &str = r#".SS "redlock run"
.TP
the command's
The command ran and exited: its status, unchanged.
.TP
128+N
The command was killed by signal N (also when redlock is interrupted by signal N while it waits for the lock).
.TP
75
Busy: the lock was not acquired within \fB\-\-wait\fR; the command did not run (EX_TEMPFAIL; \fB\-E\fR changes it).
.TP
69
Redis unavailable before the command ran: cannot connect, wrong or missing password, no answer in time, or a key of the wrong type in the way (EX_UNAVAILABLE).
.TP
64
Usage error: bad flag, duration, name or URL, or an unsafe combination (EX_USAGE).
.TP
76
The lock was lost: deleted, broken by \fBredlock release \-\-force\fR, taken by another holder, or not extended in time. Noticed while the command ran (at once for a break or a takeover), the command was stopped (SIGTERM, then SIGKILL after \fB\-\-kill\-after\fR); found at release, the command had ended. The message gives the command's own status.
.TP
126
The command exists but cannot be executed.
.TP
127
The command was not found.
.TP
70
Internal error (EX_SOFTWARE).
"#;

const EXIT_STATUS_OPERATORS: &str = r#".SS "redlock status, list, release"
.TP
0
status: the lock is held; list: done; release: no majority of the servers holds the lock any more (its holder released it when asked, or it was deleted).
.TP
1
status: the lock is free; release: there was nothing to break.
.TP
64
Usage error, and release without \fB\-\-force\fR.
.TP
69
Redis unavailable; for release: too few servers answered to know that no majority holds the lock (the message names them).
"#;

const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
REDLOCK_URL
The Redis server URL, or a comma\-separated list of them (\fB\-\-redis\fR).
.TP
REDLOCK_PREFIX
The prefix of every key (\fB\-\-prefix\fR).
.TP
SSL_CERT_FILE
A PEM file of certificates to trust for rediss:// instead of the system's.
.PP
The command run by \fBredlock run\fR gets \fBREDLOCK_NAME\fR (the lock name), \fBREDLOCK_TOKEN\fR (this run's token) and \fBREDLOCK_FENCE\fR (the fencing token, strictly increasing for each acquisition of the name).
"#;

const EXAMPLES: &str = r#".SH EXAMPLES
A nightly cron job on several hosts; one runs it, the others exit quietly with 0:
.PP
.nf
.RS 4
0 3 * * *  redlock run \-\-name backup \-q \-E 0 \-\-min\-hold 1h \-\- /usr/local/bin/backup
.RE
.fi
.PP
A script that waits for its turn and tells the outcomes apart:
.PP
.nf
.RS 4
redlock run \-\-name deploy \-\-wait 10m \-\- ./deploy.sh
case $? in
  75) echo "another deploy is running" ;;
  69) echo "Redis is unavailable" ;;
  76) echo "the lock was lost; the deploy was stopped" ;;
esac
.RE
.fi
.PP
Three independent servers; the lock needs two of them:
.PP
.nf
.RS 4
REDLOCK_URL=redis://r1,redis://r2,redis://r3 redlock run \-\-name report \-\- ./report.sh
.RE
.fi
.PP
Who holds a lock, and breaking a stale one:
.PP
.nf
.RS 4
redlock status \-\-name backup
redlock release \-\-name backup \-\-force
.RE
.fi
"#;

const SEE_ALSO: &str = r#".SH "SEE ALSO"
\fBflock\fR(1), \fBtimeout\fR(1), \fBredis\-server\fR(1)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed completions and man pages are what the code generates; run
    /// `cargo run -- --generate all` to refresh them.
    #[test]
    fn committed_files_are_up_to_date() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        for (path, contents) in files().unwrap() {
            let committed = std::fs::read(root.join(&path)).unwrap_or_default();
            assert!(
                committed == contents,
                "{} is stale: run `cargo run -- --generate all`",
                path.display()
            );
        }
    }
}
