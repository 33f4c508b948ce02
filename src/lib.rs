//! redlock: run a command under a distributed lock held in Redis. The program is this library's
//! `main` (src/main.rs only calls it); what else it makes public is the seam the tests use:
//! the lock's real key names (`Keys`) and the exit statuses (`exit`), so that no test spells
//! them again.

mod cli;
mod clock;
mod cmdline;
mod duration;
pub mod exit;
mod generate;
mod lock;
mod ops;
mod out;
mod outcome;
mod plan;
mod report;
mod run;
mod say;
mod settings;

use std::process::ExitCode;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::cli::{Cli, Command};
use crate::exit::{Classify, Failure, Kind};
use crate::say::{Event, say};

pub use lock::Keys;

/// The program: parse the command line, run what it says, and end with one status.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or("unknown panic");
        say(
            Event::Error,
            format!("internal error: {message}"),
            &[("kind", "internal".into())],
        );
    }));
    // args_os: a command's arguments need not be UTF-8.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let variable = std::env::var_os("REDLOCK_LOG_FORMAT");
    let format = say::format_before_parsing(&args, variable.clone());
    say::set_format(format);
    if let Some(bad) = say::bad_variable(&args, variable) {
        return usage_error(format!(
            "invalid value '{bad}' for REDLOCK_LOG_FORMAT: text or json"
        ));
    }
    if let [flag, what] = args.as_slice()
        && flag == generate::FLAG
    {
        return ended(generate::generate(&what.to_string_lossy()));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return ended(out::written(e.print()));
        }
        // The second when --log-format or REDLOCK_LOG_FORMAT is given.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand
            ) =>
        {
            return usage_error("missing subcommand (see 'redlock --help')".into());
        }
        Err(e) => return usage_error(usage_line(&e)),
    };
    // Read above already (an option given, or the variable); json given as the option wins.
    if cli.log_format == say::Format::Json {
        say::set_format(cli.log_format);
    }
    if let Some(name) = cli.command.name() {
        say::set_name(&name);
    }
    let command = cli.command;
    hide_secrets(&command, &args);
    // A bug must still end in one line and a documented status (the hook above printed it).
    let outcome = std::panic::catch_unwind(|| {
        let (quiet_busy, busy_code) = match &command {
            Command::Run(args) => (args.busy.quiet, args.busy.conflict_exit_code),
            Command::Acquire(args) => (args.busy.quiet, args.busy.conflict_exit_code),
            _ => (false, exit::BUSY),
        };
        // The TLS files serve every subcommand alike: read once, before anything runs.
        let tls = settings::tls(command.servers()).kind(Kind::Usage);
        // Every lease is measured on it: without it, nothing (docs/safety.md).
        let clock = tls.and_then(|()| clock::check().kind(Kind::Internal));
        let result = clock.and_then(|()| match &command {
            Command::Run(args) => plan::plan(args)
                .kind(Kind::Usage)
                .and_then(|plan| run::run(&plan)),
            Command::Status(args) => ops::status::status(args),
            Command::List(args) => ops::list::list(args),
            Command::Release(args) => ops::release::release(args),
            Command::History(args) => ops::history::history(args),
            Command::Acquire(args) => ops::steps::acquire(args),
            Command::Extend(args) => ops::steps::extend(args),
        });
        match result {
            Ok(code) => code,
            Err(failure) => {
                let code = failure.exit_code(busy_code);
                if !(failure.kind == Kind::Busy && quiet_busy) {
                    say_failure(&failure, code);
                }
                code
            }
        }
    });
    ExitCode::from(outcome.unwrap_or(exit::INTERNAL))
}

