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
//! reach the whole group), and when the command ends it exits the same way, so redlock sees
//! the command's status as the guard's.
//!
//! Everything here runs in a forked child of a multi-threaded process: only async-signal-safe
//! system calls, no allocation, no locks.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::libc;

/// redlock's end of the guard's pipe: held open for as long as redlock lives.
pub struct Lifeline {
    _write: OwnedFd,
    read: OwnedFd,
}

impl Lifeline {
    pub fn new() -> io::Result<Self> {
        // Close-on-exec both ends: the command must not hold either.
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(Lifeline {
            _write: write,
            read,
        })
    }

    /// The fd the guard watches.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

/// Called between fork and exec. Returns in the process that is to exec the command; the
/// process it was called in becomes the guard and never returns.
///
/// # Safety
/// Only in a `pre_exec` hook, after the process group is set.
pub unsafe fn split(lifeline: RawFd) -> io::Result<()> {
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
            command => guard(command, lifeline),
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

unsafe fn guard(command: libc::pid_t, lifeline: RawFd) -> ! {
    unsafe {
        for signal in FORWARDED {
            libc::signal(signal, libc::SIG_IGN);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // Keep only the lifeline, as fd 0: the guard must not hold the command's pipes or
        // terminal open after the command has closed them.
        libc::dup2(lifeline, 0);
        if libc::syscall(libc::SYS_close_range, 1, libc::c_uint::MAX, 0) != 0 {
            // Before Linux 5.9. std's exec-error pipe is among these: left open, it would
            // keep redlock waiting in spawn until the command ends.
            for fd in 1..libc::sysconf(libc::_SC_OPEN_MAX).clamp(1024, 65536) as libc::c_int {
                libc::close(fd);
            }
        }
        let exited = libc::syscall(libc::SYS_pidfd_open, command, 0) as libc::c_int;
        let mut fds = [
            libc::pollfd {
                fd: 0,
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
                exit_like(status);
            }
        }
    }
}

/// Ends the guard the way the command ended.
unsafe fn exit_like(status: libc::c_int) -> ! {
    unsafe {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            // The command may have dumped core; the guard must not add its own.
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status));
    }
}
