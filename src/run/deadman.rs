//! The dead-man switch: a kernel timer on `CLOCK_BOOTTIME` that SIGKILLs redlock itself shortly
//! before the lease can end, re-armed after every confirmed extension. If redlock stops running
//! (SIGSTOP, a debugger, a stuck thread) the kernel still kills it in time, and the guard (see
//! `guard.rs`) then kills the command's process group: nothing runs on past the lease because
//! the process meant to stop it was not running.

use std::sync::Mutex;

use anyhow::{Context, Result};
use nix::sys::signal::{SigEvent, SigevNotify, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;

use crate::clock::Moment;

/// The timer, and whether the command is gone (after which it is never armed again: an
/// extension still in flight at that moment must not bring it back).
pub struct DeadMan(Mutex<(Timer, bool)>);

// SAFETY: a POSIX timer id may be used from any thread of the process that created it.
unsafe impl Send for DeadMan {}
unsafe impl Sync for DeadMan {}

impl DeadMan {
    pub fn new() -> Result<Self> {
        let kill = SigEvent::new(SigevNotify::SigevSignal {
            signal: Signal::SIGKILL,
            si_value: 0,
        });
        // A safety feature (docs/safety.md, "What the kernel must provide"): no run without it.
        let timer = Timer::new(ClockId::CLOCK_BOOTTIME, kill).context(
            "the kernel refused the dead-man timer (timer_create on CLOCK_BOOTTIME, which \
             SIGKILLs a frozen redlock before its lease can end), and no run is safe without it: \
             run redlock on a Linux kernel that provides it (2.6.39 or later), not in a \
             sandbox that filters timer_create",
        )?;
        Ok(DeadMan(Mutex::new((timer, false))))
    }

    /// Kills this process at `at`, unless re-armed or disarmed before.
    pub fn arm(&self, at: Moment) {
        // A zero expiry would disarm the timer instead: a deadline already past fires at once.
        let at = TimeSpec::from(at.since_boot().max(std::time::Duration::from_nanos(1)));
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (timer, retired) = &mut *guard;
        if !*retired {
            let _ = timer.set(
                Expiration::OneShot(at),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            );
        }
    }

    /// Once the command is gone there is nothing left to stop in time: disarmed for good.
    pub fn disarm(&self) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (timer, retired) = &mut *guard;
        *retired = true;
        let _ = timer.set(
            Expiration::OneShot(TimeSpec::new(0, 0)),
            TimerSetTimeFlags::empty(),
        );
    }
}
