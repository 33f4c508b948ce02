//! The heartbeat: a thread that extends the lease every `--heartbeat` (and at once when the main
//! thread asks it to check the lock), retries quickly when an extension fails, and reports the
//! lease lost when an extension finds it gone. With several locks held at once it extends each,
//! and the lease is theirs together: it ends with the first to end, and is lost with any. It
//! publishes
//! the end of the confirmed lease in a `LeaseEnd`, which the main thread watches on its own
//! clock: a heartbeat stuck in a request (a slow DNS lookup, a reconnect) cannot delay the
//! stopping of the command.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::clock::Moment;
use crate::duration::human;
use crate::lock::{Extension, Lock, Twin};
use crate::run::deadman::DeadMan;
use crate::run::events::{Event, Sender};
use crate::run::lapse::Lapse;
use crate::say::{self, ms, say};
use crate::settings::Lease;

/// Pause between retries of a failed extension.
const RETRY: Duration = Duration::from_millis(100);

/// The end of the lease as last confirmed, shared between threads. Publishing a new end also
/// re-arms the dead-man switch, `margin` / 2 before it.
pub struct LeaseEnd {
    since_boot_nanos: AtomicU64,
    /// What the servers that did not confirm the last extension said; none once one is
    /// confirmed. For the words of a lease that ends unconfirmed (`lapse.rs`).
    failures: Mutex<Option<String>>,
    deadman: DeadMan,
    margin: Duration,
}

