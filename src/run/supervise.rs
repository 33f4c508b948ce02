//! Watching the command until it ends: forwarding signals, following job control, keeping the
//! lease (the heartbeat, the control channel), and stopping the command if the lease is lost
//! or an operator asks for the lock: SIGTERM `kill_after` before the lease ends (or at once,
//! when an extension finds the lock gone or on request), SIGKILL when it ends. Everything is
//! decided here, on the main thread, one event at a time.

use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::clock::Moment;
use crate::duration::human;
use crate::run::control::{CONFIRMED, Control, Listener};
use crate::run::events::{Event, Events};
use crate::run::group;
use crate::run::guard::Guard;
use crate::run::heartbeat::{Heartbeat, LeaseEnd};
use crate::run::lapse::Lapse;
use crate::run::signals;
use crate::run::spawn::Spawned;
use crate::run::terminal;
use crate::say::{self, ms, say};
use crate::settings::Lease;

/// Why the command was stopped before it ended on its own.
#[derive(Debug)]
pub enum Stop {
    /// The lease was lost: the lock may already be another holder's.
    Lost(String),
    /// `redlock release --force` asked for the lock: it stays ours, and extended, until the
    /// command is gone and we release it.
    Asked,
    /// The command ran for its `--timeout`.
    TimedOut,
    /// Another run asked for the lock with `--replace`: as `Asked`, for a run that takes over.
    Replaced,
}

/// The running command and what keeps its lease, for as long as it runs.
pub struct Supervisor<'a> {
    pub spawned: Spawned,
    pub guard: &'a Guard,
    pub lease: Lease,
    pub lease_end: &'a LeaseEnd,
    pub heartbeat: &'a mut Heartbeat,
    pub events: &'a mut Events,
    pub listener: &'a mut Listener,
    /// The lock's token, to tell control notices meant for this run.
    pub token: &'a str,
    pub verbose: bool,
    /// `--timeout`: when the command has run for it, and how long that is.
    pub time_limit: Option<(Moment, Duration)>,
}

/// Where supervision stands.
#[derive(Default)]
struct State {
    /// Why the command is being stopped, once it is.
    stop: Option<Stop>,
    /// The command is stopped by job control: a signal to end it must continue it too.
    stopped: bool,
    /// Once the command is being stopped: when it gets SIGKILL (None once it has).
    kill_at: Option<Moment>,
    /// What a control notice said, to say why an extension then found the lock gone.
    heard: Option<&'static str>,
}

impl State {
    fn lost(&self) -> bool {
        matches!(self.stop, Some(Stop::Lost(_)))
    }
}

