//! Starting the command: with posix_spawn, into the process group the guard leads, with the
//! terminal if redlock holds one.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::errno::Errno;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use crate::exit::{Failure, Kind};
use crate::run::guard::Guard;
use crate::run::terminal;

/// The running command: its PID, its process group (the guard's PID), and whether it was given
/// the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Spawned {
    pub pid: Pid,
    pub group: Pid,
    pub has_terminal: bool,
}

/// Spawns the command into the process group `guard` made (see `guard.rs`), which then steps
/// out of it.
pub fn spawn(argv: &[OsString], env: &[(&str, String)], guard: &Guard) -> Result<Spawned, Failure> {
    // Hand the terminal to the command only if redlock holds it: then the command can read it,
    // and Ctrl-C reaches the command directly.
    let take_terminal = terminal::held();
    let group = guard.pid();
    // Before the command starts, as its group already exists (the guard leads it): a command
    // that read the terminal before its group had it would be stopped by SIGTTIN. Done here
    // rather than in the child between fork and exec, so that the command starts the one way,
    // through posix_spawn, with or without a terminal.
    if take_terminal {
        terminal::give_terminal(group);
    }
    let started = posix_spawn(argv, env, group);
    if started.is_err() && take_terminal {
        terminal::reclaim_terminal(group);
    }
    guard.step_out();
    let pid = started.map_err(|e| {
        let program = argv[0].to_string_lossy();
        let kind = if e.kind() == io::ErrorKind::NotFound {
            Kind::NotFound
        } else {
            Kind::CannotExecute
        };
        Failure::new(
            kind,
            anyhow::anyhow!("cannot run '{program}': {}", describe_spawn(&e)),
        )
    })?;
    Ok(Spawned {
        pid,
        group,
        has_terminal: take_terminal,
    })
}

/// Gives redlock's place to the command, run without the lock (`--on-unavailable run`): it
/// gets REDLOCK_NAME (or REDLOCK_KEY) and REDLOCK_UNLOCKED=1, and no REDLOCK_FENCE,
/// REDLOCK_TOKEN or REDLOCK_SLOT (an outer run's would be a lie). Returns only if it fails.
pub fn exec_unlocked(argv: &[OsString], label: &str, (variable, other): (&str, &str)) -> Failure {
    exec(argv, &|command| {
        // Several names: none is the lock's name (unset, as in a run that holds them).
        match label {
            "" => command.env_remove(variable),
            label => command.env(variable, label),
        }
        .env_remove(other)
        .env("REDLOCK_UNLOCKED", "1")
        .env_remove("REDLOCK_FENCE")
        .env_remove("REDLOCK_FENCES")
        .env_remove("REDLOCK_TOKEN")
        .env_remove("REDLOCK_SLOT")
        .env_remove("REDLOCK_SHARED");
    })
}

/// Gives redlock's place to a command that runs under an outer run's lease of the same lock:
/// its environment (REDLOCK_NAME, REDLOCK_TOKEN, REDLOCK_FENCE) is the outer run's already,
/// with `env` set (an outer run of several locks names none of them, and gives no one fence).
pub fn exec_nested(argv: &[OsString], env: &[(&str, String)]) -> Failure {
    exec(argv, &|command| {
        command.envs(env.iter().map(|(name, value)| (name, value)));
    })
}

/// Execs `argv`, its environment changed by `environment`. std's exec starts it as a spawn
/// would (nothing blocked, SIGPIPE at its default); the orphans it leaves are no longer ours
/// to reap. A script without a `#!` line is run with /bin/sh, as `posix_spawn` below does.
fn exec(argv: &[OsString], environment: &dyn Fn(&mut std::process::Command)) -> Failure {
    use std::os::unix::process::CommandExt;
    let _ = nix::sys::prctl::set_child_subreaper(false);
    let mut command = std::process::Command::new(&argv[0]);
    environment(&mut command);
    let mut error = command.args(&argv[1..]).exec();
    if error.raw_os_error() == Some(Errno::ENOEXEC as i32)
        && let Some(path) = found_in_path(&argv[0])
    {
        let mut shell = std::process::Command::new("/bin/sh");
        environment(&mut shell);
        error = shell.arg(path).args(&argv[1..]).exec();
    }
    let kind = if error.kind() == io::ErrorKind::NotFound {
        Kind::NotFound
    } else {
        Kind::CannotExecute
    };
    let program = argv[0].to_string_lossy();
    Failure::new(
        kind,
        anyhow::anyhow!("cannot run '{program}': {}", describe_spawn(&error)),
    )
}

/// Starts the command with posix_spawn, which unlike a fork does not copy redlock's memory,
/// and runs a script without a `#!` line with /bin/sh whatever the libc (glibc's execvp(3)
/// does, musl's does not). It starts as std would start it after a fork: nothing blocked
/// (redlock blocks the signals it handles, see signals.rs) and SIGPIPE at its default (Rust
/// ignores it, and an ignored signal stays ignored across exec).
fn posix_spawn(argv: &[OsString], env: &[(&str, String)], group: Pid) -> io::Result<Pid> {
    let args = argv
        .iter()
        .map(|arg| c_string(arg.as_bytes().to_vec()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut vars = std::env::vars_os()
        .filter(|(key, _)| !env.iter().any(|(name, _)| key == name))
        .map(|(key, value)| {
            let mut pair = key.into_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            c_string(pair)
        })
        .collect::<io::Result<Vec<_>>>()?;
    // An empty value takes the variable out: an outer run's REDLOCK_KEY, say, in a run of a name.
    for (key, value) in env.iter().filter(|(_, value)| !value.is_empty()) {
        vars.push(c_string(format!("{key}={value}").into_bytes())?);
    }
    let mut attributes = PosixSpawnAttr::init()?;
    attributes.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    attributes.set_pgroup(group)?;
    attributes.set_sigmask(&SigSet::empty())?;
    let mut default = SigSet::empty();
    default.add(Signal::SIGPIPE);
    attributes.set_sigdefault(&default)?;
    let actions = PosixSpawnFileActions::init()?;
    match posix_spawnp(&args[0], &actions, &attributes, &args, &vars) {
        // A script without a `#!` line: run it with /bin/sh, as execvp(3) (and so flock,
        // timeout or a shell) would.
        Err(Errno::ENOEXEC) => {
            let path = found_in_path(&argv[0]).ok_or(io::Error::from(Errno::ENOEXEC))?;
            let mut with_shell = vec![c_string(b"/bin/sh".to_vec())?, c_string(path.into_vec())?];
            with_shell.extend_from_slice(&args[1..]);
            Ok(posix_spawnp(
                &with_shell[0],
                &actions,
                &attributes,
                &with_shell,
                &vars,
            )?)
        }
        spawned => Ok(spawned?),
    }
}

/// Where a command is found: itself if it names a path, else the first executable of that name
/// in `PATH`, searched as execvp(3) does.
fn found_in_path(program: &OsString) -> Option<OsString> {
    if program.as_bytes().contains(&b'/') {
        return Some(program.clone());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate.is_file()
                && nix::unistd::access(candidate, nix::unistd::AccessFlags::X_OK).is_ok()
        })
        .map(|found| found.into_os_string())
}

fn c_string(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in an argument"))
}

fn describe_spawn(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "command not found".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}
