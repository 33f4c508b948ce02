//! Listening to a lock's channel: its release notices while waiting for it, its control
//! channel while holding it (see `lock::Keys`). Either way the messages reach the main thread
//! as `Event::Notice`, read by the main thread itself (`lock::Notices`, given to `events`).

use crate::lock::{Notices, Server};
use crate::run::events::Events;

/// Listeners on one of a lock's channels, which stop when dropped (`Events::stop_listening`).
pub struct Subscription;

impl Subscription {
    /// Subscribes to `channel` on every server; its messages come as `Event::Notice`.
    pub fn start(servers: Vec<Server>, channel: &str, events: &mut Events) -> Self {
        events.listen(Notices::subscribe(&servers, channel));
        Subscription
    }
}
