//! Listening to a lock's channel: its release notices while waiting for it, its control
//! channel while holding it (see `lock::Keys`). Either way the messages reach the main thread
//! as `Event::Notice`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::events::{Event, Events};
use crate::lock::{Notices, Server};

/// How often an idle subscriber thread checks whether it is still wanted (no Redis traffic).
const SUBSCRIBER_POLL: Duration = Duration::from_millis(250);

/// Listeners on one of a lock's channels, which stop when dropped: read by the main thread
/// itself (`Notices`, given to `events`), or with a TLS server among them, a thread and
/// connection per server.
pub enum Subscription {
    Polled,
    Threads { stop: Arc<AtomicBool> },
}

impl Subscription {
    /// Subscribes to `channel` on every server; its messages come as `Event::Notice`.
    pub fn start(servers: Vec<Server>, channel: &str, events: &mut Events) -> Self {
        if let Some(notices) = Notices::subscribe(&servers, channel) {
            events.listen(notices);
            return Subscription::Polled;
        }
        let events = events.sender();
        let stop = Arc::new(AtomicBool::new(false));
        for server in servers {
            let channel = channel.to_string();
            let (stop, events) = (stop.clone(), events.clone());
            // A subscriber that cannot connect only costs us the prompt wake-up: the timed
            // retry still runs, and reports the server if it stays unreachable.
            let _ = thread::Builder::new()
                .name("subscriber".into())
                .spawn(move || {
                    let Ok(mut connection) = server.connect() else {
                        return;
                    };
                    let mut pubsub = connection.as_pubsub();
                    if pubsub.subscribe(&channel).is_err()
                        || pubsub.set_read_timeout(Some(SUBSCRIBER_POLL)).is_err()
                        || events.send(Event::Notice(None)).is_err()
                    {
                        return;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        match pubsub.get_message() {
                            Ok(message) => {
                                let named = message
                                    .get_payload::<String>()
                                    .ok()
                                    .filter(|token| !token.is_empty());
                                if events.send(Event::Notice(named)).is_err() {
                                    return;
                                }
                            }
                            Err(e) if e.is_timeout() => {}
                            Err(_) => return,
                        }
                    }
                });
        }
        Subscription::Threads { stop }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Subscription::Threads { stop } = self {
            stop.store(true, Ordering::Relaxed);
        }
    }
}
