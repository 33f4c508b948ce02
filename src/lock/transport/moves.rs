//! Where a connection goes when the servers move: a cluster's seed that accepts connections
//! and says nothing is passed over for the next (`SEED_PATIENCE`), a connection that fails goes
//! back to the URL's nodes (`Conn::home`, see `Conn::close`), a primary the sentinels no longer
//! name is left for the one they name, and another node answering (a failover, a slot that
//! moved) is noted, for the holder's subscription to follow.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::conn::Conn;
use super::server::Place;

/// How long a cluster's seed node may leave a new connection, once made, without a byte before
/// the next seed is asked instead: a node that accepts connections and never answers (frozen,
/// or cut off behind a proxy) must not cost a run its request time-out while others could
/// answer. A live node on a LAN answers in a millisecond; one that is merely slow costs a
/// request sent twice, which the scripts take as one (`acquire.lua`: "already ours").
const SEED_PATIENCE: Duration = Duration::from_millis(200);

/// How long a cluster's seed may take to accept a connection before the next is tried: a host
/// that drops packets leaves the connection half made.
const CONNECT_PATIENCE: Duration = Duration::from_secs(1);

impl Conn {
    /// When this connection to a cluster's seed is to be given up for the next seed, if it
    /// stays silent (see `SEED_PATIENCE`); `None` once it has answered, or when every seed has
    /// been passed over (then the request's own time-out ends it).
    pub(super) fn pass_over_at(&self) -> Option<Instant> {
        let since = self.silent_since?;
        let patience = if self.connecting {
            CONNECT_PATIENCE
        } else {
            SEED_PATIENCE
        };
        (self.stream.is_some()
            && self.current.as_ref().is_none_or(|c| c.resendable)
            && !self.redirected()
            && self.passed_over + 1 < self.server.nodes())
        .then_some(since + patience)
    }

    /// A connection to a primary the sentinels no longer name (a failover): closed, so that
    /// the next request goes to the one they name now. Asked of the sentinels within
    /// `timeout`; a sentinel set that cannot say leaves the connection as it is.
    pub(super) fn follow_sentinels(&mut self, timeout: Duration) {
        let (Place::Sentinel(sentinels), Some(named)) = (&self.server.place, &self.named_primary)
        else {
            return;
        };
        if self.stream.is_some()
            && sentinels
                .primary(Instant::now() + timeout)
                .is_ok_and(|now| (&now.host, now.port) != (&named.0, named.1))
        {
            self.close();
        }
    }

    /// Whether another node answered (a new primary, a slot's new owner) since this was last
    /// asked.
    pub(super) fn moved(&mut self) -> bool {
        std::mem::take(&mut self.moved)
    }

    /// Notes that the node the connection is on answered: another than last time sets `moved`.
    pub(super) fn answered(&mut self) {
        let node = match &self.named_primary {
            Some((host, port)) => (host.as_str(), *port),
            None => (self.server.address.as_str(), 0),
        };
        match &self.last_node {
            Some((host, port)) if (host.as_str(), *port) == node => {}
            last => {
                self.moved |= last.is_some();
                self.last_node = Some((node.0.to_string(), node.1));
            }
        }
    }

    /// Gives up on a cluster's seed that accepted a subscription and said nothing: the next
    /// seed is where the connection goes from now on. False without another seed.
    pub(super) fn next_home(&mut self) -> bool {
        let Some(next) = self.home.next_seed() else {
            return false;
        };
        let passed_over = self.passed_over + 1;
        self.home = next;
        self.close();
        self.passed_over = passed_over;
        true
    }

    /// Whether this connection is to a node a redirect named rather than to the URL's own.
    pub(super) fn redirected(&self) -> bool {
        self.server.address != self.home.address
    }

    /// Gives up on a cluster's seed node that accepted the connection and has said nothing
    /// (`Conn::pass_over_at`): the next seed gets the current request, in full, and is asked
    /// first from now on. `Err` when it cannot be connected to either.
    pub(super) fn pass_over(&mut self) -> Result<()> {
        let current = self.current.take();
        if !self.next_home() {
            self.current = current;
            return Ok(());
        }
        self.open()?;
        match current {
            Some(current) => self.resend(current),
            None => self.flush(),
        }
        .map_err(|e| self.named(e, false))
    }
}
