//! The heartbeat: a thread that extends the lease every `--heartbeat`, retries quickly when an
//! extension fails, and reports the lease lost when an extension finds it gone. It publishes
//! the end of the confirmed lease in a `LeaseEnd`, which the main thread watches on its own
//! clock: a heartbeat stuck in a request (a slow DNS lookup, a reconnect) cannot delay the
//! stopping of the command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::duration::human;
use crate::lock::{Extension, Lock};
use crate::run::Event;
use crate::settings::Lease;

/// Pause between retries of a failed extension.
const RETRY: Duration = Duration::from_millis(100);

/// The end of the lease as last confirmed, shared between threads.
pub struct LeaseEnd {
    base: Instant,
    nanos: AtomicU64,
}

impl LeaseEnd {
    fn new(end: Instant) -> Self {
        let base = Instant::now().min(end);
        let lease_end = LeaseEnd {
            base,
            nanos: AtomicU64::new(0),
        };
        lease_end.set(end);
        lease_end
    }

    fn set(&self, end: Instant) {
        let nanos = end.saturating_duration_since(self.base).as_nanos() as u64;
        self.nanos.store(nanos, Ordering::Release);
    }

    pub fn get(&self) -> Instant {
        self.base + Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

pub struct Heartbeat {
    stop: Sender<()>,
    thread: JoinHandle<Lock>,
    pub lease_end: Arc<LeaseEnd>,
}

impl Heartbeat {
    /// Starts extending a lease granted by a request sent at `sent`, ending at `lease_end`.
    pub fn start(
        mut lock: Lock,
        lease: Lease,
        sent: Instant,
        lease_end: Instant,
        events: Sender<Event>,
        verbose: bool,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = channel();
        let shared = Arc::new(LeaseEnd::new(lease_end));
        let published = shared.clone();
        let thread = thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                beat(
                    &mut lock, lease, sent, &published, &stopped, &events, verbose,
                );
                lock
            })?;
        Ok(Heartbeat {
            stop,
            thread,
            lease_end: shared,
        })
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
    sent: Instant,
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
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Instant::now();
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
                next = (Instant::now() + RETRY).min(signal_at());
            }
        }
    }
}
