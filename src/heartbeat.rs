//! The heartbeat: a thread that extends the lease every `--heartbeat`, retries quickly when an
//! extension fails, and reports the lease lost once it cannot be confirmed in time to stop the
//! command before the lease could end on the servers.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::duration::human;
use crate::lock::{Extension, Lock};
use crate::run::Event;
use crate::settings::Lease;

/// Pause between retries of a failed extension.
const RETRY: Duration = Duration::from_millis(100);

pub struct Heartbeat {
    stop: Sender<()>,
    thread: JoinHandle<Lock>,
}

impl Heartbeat {
    /// Starts extending a lease that was granted by a request sent at `sent`, ending at `lease_end`.
    pub fn start(
        mut lock: Lock,
        lease: Lease,
        sent: Instant,
        lease_end: Instant,
        events: Sender<Event>,
        verbose: bool,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = channel();
        let thread = thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                beat(
                    &mut lock, lease, sent, lease_end, &stopped, &events, verbose,
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
    mut sent: Instant,
    lease_end: Instant,
    stopped: &Receiver<()>,
    events: &Sender<Event>,
    verbose: bool,
) {
    // The command must have had SIGTERM by then, so that SIGKILL lands before the lease ends.
    let mut signal_at = lease_end - lease.kill_after;
    let mut next = (sent + lease.heartbeat).min(signal_at);
    loop {
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Instant::now();
        if now >= signal_at {
            let _ = events.send(Event::Lost(format!(
                "the lease could not be extended for {}",
                human(now - sent)
            )));
            return;
        }
        // A reply after `signal_at` is of no use: the command is being stopped by then.
        match lock.extend(signal_at - now) {
            Extension::Confirmed { lease_end } => {
                if verbose {
                    eprintln!("redlock: extended the lease in {}", human(now.elapsed()));
                }
                sent = now;
                signal_at = lease_end - lease.kill_after;
                next = (now + lease.heartbeat).min(signal_at);
            }
            Extension::Lost(reason) => {
                let _ = events.send(Event::Lost(reason));
                return;
            }
            Extension::Unconfirmed(error) => {
                if verbose {
                    eprintln!("redlock: extension failed, retrying: {error:#}");
                }
                next = (Instant::now() + RETRY).min(signal_at);
            }
        }
    }
}
