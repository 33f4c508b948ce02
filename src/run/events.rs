//! Everything the main thread waits for, in one queue: what other threads report (a lost
//! lease; notices from TLS servers), the notices it reads itself (`lock::Notices`: release
//! notices while it waits for the lock, its lock's control channel while it holds it), the
//! signals redlock handles, and what became of its children.
//!
//! Signals are read from a signalfd on the main thread itself, and children are reaped there
//! on SIGCHLD: a short run needs no thread besides the main one. Starting a thread, and handing
//! every event from one thread to another, each cost a wake-up on another CPU; in a wrapper
//! that runs in front of every cron job they were a good part of its overhead.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitStatus;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Result;
use nix::libc;

use crate::clock::Moment;
use crate::lock::{Keyspace, Notices};
use crate::run::reap::{Change, Children};
use crate::run::signals::{Caught, Received, Signals};

#[derive(Debug)]
pub enum Event {
    Signal(Caught),
    /// A message on the channel listened to, with its payload, or `None` for a subscription
    /// confirmed. While waiting, a release notice: worth trying the lock again; it may name the
    /// waiter that is to try first, by its token. While holding, a control notice (see
    /// `control::Control`).
    Notice(Option<String>),
    Exited(ExitStatus),
    /// The command was stopped (SIGTSTP, SIGSTOP...), or continued after that.
    Stopped,
    Continued,
    Lost(String),
    /// The lease now lives on another primary (the sentinels named a new one): the holder's
    /// subscription moves there too.
    Moved,
    /// The guard died while redlock lives: nothing would stop the command if redlock died too.
    Unguarded,
}

impl From<Change> for Event {
    fn from(change: Change) -> Event {
        match change {
            Change::Stopped => Event::Stopped,
            Change::Continued => Event::Continued,
            Change::Exited(status) => Event::Exited(status),
            Change::GuardGone => Event::Unguarded,
        }
    }
}

/// The sending side, for other threads: each event also wakes the main thread.
#[derive(Clone)]
pub struct Sender {
    queue: mpsc::Sender<Event>,
    wake: Arc<OwnedFd>,
}

impl Sender {
    /// Fails once the main thread no longer listens.
    pub fn send(&self, event: Event) -> Result<(), mpsc::SendError<Event>> {
        self.queue.send(event)?;
        // Non-blocking: a full pipe already holds a wake-up.
        let _ = nix::unistd::write(self.wake.as_fd(), &[1]);
        Ok(())
    }
}

/// The main thread's side.
pub struct Events {
    queue: mpsc::Receiver<Event>,
    sender: Sender,
    wake: OwnedFd,
    signals: Signals,
    children: Children,
    /// Events read from the signalfd, not yet handed out.
    pending: VecDeque<Event>,
    /// Notices, while waiting for the lock or holding it (a subscription for each lock held):
    /// read here, on this thread.
    notices: Vec<Notices>,
}

impl Events {
    /// Takes over the handled signals (see `Signals::take_over`): call this before starting
    /// any thread.
    pub fn new() -> Result<Self> {
        let signals = Signals::take_over()?;
        let flags = nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK;
        let (wake, wake_write) = nix::unistd::pipe2(flags)?;
        let (sender, queue) = mpsc::channel();
        Ok(Events {
            queue,
            sender: Sender {
                queue: sender,
                wake: Arc::new(wake_write),
            },
            wake,
            signals,
            children: Children::default(),
            pending: VecDeque::new(),
            notices: Vec::new(),
        })
    }

    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    pub fn children(&self) -> &Children {
        &self.children
    }

    /// From now on a notice on these sockets is reported (`Event::Notice`).
    pub fn listen(&mut self, notices: Notices) {
        self.notices = vec![notices];
    }

    /// As `listen`, to several subscriptions: a holder of several locks listens on each one's
    /// channel, which a Redis Cluster keeps on the node of its name's slot.
    pub fn listen_all(&mut self, notices: Vec<Notices>) {
        self.notices = notices;
    }

    /// What the servers listened to said of their keyspace notifications (`--key`).
    pub fn keyspace(&self) -> Option<Keyspace> {
        self.notices.first().map(Notices::keyspace)
    }

    /// Unsubscribes (closes the sockets given to `listen`).
    pub fn stop_listening(&mut self) {
        self.notices.clear();
    }

    /// From now on the guard's death is reported (`Event::Unguarded`).
    pub fn watch_guard(&mut self, guard: nix::unistd::Pid) {
        self.children.watch_guard(guard);
        self.reap();
    }

    /// From now on the command's stops, continues and exit are reported, including any that
    /// happened already.
    pub fn watch(&mut self, command: nix::unistd::Pid) {
        self.children.watch(command);
        self.reap();
    }

