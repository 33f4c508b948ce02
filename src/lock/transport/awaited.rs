//! What a connection awaits: the replies still to come, in order, and the request it is
//! answering. `conn.rs` keeps them; `exchange.rs` says what each reply means.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use redis::Value;

/// A reply still to come on a connection, in the order they will come.
pub(super) enum Expect {
    /// The answer to AUTH or SELECT.
    Hello,
    /// The answer to a request nobody waits for any more.
    Stale,
    /// The request's own reply; for a script, whether it was sent by hash (EVALSHA).
    Request { by_hash: bool },
    /// WAIT, after a script that wrote the lease.
    Replicated,
    /// ASKING, ahead of a request a cluster node takes for a slot being migrated to it.
    Asking,
    /// ROLE, from a node Sentinel named as the primary: it must say so too.
    Role,
}

/// The request a connection is answering.
pub(super) struct Current {
    pub(super) deadline: Instant,
    pub(super) wrote: fn(&Value) -> bool,
    /// The script's reply, while WAIT is awaited.
    pub(super) reply: Option<Value>,
    /// The script in full (EVAL), for a server that answers NOSCRIPT to it by hash: sent
    /// even when nobody waits for the answer any more, so that a server that answers late
    /// still ends up with the lock the others granted.
    pub(super) in_full: Option<Arc<[u8]>>,
    /// The request in full, for the node a cluster redirects it to.
    pub(super) resend: Arc<[u8]>,
    /// A script's text, whose line an ACL refusal names.
    pub(super) code: Option<&'static str>,
    /// How many redirects it has followed.
    pub(super) redirects: u8,
    /// Whether it may go to another seed, should this one stay silent: an acquire or an
    /// extension, which the scripts take as one when run twice ("already ours"); not a release,
    /// whose second copy would find the lock no longer ours.
    pub(super) resendable: bool,
}

/// What a connection has to say after some I/O.
pub(super) enum Outcome {
    Nothing,
    Answer(Result<Value>),
}
