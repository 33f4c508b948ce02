//! The command: spawned in its own process group, tied to redlock's life, watched for exit
//! and job-control stops, and stopped with TERM, a grace period, then KILL.

use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::io::{self, IsTerminal};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, killpg, pthread_sigmask};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{Pid, getpgrp, getpid, tcgetpgrp, tcsetpgrp};

use crate::clock::Moment;
use crate::exit::{Failure, Kind};
use crate::run::events::Event;
use crate::run::guard::Guard;

/// The running command: its PID, its process group (the guard's PID), and whether it was given
/// the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Spawned {
    pub pid: Pid,
    pub group: Pid,
    pub has_terminal: bool,
}

/// Makes redlock the reaper of orphans its command leaves (instead of init), so that they can be
/// waited for and reaped when they are stopped: a zombie nobody reaps still counts as a member of
/// the process group (PR_SET_CHILD_SUBREAPER, prctl(2)).
pub fn adopt_orphans() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Spawns the command into the process group `guard` made (see `guard.rs`), which then steps
/// out of it.
pub fn spawn(argv: &[OsString], env: &[(&str, String)], guard: &Guard) -> Result<Spawned, Failure> {
    // Hand the terminal to the command only if redlock holds it: then the command can read it,
    // and Ctrl-C reaches the command directly.
    let take_terminal = io::stdin().is_terminal() && tcgetpgrp(io::stdin()).ok() == Some(getpgrp());
    let group = guard.pid();
    // Before the command starts, as its group already exists (the guard leads it): a command
    // that read the terminal before its group had it would be stopped by SIGTTIN. Done here
    // rather than in the child between fork and exec, so that the command starts the one way,
    // through posix_spawn, with or without a terminal.
    if take_terminal {
        give_terminal(group);
    }
    let started = posix_spawn(argv, env, group);
    if started.is_err() && take_terminal {
        reclaim_terminal(group);
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
    for (key, value) in env {
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

/// The children redlock waits for: the guard and, once it runs, the command. They are reaped
/// on SIGCHLD (`reap`), on the main thread.
#[derive(Debug, Default)]
pub struct Children {
    guard: Option<Pid>,
    command: Option<Pid>,
    guard_gone: bool,
}

impl Children {
    pub fn watch_guard(&mut self, guard: Pid) {
        self.guard = Some(guard);
    }

    /// From now on the command's stops, continues and exit are reported.
    pub fn watch(&mut self, command: Pid) {
        self.command = Some(command);
    }

    pub fn guard_gone(&self) -> bool {
        self.guard_gone
    }

    /// Reaps what has changed and adds it to `events`: the command's stops, continues and
    /// exit, and the guard's death (`Event::Unguarded`). Orphans of the command's that redlock
    /// adopted are reaped too, so they do not linger as zombies.
    pub fn reap(&mut self, events: &mut VecDeque<Event>) {
        // Until the command's PID is known, only the guard is looked at: a status reaped then
        // could be the command's, and would be lost.
        let target = match (self.command, self.guard) {
            (Some(_), _) => -1,
            (None, Some(guard)) => guard.as_raw(),
            (None, None) => return,
        };
        let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
        loop {
            let mut raw = 0;
            // SAFETY: waitpid with a valid pointer to the status.
            let reaped = unsafe { libc::waitpid(target, &mut raw, flags.bits()) };
            if reaped < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            // 0: nothing more has changed; ECHILD: no child left to wait for.
            if reaped <= 0 {
                return;
            }
            let reaped = Pid::from_raw(reaped);
            let stopped_or_continued = libc::WIFSTOPPED(raw) || libc::WIFCONTINUED(raw);
            events.push_back(if Some(reaped) == self.guard {
                if stopped_or_continued {
                    continue;
                }
                self.guard_gone = true;
                Event::Unguarded
            } else if Some(reaped) != self.command {
                continue; // an orphan of the command's, adopted
            } else if libc::WIFSTOPPED(raw) {
                Event::Stopped
            } else if libc::WIFCONTINUED(raw) {
                Event::Continued
            } else {
                Event::Exited(ExitStatus::from_raw(raw))
            });
        }
    }
}

/// Gives the terminal to the command's group.
pub fn give_terminal(group: Pid) {
    let _ = with_sigttou_blocked(|| tcsetpgrp(io::stdin(), group));
}

/// Takes the terminal back if the command's group has it (after `bg` it does not, and then
/// taking it would steal it from the shell).
pub fn reclaim_terminal(group: Pid) {
    if tcgetpgrp(io::stdin()).ok() == Some(group) {
        let _ = with_sigttou_blocked(|| tcsetpgrp(io::stdin(), getpgrp()));
    }
}

/// The command was stopped from the terminal (Ctrl-Z): stop redlock too, as a shell expects of
/// a job, and carry on where we were when the shell continues us (`fg`, `bg`). The lease is
/// not extended while we are stopped: a stop longer than it loses the lock, as any pause does.
pub fn suspend_with(spawned: Spawned) {
    reclaim_terminal(spawned.group);
    let _ = kill(getpid(), Signal::SIGSTOP);
    // Running again: in the foreground after `fg`, in the background after `bg`.
    if tcgetpgrp(io::stdin()).ok() == Some(getpgrp()) {
        give_terminal(spawned.group);
    }
    let _ = killpg(spawned.group, Signal::SIGCONT);
}

/// A background group that calls tcsetpgrp gets SIGTTOU unless it is blocked (tcsetpgrp(3)).
fn with_sigttou_blocked<T>(op: impl FnOnce() -> nix::Result<T>) -> nix::Result<T> {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old))?;
    let result = op();
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    result
}

fn describe_spawn(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "command not found".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

/// Signals the process group; returns false once no process of it is left.
pub fn signal_group(group: Pid, signal: Signal) -> bool {
    killpg(group, signal) != Err(Errno::ESRCH)
}

/// How long to wait for SIGKILLed processes to disappear before giving up on them.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// Stops whatever is left of a group whose leader has exited and been reaped: TERM (and CONT,
/// for stopped ones), then KILL at `deadline`. Returns whether anything was left. The members
/// are orphans we adopted (see `adopt_orphans`), or their children: we reap the former and poll
/// for the rest with signal 0.
pub fn stop_leftovers(group: Pid, deadline: Moment) -> bool {
    if !signal_group(group, Signal::SIGTERM) {
        return false;
    }
    signal_group(group, Signal::SIGCONT);
    let mut killed = false;
    loop {
        while let Ok(status) = waitpid(Pid::from_raw(-group.as_raw()), Some(WaitPidFlag::WNOHANG)) {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        if killpg(group, None) == Err(Errno::ESRCH) {
            return true;
        }
        if !killed && Moment::now() >= deadline {
            signal_group(group, Signal::SIGKILL);
            killed = true;
        }
        // Only a process stuck in the kernel outlives SIGKILL this long; it dies on its way out.
        if killed && Moment::now() >= deadline + KILL_PATIENCE {
            return true;
        }
        thread::sleep(Duration::from_millis(2));
    }
}
