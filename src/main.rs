//! redlock: run a command under a distributed lock held in Redis.

mod cli;
mod clock;
mod duration;
mod exit;
mod generate;
mod lock;
mod ops;
mod report;
mod run;
mod settings;

use std::process::ExitCode;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::cli::{Cli, Command};
use crate::exit::{Classify, Kind};

/// The README builds redlock against musl, whose start-up asks the CPU nothing (glibc's asks it
/// about its caches some fifty times, and each CPUID traps to the hypervisor in a virtual
/// machine); but musl's allocator unmaps freed memory at once, and that churn cost more than
/// the start-up saved. dlmalloc keeps what it has (see BENCHMARKS.md).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or("unknown panic");
        eprintln!("redlock: internal error: {message}");
    }));
    // args_os: a command's arguments need not be UTF-8.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).take(3).collect();
    if let [flag, what] = args.as_slice()
        && flag == generate::FLAG
    {
        return match generate::generate(&what.to_string_lossy()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("redlock: {e:#}");
                ExitCode::from(exit::USAGE)
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("redlock: missing subcommand (see 'redlock --help')");
            return ExitCode::from(exit::USAGE);
        }
        Err(e) => {
            eprintln!("redlock: {}", usage_line(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
    let command = cli.command;
    // A bug must still end in one line and a documented status (the hook above printed it).
    let outcome = std::panic::catch_unwind(|| {
        let (quiet_busy, busy_code) = match &command {
            Command::Run(args) => (args.quiet, args.conflict_exit_code),
            _ => (false, exit::BUSY),
        };
        // The TLS files serve every subcommand alike: read once, before anything runs.
        let tls = settings::tls(command.servers()).kind(Kind::Usage);
        let result = tls.and_then(|()| match &command {
            Command::Run(args) => run::run(args),
            Command::Status(args) => ops::status::status(args),
            Command::List(args) => ops::list::list(args),
            Command::Release(args) => ops::release::release(args),
            Command::History(args) => ops::history::history(args),
        });
        match result {
            Ok(code) => code,
            Err(failure) => {
                if !(failure.kind == Kind::Busy && quiet_busy) {
                    eprintln!("redlock: {failure}");
                }
                failure.exit_code(busy_code)
            }
        }
    });
    ExitCode::from(outcome.unwrap_or(exit::INTERNAL))
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
    let subcommand = std::env::args_os()
        .nth(1)
        .and_then(|a| a.into_string().ok())
        .filter(|a| ["run", "status", "list", "release"].contains(&a.as_str()));
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
