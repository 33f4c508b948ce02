//! The guard: a small process that creates the command's process group and takes the whole
//! group down if redlock dies.
//!
//! `PR_SET_PDEATHSIG` only reaches a direct child: if redlock is SIGKILLed, the command would
//! die, but whatever the command started (a shell's children, a pipeline) would go on running
//! without a lease. So before the command starts, redlock forks a guard. The guard makes a new
//! process group whose ID is its own PID, and the command is spawned into that group; the guard
//! then moves back to redlock's group, so that the command's group holds only the command and
//! what it starts, and is empty once they are gone. The guard holds the read end of a pipe whose
//! write end only redlock has; when redlock dies for any reason the pipe reports end-of-file,
//! and the guard SIGKILLs the command's group. As long as the guard lives, its PID (the group's
//! ID) cannot be reused, so that signal can only reach the command's group.
//!
//! The guard is not the command's parent: redlock is, so the command can be started with
//! `posix_spawn` (no second copy of redlock's memory) and redlock reaps it directly. If the guard
//! dies while redlock lives, redlock kills the command (see `child::watch`): nothing would guard
//! it any more.
//!
//! Everything in the guard runs in a forked child of a multi-threaded process: only
//! async-signal-safe system calls, no allocation, no locks.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::libc;
use nix::unistd::Pid;

/// redlock's side of the guard: its PID (the command's process group) and the write end of
/// the lifeline, held open for as long as redlock lives.
pub struct Guard {
    pid: Pid,
    lifeline: Option<OwnedFd>,
}

impl Guard {
    /// Forks the guard, leading a new process group for the command to be spawned into.
    pub fn start() -> io::Result<Guard> {
        // Close-on-exec: the command must not hold either end.
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // SAFETY: the child only runs async-signal-safe system calls (see `watch`).
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe { watch(read.as_raw_fd()) },
            pid => {
                // Also from this side, as shells do: the command may only join the group once
                // it exists, and whichever of the two runs first makes it.
                unsafe { libc::setpgid(pid, pid) };
                Ok(Guard {
                    pid: Pid::from_raw(pid),
                    lifeline: Some(write),
                })
            }
        }
    }

    /// The guard's PID, which is also the ID of the command's process group.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Once the command is in the group (or failed to start): the guard moves to redlock's own
    /// process group, so that the command's group empties when the command and what it left
    /// behind are gone. It still guards the group by its ID.
    pub fn step_out(&self) {
        // EPERM/ESRCH only if the guard is already gone, which `child::watch` reports.
        unsafe { libc::setpgid(self.pid.as_raw(), libc::getpgrp()) };
    }

    /// Once nothing of the command's is left to guard: the guard exits (it is reaped on drop).
    pub fn dismiss(&mut self) {
        self.lifeline = None;
    }
}

impl Drop for Guard {
    /// Dismisses the guard and waits for it to exit: left to init, it could stay a zombie in a
    /// container whose first process does not reap orphans.
    fn drop(&mut self) {
        self.dismiss();
        // A guard stopped along with redlock's process group would keep us waiting.
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGCONT);
        // ECHILD when it was reaped already, on its SIGCHLD (see `child::Children::reap`).
        while nix::sys::wait::waitpid(self.pid, None) == Err(nix::errno::Errno::EINTR) {}
    }
}

/// Signals the guard ignores: those redlock forwards to the command's group (the guard is in it
/// until it steps out), and the terminal's stop signals (a stopped guard could not act).
const IGNORED: [libc::c_int; 9] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// The guard's one fd after it has tidied up.
const LIFELINE: libc::c_int = 0;

/// The guard's life: waits for end-of-file on the lifeline (redlock is gone, whatever the
/// reason), then SIGKILLs the group it made, and exits.
unsafe fn watch(lifeline: RawFd) -> ! {
    unsafe {
        let group = libc::getpid();
        libc::setpgid(0, 0);
        for signal in IGNORED {
            libc::signal(signal, libc::SIG_IGN);
        }
        // redlock's threads block the signals they forward (signals.rs); they are ignored now.
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // Keep only the lifeline: the guard must not hold redlock's pipes, sockets or terminal
        // open (a reader of redlock's output would wait for the guard too).
        libc::dup2(lifeline, LIFELINE);
        if libc::syscall(libc::SYS_close_range, 1, libc::c_uint::MAX, 0) != 0 {
            // Before Linux 5.9.
            for fd in 1..libc::sysconf(libc::_SC_OPEN_MAX).clamp(1024, 65536) as libc::c_int {
                libc::close(fd);
            }
        }
        let mut fds = libc::pollfd {
            fd: LIFELINE,
            events: libc::POLLIN,
            revents: 0,
        };
        // Only redlock's death ends this: nothing is ever written to the lifeline.
        while libc::poll(&mut fds, 1, -1) <= 0 || fds.revents == 0 {}
        libc::kill(-group, libc::SIGKILL);
        libc::_exit(0)
    }
}