/// Keeps the passwords and health-check URLs given on the command line out of `ps`, before
/// anything forks (`cmdline.rs`); says once when it cannot, naming the variables that can.
fn hide_secrets(command: &Command, args: &[std::ffi::OsString]) {
    let own = || args.iter().take_while(|arg| *arg != "--");
    let given = |value: &str| own().any(|arg| arg.to_string_lossy().contains(value));
    // As given: clap split them at commas, which a password may hold.
    let urls = settings::rejoin(&command.servers().redis);
    let mut secrets: Vec<cmdline::Secret> = (urls.iter())
        .filter(|url| given(url))
        .map(|url| cmdline::in_redis_url(url))
        .collect();
    if let Command::Run(run) = command
        && let Some(ping) = run.ping.as_deref().filter(|ping| given(ping))
    {
        secrets.push(cmdline::in_ping_url(ping));
    }
    if let Err(e) = cmdline::hide(&secrets) {
        say::warning(
            format!(
                "cannot hide the secrets of --redis and --ping from other users' ps ({e}): \
                 give them in REDLOCK_URL and REDLOCK_PING instead"
            ),
            &[],
        );
    }
}

/// The status of what ended before a subcommand ran (`--help`, `--generate`), its failure said.
fn ended(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let code = failure.exit_code(exit::BUSY);
            say_failure(&failure, code);
            ExitCode::from(code)
        }
    }
}

/// A usage error, said before anything ran.
fn usage_error(message: String) -> ExitCode {
    say(
        Event::Error,
        message,
        &[("kind", "usage".into()), ("exit_code", exit::USAGE.into())],
    );
    ExitCode::from(exit::USAGE)
}

/// The one line of a failure: a `busy` or `unavailable` event, or an `error` with its kind.
fn say_failure(failure: &Failure, exit_code: u8) {
    let (event, kind) = match failure.kind {
        Kind::Busy => (Event::Busy, None),
        Kind::Unavailable | Kind::UnavailableNoPolicy => (Event::Unavailable, None),
        Kind::Usage => (Event::Error, Some("usage")),
        Kind::LimitMismatch => (Event::Error, Some("limit_mismatch")),
        Kind::CannotExecute => (Event::Error, Some("cannot_execute")),
        Kind::NotFound => (Event::Error, Some("not_found")),
        Kind::Signal(_) => (Event::Error, Some("signal")),
        Kind::Internal => (Event::Error, Some("internal")),
    };
    let mut fields = Vec::new();
    if let Some(kind) = kind {
        fields.push(("kind", kind.into()));
    }
    fields.push(("exit_code", exit_code.into()));
    fields.extend(failure.fields.iter().cloned());
    say(event, failure.to_string(), &fields);
}

/// clap's message fits on one line once its "error: " label, usage and tips are taken away;
/// a list (of missing arguments) is folded into that line.
fn usage_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let mut lines = rendered.lines();
    let first = lines.next().unwrap_or_default();
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if line.ends_with(':') {
        let items: Vec<&str> = lines
            .map_while(|l| l.strip_prefix("  "))
            .map(str::trim)
            .collect();
        line = format!("{} {}", line, items.join(", "));
    }
    let subcommand = subcommand_named(std::env::args_os().skip(1));
    // `redlock run -n x echo hi`: the command must come after `--`.
    let stray_word = error.kind() == ErrorKind::UnknownArgument
        && matches!(error.get(ContextKind::InvalidArg),
                    Some(ContextValue::String(arg)) if !arg.starts_with('-'));
    if stray_word && subcommand.as_deref() == Some("run") {
        line.push_str("; put the command after '--'");
    }
    match subcommand {
        Some(name) => format!("{line} (see 'redlock {name} --help')"),
        None => format!("{line} (see 'redlock --help')"),
    }
}

/// The subcommand a command line names: its first word that is one (a global option such as
/// `--log-format json` may come before it), as the clap definition has them.
fn subcommand_named(args: impl Iterator<Item = std::ffi::OsString>) -> Option<String> {
    let cli = <Cli as clap::CommandFactory>::command();
    args.take_while(|arg| arg != "--")
        .filter_map(|arg| arg.into_string().ok())
        .find(|arg| cli.find_subcommand(arg).is_some())
}
