//! The heartbeat: a thread that extends the lease every `--heartbeat`, retries quickly when an
//! extension fails, and reports the lease lost when an extension finds it gone. It publishes
//! the end of the confirmed lease in a `LeaseEnd`, which the main thread watches on its own
//! clock: a heartbeat stuck in a request (a slow DNS lookup, a reconnect) cannot delay the
//! stopping of the command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, channel};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::clock::Moment;
use crate::deadman::DeadMan;
use crate::duration::human;
use crate::events::{Event, Sender};
use crate::lock::{Extension, Lock};
use crate::settings::Lease;

/// Pause between retries of a failed extension.
const RETRY: Duration = Duration::from_millis(100);

/// The end of the lease as last confirmed, shared between threads. Publishing a new end also
/// re-arms the dead-man switch, `margin` / 2 before it.
pub struct LeaseEnd {
    since_boot_nanos: AtomicU64,
    deadman: DeadMan,
    margin: Duration,
}

impl LeaseEnd {
    pub fn new(end: Moment, deadman: DeadMan, margin: Duration) -> Self {
        let lease_end = LeaseEnd {
            since_boot_nanos: AtomicU64::new(0),
            deadman,
            margin,
        };
        lease_end.set(end);
        lease_end
    }

    fn set(&self, end: Moment) {
        self.since_boot_nanos
            .store(end.since_boot().as_nanos() as u64, Ordering::Release);
        self.deadman.arm(end - self.margin / 2);
    }

    pub fn get(&self) -> Moment {
        Moment::from_since_boot(Duration::from_nanos(
            self.since_boot_nanos.load(Ordering::Acquire),
        ))
    }

    /// The last moment to SIGKILL the command: `margin` before the end, ahead of the dead-man.
    pub fn kill_by(&self) -> Moment {
        self.get() - self.margin
    }

    /// Once the command and what it left behind are gone, nothing needs stopping in time.
    pub fn command_gone(&self) {
        self.deadman.disarm();
    }
}

/// The heartbeat thread, started only when the first extension is due: a command that ends
/// before that (most short jobs) never needs it.
pub enum Heartbeat {
    Due(Box<Beat>),
    Running {
        stop: mpsc::Sender<()>,
        thread: JoinHandle<Lock>,
    },
}

/// What the thread needs.
pub struct Beat {
    lock: Lock,
    lease: Lease,
    sent: Moment,
    lease_end: Arc<LeaseEnd>,
    events: Sender,
    verbose: bool,
}

impl Beat {
    /// The command must have had SIGTERM by then, so that SIGKILL lands before the lease ends;
    /// extensions confirmed after it are of no use.
    fn signal_at(&self) -> Moment {
        self.lease_end.get() - self.lease.kill_after
    }

    /// When the first extension is due: a heartbeat after the grant, or earlier if the lease
    /// is that short.
    fn first_extension(&self) -> Moment {
        (self.sent + self.lease.heartbeat).min(self.signal_at())
    }
}

impl Heartbeat {
    /// A heartbeat for a lease granted by a request sent at `sent`, ending at `lease_end`; the
    /// thread starts with `start_if_due`.
    pub fn new(
        lock: Lock,
        lease: Lease,
        sent: Moment,
        lease_end: Arc<LeaseEnd>,
        events: Sender,
        verbose: bool,
    ) -> Self {
        Heartbeat::Due(Box::new(Beat {
            lock,
            lease,
            sent,
            lease_end,
            events,
            verbose,
        }))
    }

    /// When the thread must start, until it has.
    pub fn due(&self) -> Option<Moment> {
        match self {
            Heartbeat::Due(beat) => Some(beat.first_extension()),
            Heartbeat::Running { .. } => None,
        }
    }

    /// Starts the thread once it is due.
    pub fn start_if_due(&mut self) -> std::io::Result<()> {
        if self.due().is_none_or(|due| Moment::now() < due) {
            return Ok(());
        }
        let (stop, stopped) = channel();
        // The state goes over only once the thread runs: if it cannot start, the lock stays here.
        let (hand_over, handed) = channel::<Box<Beat>>();
        let thread = thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let mut state = handed
                    .recv()
                    .expect("the state is sent once the thread runs");
                beat(&mut state, &stopped);
                state.lock
            })?;
        let Heartbeat::Due(beat) = std::mem::replace(self, Heartbeat::Running { stop, thread })
        else {
            unreachable!("checked above")
        };
        let _ = hand_over.send(beat);
        Ok(())
    }

    /// Stops the heartbeat (after the request in flight, if any) and hands the lock back.
    pub fn stop(self) -> Lock {
        match self {
            Heartbeat::Due(beat) => beat.lock,
            Heartbeat::Running { stop, thread } => {
                let _ = stop.send(());
                thread.join().expect("the heartbeat thread panicked")
            }
        }
    }
}

fn beat(beat: &mut Beat, stopped: &Receiver<()>) {
    let mut next = beat.first_extension();
    loop {
        match stopped.recv_timeout(next.saturating_duration_since(Moment::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Moment::now();
        if now >= beat.signal_at() {
            // The main thread stops the command: it watches the same deadline.
            return;
        }
        match beat.lock.extend(beat.signal_at() - now) {
            Extension::Confirmed { lease_end: end } => {
                if beat.verbose {
                    eprintln!("redlock: extended the lease in {}", human(now.elapsed()));
                }
                beat.lease_end.set(end);
                next = (now + beat.lease.heartbeat).min(beat.signal_at());
            }
            Extension::Lost(reason) => {
                let _ = beat.events.send(Event::Lost(reason));
                return;
            }
            Extension::Unconfirmed(error) => {
                if beat.verbose {
                    eprintln!("redlock: extension failed, retrying: {error:#}");
                }
                next = (Moment::now() + RETRY).min(beat.signal_at());
            }
        }
    }
}