    /// The next event, if one comes within `timeout`. Once `timeout` has passed, signals and
    /// release notices wait (`None`) even when they are there: a stream of them (a signal sent
    /// over and over) must not keep the caller from its deadline. Events that happen once (the
    /// command's exit or stop, the guard's death, a lost lease) are still handed out: after a
    /// pause (a stopped redlock), the command's exit comes before the deadlines it outlived.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Moment::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Moment::now());
            if left.is_zero() {
                return self.once_only();
            }
            if let Some(event) = self.try_recv() {
                return Some(event);
            }
            self.wait(left);
        }
    }

    /// The next event, if there is one already.
    pub fn try_recv(&mut self) -> Option<Event> {
        if self.pending.is_empty() {
            self.read_signals();
        }
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        if let Ok(event) = self.queue.try_recv() {
            return Some(event);
        }
        let notices = self.notices.iter_mut().flat_map(Notices::read);
        self.pending
            .extend(notices.map(Event::Notice).collect::<Vec<_>>());
        if let Some(why) = self.notices.iter_mut().find_map(Notices::refusal) {
            crate::say::warning(
                format!(
                    "cannot listen for the lock's notices: {why}; a holder then hears \
                     `release --force` or a take-over only when it next extends its lease, and \
                     a waiter tries again when the lease ends"
                ),
                &[],
            );
        }
        self.pending.pop_front()
    }

    /// The first waiting event that happens only once, if any (see `recv_timeout`).
    fn once_only(&mut self) -> Option<Event> {
        self.read_signals();
        self.pending.extend(self.queue.try_iter());
        let once = self
            .pending
            .iter()
            .position(|event| !matches!(event, Event::Signal(_) | Event::Notice(_)))?;
        self.pending.remove(once)
    }

    fn reap(&mut self) {
        let pending = &mut self.pending;
        self.children
            .reap(|change| pending.push_back(Event::from(change)));
    }

    fn read_signals(&mut self) {
        while let Some(received) = self.signals.read() {
            match received {
                Received::ChildChanged => self.reap(),
                Received::Caught(caught) => self.pending.push_back(Event::Signal(caught)),
            }
        }
    }

    /// Sleeps until a signal, a wake-up or a notice arrives, or `timeout` passes.
    fn wait(&mut self, timeout: Duration) {
        let mut fds = vec![
            libc::pollfd {
                fd: self.signals.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let mut timeout = timeout;
        for notices in &self.notices {
            fds.extend(notices.poll_fds());
            // A dropped subscription is made again on time (`Notices::read`).
            if let Some(due) = notices.resubscribe_in() {
                timeout = timeout.min(due);
            }
        }
        let millis = crate::clock::poll_millis(timeout);
        // SAFETY: poll on valid pollfds, as many as the vector holds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        if ready > 0 && fds[1].revents != 0 {
            let mut drained = [0u8; 64];
            while matches!(nix::unistd::read(&self.wake, &mut drained), Ok(n) if n > 0) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller waiting with a deadline gets `None` once it has passed, even while events keep
    /// coming: a signal sent over and over must not keep supervise from starting the heartbeat
    /// or from stopping the command in time.
    #[test]
    fn a_deadline_passed_wins_over_waiting_events() {
        let mut events = Events::new().unwrap();
        let sender = events.sender();
        for _ in 0..3 {
            sender.send(Event::Notice(None)).unwrap();
        }
        assert!(events.recv_timeout(Duration::ZERO).is_none());
        assert!(matches!(
            events.recv_timeout(Duration::from_secs(60)),
            Some(Event::Notice(None))
        ));
        assert!(events.try_recv().is_some());
    }

    /// An event that happens once is not held back past the deadline: after redlock was
    /// stopped, the command's exit must come before the deadlines redlock slept through.
    #[test]
    fn events_that_happen_once_are_handed_out_past_the_deadline() {
        let mut events = Events::new().unwrap();
        let sender = events.sender();
        sender.send(Event::Notice(None)).unwrap();
        sender.send(Event::Lost("gone".into())).unwrap();
        sender.send(Event::Notice(None)).unwrap();
        assert!(matches!(
            events.recv_timeout(Duration::ZERO),
            Some(Event::Lost(_))
        ));
        assert!(events.recv_timeout(Duration::ZERO).is_none());
        // Nothing is lost: the notices are still there, in order.
        assert!(matches!(events.try_recv(), Some(Event::Notice(None))));
        assert!(matches!(events.try_recv(), Some(Event::Notice(None))));
        assert!(events.try_recv().is_none());
    }
}
