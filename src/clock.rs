//! The clock leases are measured on: `CLOCK_BOOTTIME`. Like `CLOCK_MONOTONIC` (Rust's
//! `Instant`) it never jumps with the wall clock, but unlike it, it keeps counting while the
//! machine is suspended, as the servers' clocks do: a lease must not seem longer to us than
//! it is to Redis because our laptop slept.

use std::ops::{Add, Sub};
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// Whether the kernel gives `CLOCK_BOOTTIME` (Linux 2.6.39 and later), which `Moment::now`
/// then takes for granted; said, with what it is for, where it does not.
pub fn check() -> anyhow::Result<()> {
    use anyhow::Context;
    clock_gettime(ClockId::CLOCK_BOOTTIME).map(drop).context(
        "the kernel refused CLOCK_BOOTTIME, the clock every lease is measured on (it counts \
         while the machine is suspended, as the servers' clocks do), and no lease is safe \
         without it: run redlock on Linux 2.6.39 or later",
    )
}

/// A point in time since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(Duration);

impl Moment {
    pub fn now() -> Self {
        let now = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME exists on Linux");
        Moment(Duration::from(now))
    }

    /// The first of `moments`, of which there is at least one.
    pub fn earliest(moments: impl Iterator<Item = Moment>) -> Moment {
        moments.min().expect("at least one moment")
    }

    pub fn elapsed(self) -> Duration {
        Moment::now().saturating_duration_since(self)
    }

    pub fn saturating_duration_since(self, earlier: Moment) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Since boot, for absolute timers on the same clock.
    pub fn since_boot(self) -> Duration {
        self.0
    }

    pub fn from_since_boot(duration: Duration) -> Self {
        Moment(duration)
    }
}

impl Add<Duration> for Moment {
    type Output = Moment;
    fn add(self, duration: Duration) -> Moment {
        Moment(self.0 + duration)
    }
}

impl Sub<Duration> for Moment {
    type Output = Moment;
    fn sub(self, duration: Duration) -> Moment {
        Moment(self.0.saturating_sub(duration))
    }
}

impl Sub<Moment> for Moment {
    type Output = Duration;
    fn sub(self, earlier: Moment) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// `timeout` for `poll`, in milliseconds: rounded up, since waking a little late is harmless
/// and a time-out rounded down to 0 would spin until the deadline.
pub fn poll_millis(timeout: Duration) -> i32 {
    timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_and_does_arithmetic() {
        let a = Moment::now();
        let b = a + Duration::from_millis(5);
        assert!(b > a);
        assert_eq!(b - a, Duration::from_millis(5));
        assert_eq!(a - b, Duration::ZERO);
        assert!(Moment::now() >= a);
    }
}
