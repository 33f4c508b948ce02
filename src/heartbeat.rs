//! The heartbeat: a thread that extends the lease every `--heartbeat`, retries quickly when an
//! extension fails, and reports the lease lost when an extension finds it gone. It publishes
//! the end of the confirmed lease in a `LeaseEnd`, which the main thread watches on its own
//! clock: a heartbeat stuck in a request (a slow DNS lookup, a reconnect) cannot delay the
//! stopping of the command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::clock::Moment;
use crate::deadman::DeadMan;
use crate::duration::human;
use crate::lock::{Extension, Lock};
use crate::run::Event;
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

pub struct Heartbeat {
    stop: Sender<()>,
    thread: JoinHandle<Lock>,
}

impl Heartbeat {
    /// Starts extending a lease granted by a request sent at `sent`, ending at `lease_end`.
    pub fn start(
        mut lock: Lock,
        lease: Lease,
        sent: Moment,
        lease_end: Arc<LeaseEnd>,
        events: Sender<Event>,
        verbose: bool,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = channel();
        let thread = thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                beat(
                    &mut lock, lease, sent, &lease_end, &stopped, &events, verbose,
                );
                lock
            })?;
        Ok(Heartbeat { stop, thread })
    }

    /// Stops the heartbeat (after the request in flight, if any) and hands the lock back.
    pub fn stop(self) -> Lock {
        let _ = self.stop.send(());
        self.thread.join().expect("the heartbeat thread panicked")
    }
}

fn beat(
    lock: &mut Lock,
    lease: Lease,
    sent: Moment,
    lease_end: &LeaseEnd,
    stopped: &Receiver<()>,
    events: &Sender<Event>,
    verbose: bool,
) {
    // The command must have had SIGTERM by then, so that SIGKILL lands before the lease ends;
    // replies after it are of no use.
    let signal_at = || lease_end.get() - lease.kill_after;
    let mut next = (sent + lease.heartbeat).min(signal_at());
    loop {
        match stopped.recv_timeout(next.saturating_duration_since(Moment::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Moment::now();
        if now >= signal_at() {
            // The main thread stops the command: it watches the same deadline.
            return;
        }
        match lock.extend(signal_at() - now) {
            Extension::Confirmed { lease_end: end } => {
                if verbose {
                    eprintln!("redlock: extended the lease in {}", human(now.elapsed()));
                }
                lease_end.set(end);
                next = (now + lease.heartbeat).min(signal_at());
            }
            Extension::Lost(reason) => {
                let _ = events.send(Event::Lost(reason));
                return;
            }
            Extension::Unconfirmed(error) => {
                if verbose {
                    eprintln!("redlock: extension failed, retrying: {error:#}");
                }
                next = (Moment::now() + RETRY).min(signal_at());
            }
        }
    }
}
