//! The man pages and shell completions, generated from the one clap definition (`--generate`).
//! The outputs are committed under man/ and completions/; a test fails when they drift.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit::{self, Classify, Failure, Kind};
use crate::out;

/// `redlock --generate WHAT`: kept out of the clap definition, so that no completion offers it.
pub const FLAG: &str = "--generate";

/// Prints one output (`man`, `bash`, `zsh`, `fish`, `elvish`, `powershell`), or with `all`
/// writes every file under the current directory.
/// An unknown WHAT is a usage error; an output that cannot be written, an internal one.
pub fn generate(what: &str) -> Result<(), Failure> {
    let shell = match what {
        "man" => {
            let page = man_page(&Cli::command(), Page::Main).kind(Kind::Internal)?;
            return out::print(page);
        }
        "all" => {
            for (path, contents) in files().kind(Kind::Internal)? {
                std::fs::create_dir_all(path.parent().expect("a directory"))
                    .and_then(|()| std::fs::write(&path, contents))
                    .with_context(|| format!("cannot write {}", path.display()))
                    .kind(Kind::Internal)?;
            }
            return Ok(());
        }
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        "elvish" => Shell::Elvish,
        "powershell" => Shell::PowerShell,
        other => {
            return Err(Failure::new(
                Kind::Usage,
                anyhow::anyhow!(
                    "cannot generate {other:?}: man, bash, zsh, fish, elvish, powershell or all"
                ),
            ));
        }
    };
    out::print(completion(shell))
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
    // Built, so that each subcommand's page lists the global options (--log-format) too;
    // without the `help` subcommand building would add, which has no page of its own.
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
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
        exit_table(&mut out, "redlock run", exit::RUN);
    }
    if page != Page::Run {
        exit_table(
            &mut out,
            "redlock status, list, release, history, acquire, extend",
            exit::OPERATORS,
        );
    }
    if page != Page::Operator {
        out.extend_from_slice(SIGNALS.as_bytes());
    }
    out.extend_from_slice(ENVIRONMENT.as_bytes());
    if page != Page::Operator {
        out.extend_from_slice(ENVIRONMENT_RUN.as_bytes());
    }
    if page == Page::Main {
        out.extend_from_slice(EXAMPLES.as_bytes());
    }
    out.extend_from_slice(SEE_ALSO.as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// One exit-status table of `exit`, as a subsection of tagged paragraphs.
fn exit_table(out: &mut Vec<u8>, title: &str, rows: &[(exit::Status, &str)]) {
    out.extend_from_slice(format!(".SS \"{title}\"\n").as_bytes());
    for (status, meaning) in rows {
        let row = format!(".TP\n{}\n{}\n", roff(&status.to_string()), roff(meaning));
        out.extend_from_slice(row.as_bytes());
    }
}

/// Text as roff reads it: `code` in bold, and `-` a minus, not a hyphen that may break a line
/// or print as a dash (groff_char(7)).
fn roff(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.replace('-', "\\-").split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("\\fB{part}\\fR"));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// What `redlock run` does with the signals it gets, for a reader deciding which one to send.
const SIGNALS: &str = r#".SH SIGNALS
SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to \fBredlock run\fR are forwarded to the command's process group, each time they arrive. redlock never escalates on its own: it keeps the lease alive while the command shuts down, then releases the lock and exits with the command's status (128+N when the signal killed it). A stopped command is continued after SIGTERM, SIGINT, SIGHUP or SIGQUIT so that it can act on them. Send SIGKILL to redlock to end both at once: the guard process then kills the command's process group.
.PP
In the foreground of a terminal, redlock hands the terminal to the command: Ctrl\-C reaches the command directly, and a signal the terminal already delivered to it is not sent again. Ctrl\-Z stops the command and redlock with it, and \fBfg\fR continues both; the lease is not extended while they are stopped, so a stop longer than the lease loses the lock and the job is killed (status 137).
.PP
A signal that arrives while redlock is still taking or waiting for the lock ends the run with 128+N before the command starts. A signal ignored when redlock started (\fBnohup\fR ignores SIGHUP) stays ignored, by redlock and by the command. The command starts with no signal blocked and SIGPIPE at its default.
"#;

/// Read by every subcommand.
const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
REDLOCK_URL
The Redis server URL, or a comma\-separated list of them (\fB\-\-redis\fR).
.TP
REDLOCK_PREFIX
The prefix of every key (\fB\-\-prefix\fR).
.TP
REDLOCK_TLS_CA, REDLOCK_TLS_CERT, REDLOCK_TLS_KEY
The CA certificates, client certificate and its key for rediss:// (\fB\-\-tls\-ca\fR, \fB\-\-tls\-cert\fR, \fB\-\-tls\-key\fR).
.TP
SSL_CERT_FILE
A PEM file of certificates to trust for rediss:// instead of the system's, unless \fB\-\-tls\-ca\fR is given.
.TP
REDLOCK_LOG_FORMAT
The format of redlock's own lines on stderr, text or json (\fB\-\-log\-format\fR).
.TP
JOURNAL_STREAM
Set by systemd when stderr goes to the journal: when its device and inode are those of stderr, each of redlock's lines starts with the syslog priority journald reads (\fB<3>\fR to \fB<7>\fR, \fBsd\-daemon\fR(3)).
"#;

/// The rest of the run page's ENVIRONMENT: what else `run` reads, and what the command gets.
const ENVIRONMENT_RUN: &str = r#".TP
USER, LOGNAME
The user named in the holder's details (\fBredlock status\fR); without them, the name of the user ID.
.TP
REDLOCK_HOST
The host name recorded in the holder's details and the run history, instead of the machine's (a container's host name is often a meaningless id).
.TP
REDLOCK_ON_UNAVAILABLE, REDLOCK_HISTORY, REDLOCK_METRICS_DIR, REDLOCK_PING
The defaults of \fB\-\-on\-unavailable\fR, \fB\-\-history\fR, \fB\-\-metrics\-dir\fR and \fB\-\-ping\fR.
.TP
PATH
Where the command is searched for, as \fBexecvp\fR(3) does.
.PP
The command gets redlock's environment, and:
.TP
REDLOCK_NAME
The lock name (not with \fB\-\-key\fR); unset with several names.
.TP
REDLOCK_KEY
With \fB\-\-key\fR: the key (instead of REDLOCK_NAME).
.TP
REDLOCK_TOKEN
This run's random token: the value of the lock key while it holds the lock (of each lock, with several names).
.TP
REDLOCK_FENCE
The fencing token: strictly increasing for each acquisition of the name, so that a resource can reject writes from an older holder. Unset with several names.
.TP
REDLOCK_FENCES
Each lock's fence, as a JSON object by name, in the order the locks were taken (sorted): {"db":4,"nas":17}; one lock's too.
.TP
REDLOCK_SLOT
Its place, 0 to N\-1, with \fB\-\-limit\fR N (0 for a lock).
.TP
REDLOCK_SHARED
1 for a shared holder (\fB\-\-shared\fR); unset otherwise. Its REDLOCK_FENCE is the current fence, which the next exclusive holder's exceeds.
.TP
REDLOCK_UNLOCKED
1 when it runs without the lock (\fB\-\-on\-unavailable run\fR); it then gets no token, fence or place.
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
\fBredlock\fR(1), \fBredlock\-run\fR(1), \fBredlock\-status\fR(1), \fBredlock\-list\fR(1), \fBredlock\-release\fR(1), \fBredlock\-history\fR(1), \fBflock\fR(1), \fBtimeout\fR(1), \fBredis\-server\fR(1)
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