impl LeaseEnd {
    pub fn new(end: Moment, deadman: DeadMan, margin: Duration) -> Self {
        let lease_end = LeaseEnd {
            since_boot_nanos: AtomicU64::new(0),
            failures: Mutex::new(None),
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

    /// Records what the last extension's failures were (`None`: it was confirmed).
    fn failed(&self, failures: Option<String>) {
        if let Ok(mut last) = self.failures.lock() {
            *last = failures;
        }
    }

    /// What the servers said that did not confirm the last extension, if it was not.
    pub fn failures(&self) -> Option<String> {
        self.failures.lock().ok().and_then(|last| last.clone())
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

/// The heartbeat thread, started only when the first extension is due (or the lock must be
/// checked at once): a command that ends before that (most short jobs) never needs it.
pub enum Heartbeat {
    Due(Box<Beat>),
    Running {
        orders: mpsc::Sender<Order>,
        /// The locks, handed back when the thread ends.
        handed_back: Receiver<Vec<Lock>>,
        /// The same locks over new connections, should the thread not hand them back in time.
        twins: Vec<Twin>,
    },
}

/// What the main thread asks of a running heartbeat.
pub enum Order {
    /// Extend now: a notice at this moment says the lock may have been broken or taken. Any
    /// extension sent after that moment answers it.
    Check(Moment),
    /// Extend now, and with every extension from now on say that the command is being stopped
    /// on `release --force`'s request: that is how it knows it was heard.
    Acknowledge,
    Stop,
}

/// What the thread needs.
pub struct Beat {
    /// The locks held, each with its name (or key) for messages, and when its own lease ends.
    locks: Vec<Held>,
    lease: Lease,
    sent: Moment,
    lease_end: Arc<LeaseEnd>,
    events: Sender,
    verbose: bool,
    /// Stopping the command on `release --force`'s request (see `Order::Acknowledge`).
    stopping: bool,
}

/// One lock the heartbeat extends.
pub struct Held {
    pub label: String,
    pub lock: Lock,
    pub lease_end: Moment,
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
    /// A heartbeat for the leases of `locks`, the first granted by a request sent at `sent`,
    /// ending together at `lease_end`; the thread starts with `start_if_due`.
    pub fn new(
        locks: Vec<Held>,
        lease: Lease,
        sent: Moment,
        lease_end: Arc<LeaseEnd>,
        events: Sender,
        verbose: bool,
    ) -> Self {
        Heartbeat::Due(Box::new(Beat {
            locks,
            lease,
            sent,
            lease_end,
            events,
            verbose,
            stopping: false,
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
        match self.due() {
            Some(due) if Moment::now() >= due => self.start(due),
            _ => Ok(()),
        }
    }

    /// Has the lease extended at once: an extension is what finds the lock gone.
    pub fn check_now(&mut self) -> std::io::Result<()> {
        match self {
            Heartbeat::Due(_) => self.start(Moment::now()),
            Heartbeat::Running { orders, .. } => {
                // The thread has ended only once the lease is lost or no longer extended.
                let _ = orders.send(Order::Check(Moment::now()));
                Ok(())
            }
        }
    }

    /// Has every extension from now on, starting with one at once, say that the command is
    /// being stopped on request.
    pub fn acknowledge(&mut self) -> std::io::Result<()> {
        match self {
            Heartbeat::Due(beat) => {
                beat.stopping = true;
                self.start(Moment::now())
            }
            Heartbeat::Running { orders, .. } => {
                let _ = orders.send(Order::Acknowledge);
                Ok(())
            }
        }
    }

    /// Starts the thread, with the first extension at `first`.
    fn start(&mut self, first: Moment) -> std::io::Result<()> {
        let Heartbeat::Due(due) = self else {
            return Ok(());
        };
        let twins = due.locks.iter().map(|held| held.lock.twin()).collect();
        let (orders, inbox) = channel();
        let (hand_back, handed_back) = channel();
        // The state goes over only once the thread runs: if it cannot start, the lock stays here.
        let (hand_over, handed) = channel::<Box<Beat>>();
        thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let mut state = handed
                    .recv()
                    .expect("the state is sent once the thread runs");
                beat(&mut state, first, &inbox);
                let _ = hand_back.send(state.locks.into_iter().map(|h| h.lock).collect());
            })?;
        let running = Heartbeat::Running {
            orders,
            handed_back,
            twins,
        };
        let Heartbeat::Due(beat) = std::mem::replace(self, running) else {
            unreachable!("checked above")
        };
        let _ = hand_over.send(beat);
        Ok(())
    }

    /// Stops the heartbeat and hands the locks back. An extension still in flight after
    /// `patience` (a frozen server) is not waited for: the locks come back over new
    /// connections, so that the release is not held up by it.
    pub fn stop(self, patience: Duration) -> Vec<Lock> {
        match self {
            Heartbeat::Due(beat) => beat.locks.into_iter().map(|held| held.lock).collect(),
            Heartbeat::Running {
                orders,
                handed_back,
                twins,
            } => {
                let _ = orders.send(Order::Stop);
                handed_back
                    .recv_timeout(patience)
                    .unwrap_or_else(|_| twins.into_iter().map(Twin::open).collect())
            }
        }
    }
}

fn beat(beat: &mut Beat, first: Moment, orders: &Receiver<Order>) {
    let mut next = first;
    // A refusal that will not pass (an ACL) is said once even without -v: retried, it will
    // only lose the lease.
    let mut refusal_said = false;
    // When the last extension was sent: it answers every check asked for before (a burst of
    // notices, one per server, costs one extension).
    let mut sent: Option<Moment> = None;
    loop {
        match orders.recv_timeout(next.saturating_duration_since(Moment::now())) {
            Ok(Order::Check(asked)) if sent.is_some_and(|sent| sent >= asked) => continue,
            Ok(Order::Check(_)) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Order::Acknowledge) => beat.stopping = true,
            Ok(Order::Stop) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Moment::now();
        sent = Some(now);
        if now >= beat.signal_at() {
            // The main thread stops the command: it watches the same deadline.
            return;
        }
        // Each try is bounded as an acquire's is (3 s; with several servers a tenth of the
        // TTL): a server that does not answer is named by a failed try and tried again well
        // before the lease must be given up, over a new connection where it may have moved
        // (a primary the sentinels name anew, a cluster's new owner of the slot).
        let several = beat.locks.len() > 1;
        let signal_at = beat.signal_at();
        let mut failed = None;
        for held in &mut beat.locks {
            // One lock's slow extension leaves the next less time, never more than the lease.
            let left = signal_at - Moment::now();
            if left.is_zero() {
                return;
            }
            let addresses = held.lock.addresses.len();
            let timeout = (beat.lease).request_timeout(left, addresses);
            let of = |text: String| match several {
                true => format!("lock '{}': {text}", held.label),
                false => text,
            };
            match held.lock.extend(timeout, beat.stopping) {
                Extension::Confirmed {
                    lease_end: end,
                    moved,
                } => {
                    if moved {
                        let _ = beat.events.send(Event::Moved);
                    }
                    held.lease_end = end;
                }
                // Only a step's hold is refused (`Lock::holding`), never a run's: as lost, if
                // it were.
                Extension::Lost | Extension::Refused => {
                    let failures = beat.lease_end.failures();
                    let lapse =
                        Lapse::found_gone(Moment::now(), held.lease_end, failures.as_deref());
                    let _ = beat.events.send(Event::Lost(of(lapse.to_string())));
                    return;
                }
                Extension::Unconfirmed(error) => {
                    failed.get_or_insert((of(format!("{error:#}")), error));
                }
            }
        }
        match failed {
            None => {
                if beat.verbose {
                    let took = now.elapsed();
                    say(
                        say::Event::Extended,
                        format!("extended the lease in {}", human(took)),
                        &[("took_ms", ms(took))],
                    );
                }
                let end = beat.locks.iter().map(|held| held.lease_end).min();
                beat.lease_end.set(end.expect("a run holds a lock"));
                beat.lease_end.failed(None);
                next = (now + beat.lease.heartbeat).min(beat.signal_at());
            }
            Some((said, error)) => {
                beat.lease_end.failed(Some(said.clone()));
                if beat.verbose {
                    say(
                        say::Event::ExtensionFailed,
                        format!("extension failed, retrying: {said}"),
                        &[("error", said.into())],
                    );
                } else if !refusal_said && !crate::lock::transient(&error) {
                    refusal_said = true;
                    say::warning(
                        format!("cannot extend the lease, retrying until it runs out: {said}"),
                        &[("error", said.into())],
                    );
                }
                next = (Moment::now() + RETRY).min(beat.signal_at());
            }
        }
    }
}
