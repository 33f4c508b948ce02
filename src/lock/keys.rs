//! Where a lock lives in Redis. Every key of one lock shares the hash tag `{NAME}`, so the
//! scripts that touch several of them also run on Redis Cluster.

/// The keys and channel of one named lock.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `PREFIX:{NAME}`: the lock itself, a string holding the holder's token, with the lease TTL.
    pub lock: String,
    /// `PREFIX:{NAME}:holder`: a hash describing the holder, with the same TTL.
    pub holder: String,
    /// `PREFIX:{NAME}:fence`: the fencing counter, persistent and only ever incremented.
    pub fence: String,
    /// `PREFIX:{NAME}:released`: the channel a release is published on.
    pub channel: String,
    /// `PREFIX:{NAME}:waiters`: a sorted set of the waiters' tokens, in the order they came.
    pub waiters: String,
    /// `PREFIX:{NAME}:control`: the channel the live holder listens on: told when its lock is
    /// broken or taken, and asked to stop by `release --force`.
    pub control: String,
}

impl Keys {
    pub fn new(prefix: &str, name: &str) -> Self {
        let lock = format!("{prefix}:{{{name}}}");
        Keys {
            holder: format!("{lock}:holder"),
            fence: format!("{lock}:fence"),
            channel: format!("{lock}:released"),
            waiters: format!("{lock}:waiters"),
            control: format!("{lock}:control"),
            lock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_share_the_hash_tag() {
        let keys = Keys::new("redlock", "backup");
        assert_eq!(keys.lock, "redlock:{backup}");
        assert_eq!(keys.holder, "redlock:{backup}:holder");
        assert_eq!(keys.fence, "redlock:{backup}:fence");
        assert_eq!(keys.channel, "redlock:{backup}:released");
        assert_eq!(keys.waiters, "redlock:{backup}:waiters");
        assert_eq!(keys.control, "redlock:{backup}:control");
    }
}
