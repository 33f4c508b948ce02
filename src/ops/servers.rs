//! The servers an operator's command asks, all at once over the one transport (`lock::Pool`):
//! the slowest one bounds the whole.

use anyhow::Result;
use redis::Value;

use crate::cli::ServerArgs;
use crate::exit::{Classify, Failure, Kind};
use crate::lock::view::{ServerView, view};
use crate::lock::{Keys, Pool, REQUEST_TIMEOUT, Request, resolve, scripts};
use crate::settings;

/// The servers from `--redis`, each asked until it fails once: a server that failed is not
/// asked again (every request to it would cost a time-out), and counts as not answering.
pub struct Servers {
    pool: Pool,
    addresses: Vec<String>,
    forgotten: Vec<bool>,
}

impl Servers {
    /// Checks the shared options and opens the servers, their host names looked up at once.
    pub fn open(args: &ServerArgs) -> Result<Self, Failure> {
        settings::check_name("the key prefix", &args.prefix).kind(Kind::Usage)?;
        let servers = settings::servers(&args.redis, 0).kind(Kind::Usage)?;
        resolve(&servers, REQUEST_TIMEOUT);
        Ok(Servers {
            pool: Pool::open(&servers),
            addresses: servers.iter().map(|s| s.address.clone()).collect(),
            forgotten: vec![false; servers.len()],
        })
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Stops asking server `i`: it failed.
    pub fn forget(&mut self, i: usize) {
        self.forgotten[i] = true;
    }

    /// Sends every server its `request` (by index; `None`: not this one) at once, and reads
    /// each reply with `read`: `None` for a server not asked, or that failed before.
    pub fn ask<R>(
        &mut self,
        request: impl Fn(usize) -> Option<Request>,
        read: impl Fn(Value) -> Result<R>,
    ) -> Vec<Option<Result<R>>> {
        let requests: Vec<Option<Request>> = (0..self.len())
            .map(|i| if self.forgotten[i] { None } else { request(i) })
            .collect();
        self.pool.each(&requests, REQUEST_TIMEOUT, read)
    }

    /// Every server's view of the lock, read at once.
    pub fn views(&mut self, keys: &Keys) -> Vec<ServerView> {
        let replies = self.ask(|_| Some(scripts::view(keys)), Ok);
        replies
            .into_iter()
            .zip(&self.addresses)
            .map(|(reply, address)| view(address, keys, reply))
            .collect()
    }
}