impl Supervisor<'_> {
    /// Waits for the command, and then for what it left in its process group, to end. Returns
    /// the command's status and, if the command was stopped, why.
    pub fn supervise(mut self) -> (ExitStatus, Option<Stop>) {
        let mut state = State::default();
        let status = loop {
            let (wake, listen_at) = self.wake_at(&state);
            let reason = match self
                .events
                .recv_timeout(wake.saturating_duration_since(Moment::now()))
            {
                Some(Event::Exited(status)) => break status,
                Some(event) => self.on_event(event, &mut state),
                None => self.on_time(listen_at, &mut state),
            };
            if let Some(reason) = reason {
                self.begin_stopping(reason, &mut state);
            }
        };
        self.stop_leftovers(&state);
        self.lease_end.command_gone();
        (status, state.stop)
    }

    /// The command must have had SIGTERM by then, for SIGKILL to land before the lease ends.
    fn signal_at(&self) -> Moment {
        self.lease_end.get() - self.lease.kill_after
    }

    /// When to wake up if nothing happens; and when to subscribe to the control channel, until
    /// it has (a run whose command is being stopped has nothing left to hear).
    fn wake_at(&self, state: &State) -> (Moment, Option<Moment>) {
        let wake = match (&state.stop, state.kill_at) {
            (None, _) => self
                .time_limit
                .map_or(self.signal_at(), |(at, _)| at.min(self.signal_at())),
            (Some(_), Some(at)) => at,
            // SIGKILL is out: only the exit is left to wait for.
            (Some(_), None) => Moment::now() + Duration::from_secs(3600),
        };
        let wake = match self.heartbeat.due() {
            Some(due) if !state.lost() => due.min(wake),
            _ => wake,
        };
        let listen_at = self.listener.due().filter(|_| state.stop.is_none());
        (listen_at.map_or(wake, |at| at.min(wake)), listen_at)
    }

    /// Acts on an event other than the command's exit; returns why to stop the command, if it
    /// must be.
    fn on_event(&mut self, event: Event, state: &mut State) -> Option<Stop> {
        let group = self.spawned.group;
        match event {
            Event::Signal(caught) => signals::forward(group, caught, state.stopped),
            Event::Stopped if self.spawned.has_terminal => terminal::suspend_with(group),
            Event::Stopped => state.stopped = true,
            Event::Continued => state.stopped = false,
            Event::Lost(reason) if !state.lost() => {
                return Some(Stop::Lost(match state.heard {
                    Some(heard) => format!("{reason} ({heard})"),
                    None => reason,
                }));
            }
            Event::Moved => self.listener.follow(self.events),
            Event::Notice(notice) if state.stop.is_none() => {
                return self.on_notice(notice, state);
            }
            Event::Unguarded => {
                say(
                    say::Event::GuardDied,
                    "the command's guard died; killing the command",
                    &[],
                );
                group::signal_group(group, Signal::SIGKILL);
            }
            _ => {}
        }
        None
    }

    /// A message on the control channel, or (`None`) its subscription confirmed.
    fn on_notice(&mut self, notice: Option<String>, state: &mut State) -> Option<Stop> {
        let control = match notice {
            Some(payload) => Control::parse(&payload, self.token),
            None => CONFIRMED,
        };
        match control {
            Control::Stop | Control::Replace => {
                // `release --force` waits for it to know it was heard; if it cannot be said,
                // it deletes the lock after a moment, as for a holder that is gone.
                let _ = self.heartbeat.acknowledge();
                Some(if control == Control::Stop {
                    Stop::Asked
                } else {
                    Stop::Replaced
                })
            }
            Control::Check(what) => match self.heartbeat.check_now() {
                Ok(()) => {
                    state.heard = Some(what);
                    None
                }
                Err(e) => Some(Stop::Lost(format!(
                    "{what}, and the heartbeat thread could not start to check: {e}"
                ))),
            },
            Control::Ignore => None,
        }
    }

    /// Nothing happened before the time `wake_at` gave: do what was due then.
    fn on_time(&mut self, listen_at: Option<Moment>, state: &mut State) -> Option<Stop> {
        let now = Moment::now();
        if listen_at.is_some_and(|at| now >= at) {
            self.listener.listen_if_due(self.events);
            return None;
        }
        if !state.lost() && self.heartbeat.due().is_some_and(|due| now >= due) {
            return match self.heartbeat.start_if_due() {
                Ok(()) => None,
                Err(e) => Some(Stop::Lost(format!(
                    "cannot start the heartbeat thread: {e}"
                ))),
            };
        }
        if state.stop.is_some() {
            if state.kill_at.is_some_and(|at| now >= at) {
                group::signal_group(self.spawned.group, Signal::SIGKILL);
                state.kill_at = None;
            }
            return None;
        }
        // A lease that could not be extended is lost, whatever the time limit says.
        if now < self.signal_at() {
            return self
                .time_limit
                .is_some_and(|(at, _)| now >= at)
                .then_some(Stop::TimedOut);
        }
        let failures = self.lease_end.failures();
        let lapse = Lapse::NotExtended {
            kill_after: self.lease.kill_after,
            failures: failures.as_deref(),
        };
        Some(Stop::Lost(lapse.to_string()))
    }

    /// SIGTERM now, SIGKILL `kill_after` from now or when the lease ends, whichever is first.
    fn begin_stopping(&self, reason: Stop, state: &mut State) {
        let stopping = |reason: &str| [("reason", reason.into())];
        match &reason {
            Stop::Lost(why) => say(
                say::Event::Lost,
                format!("lock lost: {why}; stopping the command"),
                &[],
            ),
            Stop::Asked => say(
                say::Event::Stopping,
                "`redlock release --force` asked for the lock; stopping the command",
                &stopping("asked"),
            ),
            Stop::Replaced => say(
                say::Event::Stopping,
                "another run asked for the lock with --replace; stopping the command",
                &stopping("replaced"),
            ),
            Stop::TimedOut => {
                let limit = self.time_limit.map_or(Duration::ZERO, |(_, limit)| limit);
                say(
                    say::Event::Stopping,
                    format!(
                        "the command ran for its --timeout of {}; stopping it",
                        human(limit)
                    ),
                    &[("reason", "timeout".into()), ("timeout_ms", ms(limit))],
                )
            }
        }
        group::terminate(self.spawned.group);
        // Never later than set already: a lease lost while the command stops on request.
        let kill = (Moment::now() + self.lease.kill_after).min(self.lease_end.kill_by());
        state.kill_at = Some(state.kill_at.map_or(kill, |at| at.min(kill)));
        state.stop = Some(reason);
    }

    /// What the command left behind in its group must not outlive the lease either.
    fn stop_leftovers(&self, state: &State) {
        let deadline = match (&state.stop, state.kill_at) {
            (Some(_), Some(at)) => at,
            (Some(_), None) => Moment::now(),
            (None, _) => Moment::now() + self.lease.kill_after,
        };
        self.guard.await_step_out();
        if group::stop_leftovers(self.spawned.group, deadline) && self.verbose {
            say(
                say::Event::Leftovers,
                "stopped the processes the command left in its process group",
                &[],
            );
        }
    }
}
