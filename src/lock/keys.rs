//! Where a lock lives in Redis. Every key of one lock shares the hash tag `{NAME}`, so the
//! scripts that touch several of them also run on Redis Cluster.
//!
//! With `--limit N` (a counting semaphore) the lock has N places, each a lock of its own (its
//! key, holder details and control channel); place 0 is the plain lock's keys, so that a
//! semaphore and a plain lock of the same name see each other. The fencing counter, the
//! waiters' queue, the release channel and the stored limit are shared by all places.

/// The most places a lock may have (`run --limit`); a stored N above it (written by hand) is
/// not read place by place.
pub const MOST_PLACES: usize = 100;

/// The keys and channels of one place of a named lock.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `PREFIX:{NAME}` (place 0) or `PREFIX:{NAME}:slot:K`: the lock itself, a string holding
    /// the holder's token, with the lease TTL.
    pub lock: String,
    /// The lock's key + `:holder`: a hash describing the holder, with the same TTL.
    pub holder: String,
    /// The lock's key + `:control`: the channel the live holder listens on: told when its lock
    /// is broken or taken, and asked to stop by `release --force`.
    pub control: String,
    /// `PREFIX:{NAME}:fence`: the fencing counter, persistent and only ever incremented.
    pub fence: String,
    /// `PREFIX:{NAME}:released`: the channel a release is published on.
    pub channel: String,
    /// `PREFIX:{NAME}:waiters`: a sorted set of the waiters' tokens, in the order they came.
    pub waiters: String,
    /// `PREFIX:{NAME}:limit`: a semaphore's N, while any of its places is held (with a TTL
    /// never shorter than theirs). A plain lock does not write it.
    pub limit: String,
    /// `PREFIX:{NAME}:history`: a list of the last runs, newest first, as JSON (`history.rs`).
    pub history: String,
    /// `PREFIX:{NAME}`, which the places' keys are named after.
    base: String,
}

impl Keys {
    /// Place 0 of the lock: the plain lock's keys.
    pub fn new(prefix: &str, name: &str) -> Self {
        let base = format!("{prefix}:{{{name}}}");
        Keys {
            lock: base.clone(),
            holder: format!("{base}:holder"),
            control: format!("{base}:control"),
            fence: format!("{base}:fence"),
            channel: format!("{base}:released"),
            waiters: format!("{base}:waiters"),
            limit: format!("{base}:limit"),
            history: format!("{base}:history"),
            base,
        }
    }

    /// Place `slot` of the same lock.
    pub fn slot(&self, slot: usize) -> Keys {
        let lock = match slot {
            0 => self.base.clone(),
            _ => format!("{}:slot:{slot}", self.base),
        };
        Keys {
            holder: format!("{lock}:holder"),
            control: format!("{lock}:control"),
            lock,
            ..self.clone()
        }
    }

    /// Places 0 to `limit` - 1.
    pub fn slots(&self, limit: usize) -> Vec<Keys> {
        (0..limit).map(|slot| self.slot(slot)).collect()
    }
}

/// The lock's name and place, if `key` is the key of a lock's place (`PREFIX:{NAME}` or
/// `PREFIX:{NAME}:slot:K`) rather than one of its companions.
pub fn lock_of(key: &str, prefix: &str) -> Option<(String, usize)> {
    let rest = key.strip_prefix(&format!("{prefix}:{{"))?;
    let (name, after) = rest.rsplit_once('}')?;
    if name.contains('{') || name.contains('}') {
        return None;
    }
    let slot = match after {
        "" => 0,
        _ => {
            let digits = after.strip_prefix(":slot:")?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()?
        }
    };
    Some((name.to_string(), slot))
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
        assert_eq!(keys.limit, "redlock:{backup}:limit");
        assert_eq!(keys.history, "redlock:{backup}:history");
        let two = keys.slot(2);
        assert_eq!(two.lock, "redlock:{backup}:slot:2");
        assert_eq!(two.holder, "redlock:{backup}:slot:2:holder");
        assert_eq!(two.control, "redlock:{backup}:slot:2:control");
        assert_eq!((&two.fence, &two.waiters), (&keys.fence, &keys.waiters));
        assert_eq!(two.slot(0).lock, "redlock:{backup}");
    }

    #[test]
    fn only_the_places_keys_name_a_lock() {
        let lock = |key| lock_of(key, "redlock");
        assert_eq!(lock("redlock:{backup}"), Some(("backup".into(), 0)));
        assert_eq!(
            lock("redlock:{backup}:slot:12"),
            Some(("backup".into(), 12))
        );
        assert_eq!(lock("redlock:{backup}:holder"), None);
        assert_eq!(lock("redlock:{backup}:slot:1:holder"), None);
        assert_eq!(lock("redlock:{backup}:slot:"), None);
        assert_eq!(lock("redlock:{a}b}"), None);
        assert_eq!(lock("other:{backup}"), None);
    }
}
