//! The guard: a small process that creates the command's process group and takes the whole
//! group down if redlock dies.
//!
//! `PR_SET_PDEATHSIG` only reaches a direct child: if redlock is SIGKILLed, the command would
//! die, but whatever the command started (a shell's children, a pipeline) would go on running
//! without a lease. So before the command starts, redlock forks a guard and makes it the leader
//! of a new process group, whose ID is the guard's PID; the command is spawned into that group.
//! The guard holds the read end of a pipe whose write end only redlock has. When redlock dies for
//! any reason the pipe reports end-of-file, and the guard SIGKILLs the command's group. As long
//! as the guard lives its PID, the group's ID, cannot be reused, so that signal can only reach
//! the command's group.
//!
//! Once the command is in the group, redlock writes one byte on the pipe, and the guard moves to
//! a process group of its own (see `leave_group`): the command's group then holds only the
//! command and what it starts, and is empty once they are gone; and a signal sent to redlock's
//! group (`kill -9 %1`, `timeout -s KILL`, SIGSTOP to a job) or to the command's cannot stop or
//! kill the guard with the others.
//!
//! The guard is not the command's parent: redlock is, so the command can be started with
//! `posix_spawn` (no second copy of redlock's memory) and redlock reaps it directly. If the guard
//! dies while redlock lives, redlock kills the command (`Event::Unguarded`): nothing would guard
//! it any more.
//!
//! Everything in the guard runs in a forked child of a multi-threaded process: only
//! async-signal-safe system calls, no allocation, no locks.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::libc;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::clock::Moment;

/// How long `await_step_out` waits at most.
const STEP_OUT_PATIENCE: Duration = Duration::from_millis(100);

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
                let guard = Guard {
                    pid: Pid::from_raw(pid),
                    lifeline: Some(write),
                };
                // Only from this side: the guard never execs, so this cannot fail for a child
                // that lives, and done by the guard it could come late and undo `step_out`.
                // SAFETY: setpgid on our own child.
                if unsafe { libc::setpgid(pid, pid) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(guard)
            }
        }
    }

    /// The guard's PID, which is also the ID of the command's process group.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Once the command is in the group (or failed to start): the guard moves to a process
    /// group of its own, so that the command's group empties when the command and what it left
    /// behind are gone. It still guards the group by its ID.
    pub fn step_out(&self) {
        if let Some(lifeline) = &self.lifeline {
            // If the guard is gone, `Event::Unguarded` says so.
            let _ = nix::unistd::write(lifeline, &[1]);
        }
    }

    /// Waits until the guard has left the command's group, so that an empty group means the
    /// command and what it left are gone. It leaves moments after `step_out`; one that is
    /// stopped or gone is not waited for longer than `STEP_OUT_PATIENCE`.
    pub fn await_step_out(&self) {
        let deadline = Moment::now() + STEP_OUT_PATIENCE;
        while nix::unistd::getpgid(Some(self.pid)) == Ok(self.pid) && Moment::now() < deadline {
            std::thread::sleep(Duration::from_micros(50));
        }
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
        // Reaped already (on its SIGCHLD, see `reap::Children::reap`) when this fails: its PID
        // may belong to another process by now, so nothing is sent to it then.
        if nix::sys::wait::waitpid(self.pid, Some(WaitPidFlag::WNOHANG))
            != Ok(WaitStatus::StillAlive)
        {
            return;
        }
        // Still our child, so still the guard: a stopped one would keep us waiting.
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGCONT);
        while nix::sys::wait::waitpid(self.pid, None) == Err(nix::errno::Errno::EINTR) {}
    }
}

/// The guard's one fd after it has tidied up.
const LIFELINE: libc::c_int = 0;

/// The guard's life: leaves the command's group when redlock says the command is in it, and
/// on end-of-file on the lifeline (redlock is gone, whatever the reason) SIGKILLs that group
/// and exits.
unsafe fn watch(lifeline: RawFd) -> ! {
    unsafe {
        let group = libc::getpid();
        // Every signal that could end or stop it, but SIGKILL: until it leaves, the guard is in
        // the command's group and gets whatever the command sends its group (SIGTERM, SIGALRM,
        // a real-time signal...); a terminal's stop signals would stop it. glibc's own signals
        // refuse, which is harmless.
        for signal in 1..=libc::SIGRTMAX() {
            if ![libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD].contains(&signal) {
                libc::signal(signal, libc::SIG_IGN);
            }
        }
        // redlock blocks the signals it takes from its signalfd; they are ignored now.
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
        let mut byte = 0u8;
        loop {
            match libc::read(LIFELINE, (&mut byte as *mut u8).cast(), 1) {
                1 => leave_group(),
                -1 if *libc::__errno_location() == libc::EINTR => {}
                // End-of-file (or an error, which only a closed pipe could cause here).
                _ => break,
            }
        }
        libc::kill(-group, libc::SIGKILL);
        libc::_exit(0)
    }
}

/// Moves the guard to a new process group of its own. Only a process's own PID can name a new
/// group, and the guard's already names the command's: so it forks a stand-in whose PID names
/// the new group, joins that group, and lets the stand-in go. The group lives on with the
/// guard as its only member, and its ID cannot be reused while it does. If that fails (no
/// process to spare), the guard joins redlock's group instead: it must not stay in the
/// command's, whose emptiness tells redlock that nothing of the command is left.
unsafe fn leave_group() {
    unsafe {
        if !into_group_of_its_own() {
            libc::setpgid(0, libc::getpgid(libc::getppid()));
        }
    }
}

unsafe fn into_group_of_its_own() -> bool {
    unsafe {
        let guard = libc::getpid();
        let mut stand_in = -1;
        for _ in 0..3 {
            stand_in = libc::fork();
            if stand_in != -1 || *libc::__errno_location() != libc::EAGAIN {
                break;
            }
        }
        match stand_in {
            -1 => false,
            0 => {
                // Gone with the guard, should the guard be killed before it lets it go.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != guard {
                    libc::_exit(0);
                }
                loop {
                    libc::pause();
                }
            }
            stand_in => {
                let moved =
                    libc::setpgid(stand_in, stand_in) == 0 && libc::setpgid(0, stand_in) == 0;
                libc::kill(stand_in, libc::SIGKILL);
                while libc::waitpid(stand_in, std::ptr::null_mut(), 0) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                moved
            }
        }
    }
}
