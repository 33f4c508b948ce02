//! The guard: a small process that leads the command's process group and takes the whole
//! group down with it if redlock dies.
//!
//! `PR_SET_PDEATHSIG` only reaches a direct child: if redlock is SIGKILLed, the command dies,
//! but whatever the command started (a shell's children, a pipeline) would go on running
//! without a lease. So the process redlock spawns forks once more, between fork and exec: the
//! child goes on to exec the command, and the parent stays behind as the guard. The guard
//! holds the read end of a pipe whose write end only redlock has; when redlock dies for any
//! reason the pipe reports end-of-file, and the guard SIGKILLs its process group, which is the
//! command's. While the command runs the guard ignores the signals redlock forwards (they
//! reach the whole group).
//!
//! When the command ends, the guard reports its status to redlock on a second pipe and stays,
//! still watching the lifeline, while it stops what the command left behind in the group
//! (SIGTERM, SIGKILL after the grace): those processes must not run on unguarded either. It is
//! their reaper (`PR_SET_CHILD_SUBREAPER`), so it knows when none is left, and then exits.
//!
//! Everything here runs in a forked child of a multi-threaded process: only async-signal-safe
//! system calls, no allocation, no locks.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use nix::libc;

/// redlock's ends of the guard's pipes: the lifeline, held open for as long as redlock lives,
/// and the report on which the guard sends the command's exit status.
pub struct Lifeline {
    _write: OwnedFd,
    read: OwnedFd,
    report_read: Option<File>,
    report_write: Option<OwnedFd>,
}

impl Lifeline {
    pub fn new() -> io::Result<Self> {
        // Close-on-exec everywhere: the command must not hold any of these.
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(Lifeline {
            _write: write,
            read,
            report_read: Some(report_read.into()),
            report_write: Some(report_write),
        })
    }

    /// The fds the guard inherits: the lifeline's read end and the report's write end.
    pub fn guard_fds(&self) -> (RawFd, RawFd) {
        let report = self.report_write.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        (self.read.as_raw_fd(), report)
    }

    /// Once the guard has its copy of the report's write end (ours would keep the report open
    /// after the guard is gone): the report's read end, for `reported_status`.
    pub fn spawned(&mut self) -> Option<File> {
        self.report_write = None;
        self.report_read.take()
    }
}

/// After the guard has exited: the command's status, if the guard lived to report it.
pub fn reported_status(report: &mut File) -> Option<ExitStatus> {
    let mut raw = [0u8; 4];
    report.read_exact(&mut raw).ok()?;
    Some(ExitStatus::from_raw(i32::from_ne_bytes(raw)))
}

/// Called between fork and exec. Returns in the process that is to exec the command; the
/// process it was called in becomes the guard and never returns. `grace` is how long the
/// command's leftovers get between SIGTERM and SIGKILL.
///
/// # Safety
/// Only in a `pre_exec` hook, after the process group is set.
pub unsafe fn split(lifeline: RawFd, report: RawFd, grace: Duration) -> io::Result<()> {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        // Until the guard ignores the forwarded signals, none may kill it.
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        let guard_pid = libc::getpid();
        match libc::fork() {
            -1 => {
                let error = io::Error::last_os_error();
                libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                Err(error)
            }
            0 => {
                // The command: it dies with the guard (also if that happened before prctl), and
                // starts with the mask it was given.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != guard_pid {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                Ok(())
            }
            command => guard(command, lifeline, report, grace),
        }
    }
}

/// The signals redlock forwards to the group, which are meant for the command alone.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The guard's fds after it has tidied up.
const LIFELINE: libc::c_int = 0;
const REPORT: libc::c_int = 1;

unsafe fn guard(command: libc::pid_t, lifeline: RawFd, report: RawFd, grace: Duration) -> ! {
    unsafe {
        for signal in FORWARDED {
            libc::signal(signal, libc::SIG_IGN);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        // Keep only the two pipes, as fds 0 and 1: the guard must not hold the command's pipes
        // or terminal open after the command has closed them.
        let (lifeline, report) = (
            libc::fcntl(lifeline, libc::F_DUPFD, 3),
            libc::fcntl(report, libc::F_DUPFD, 3),
        );
        libc::dup2(lifeline, LIFELINE);
        libc::dup2(report, REPORT);
        if libc::syscall(libc::SYS_close_range, 2, libc::c_uint::MAX, 0) != 0 {
            // Before Linux 5.9. std's exec-error pipe is among these: left open, it would
            // keep redlock waiting in spawn until the command ends.
            for fd in 2..libc::sysconf(libc::_SC_OPEN_MAX).clamp(1024, 65536) as libc::c_int {
                libc::close(fd);
            }
        }
        let status = wait_for_command(command);
        let bytes = status.to_ne_bytes();
        libc::write(REPORT, bytes.as_ptr().cast(), bytes.len());
        libc::close(REPORT);
        stop_leftovers(grace)
    }
}

/// Waits for the command to end, or for redlock to die (then it kills the group, itself too).
unsafe fn wait_for_command(command: libc::pid_t) -> libc::c_int {
    unsafe {
        let exited = libc::syscall(libc::SYS_pidfd_open, command, 0) as libc::c_int;
        let mut fds = [
            libc::pollfd {
                fd: LIFELINE,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: exited,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Without pidfds (Linux < 5.3), look at the command ten times a second.
        let (count, timeout) = if exited >= 0 { (2, -1) } else { (1, 100) };
        loop {
            let ready = libc::poll(fds.as_mut_ptr(), count, timeout);
            if ready > 0 && fds[0].revents != 0 {
                // redlock is gone: nothing keeps the lease alive any more.
                libc::kill(0, libc::SIGKILL);
            }
            let mut status = 0;
            if libc::waitpid(command, &mut status, libc::WNOHANG) == command {
                return status;
            }
        }
    }
}

/// SIGTERM to what is left of the group, SIGKILL (to the guard too) after `grace` or as soon
/// as redlock dies; exits once the guard has no child left in its group.
unsafe fn stop_leftovers(grace: Duration) -> ! {
    unsafe {
        libc::kill(0, libc::SIGTERM);
        libc::kill(0, libc::SIGCONT);
        let deadline = now() + grace.as_millis() as i64;
        let mut lifeline = libc::pollfd {
            fd: LIFELINE,
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            loop {
                let reaped = libc::waitpid(0, std::ptr::null_mut(), libc::WNOHANG);
                if reaped == 0 {
                    break;
                }
                if reaped < 0 {
                    // ECHILD: no child of ours is left in the group.
                    libc::_exit(0);
                }
            }
            if now() >= deadline {
                libc::kill(0, libc::SIGKILL);
            }
            if libc::poll(&mut lifeline, 1, 5) > 0 {
                libc::kill(0, libc::SIGKILL);
            }
        }
    }
}

/// Milliseconds on the monotonic clock.
unsafe fn now() -> i64 {
    unsafe {
        let mut time: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time);
        time.tv_sec * 1000 + time.tv_nsec / 1_000_000
    }
}
