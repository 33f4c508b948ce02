//! Where a lock lives in Redis. Every key of one lock shares the hash tag `{NAME}`, so the
//! scripts that touch several of them also run on Redis Cluster.
//!
//! With `--limit N` (a counting semaphore) the lock has N places, each a lock of its own (its
//! key, holder details and control channel); place 0 is the plain lock's keys, so that a
//! semaphore and a plain lock of the same name see each other. The fencing counter, the
//! waiters' queue, the release channel and the stored limit are shared by all places. A plain
//! lock's shared holders (`--shared`) are in `readers`, beside its key.
//!
//! With `--key KEY` the lock is the application's key itself, as the lock libraries hold it (a
//! string: the holder's token, with the lease as its TTL), and the companions are `{KEY}:...`:
//! a KEY without '}' hashes like `{KEY}`, so they share its slot.

use anyhow::{Result, bail};

/// Longest lock name; Redis would take more, but a name is a label, not a payload.
const MAX_NAME: usize = 200;

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
    /// `PREFIX:{NAME}:released`: what the channels of the waiters are named after (`wake`).
    pub channel: String,
    /// `PREFIX:{NAME}:waiters`: a sorted set of the waiters, each as the channel it listens on
    /// (`wake`), in the order they came.
    pub waiters: String,
    /// `PREFIX:{NAME}:limit`: a semaphore's N, while any of its places is held (with a TTL
    /// never shorter than theirs). A plain lock does not write it.
    pub limit: String,
    /// `PREFIX:{NAME}:history`: a list of the last runs, newest first, as JSON (`history.rs`).
    pub history: String,
    /// `PREFIX:{NAME}:readers`: the shared holders (`run --shared`), a sorted set of their
    /// tokens scored by when each lease ends (the server's clock, ms), as long as the last.
    pub readers: String,
    /// `PREFIX:{NAME}:readers:holder`: a hash of the shared holders' details, token -> JSON.
    pub reader_details: String,
    /// `PREFIX:{NAME}:writers`: the exclusive runs among the waiters (a sorted set of their
    /// entries in `waiters`): new shared holders let them go first.
    pub writers: String,
    /// Whether the lock is an application's key (`--key`), which clients other than redlock
    /// may hold: they write no holder details and publish no release notice.
    pub app_key: bool,
    /// `PREFIX:{NAME}` (or `{KEY}`), which the companions are named after.
    base: String,
    /// Place 0's lock: `PREFIX:{NAME}`, or KEY.
    first: String,
}

impl Keys {
    /// Place 0 of the lock: the plain lock's keys.
    pub fn new(prefix: &str, name: &str) -> Self {
        let base = format!("{prefix}:{{{name}}}");
        Keys::around(base.clone(), base, false)
    }

    /// An application's key: the lock is `key` itself, its companions `{key}:...`.
    pub fn for_key(key: &str) -> Self {
        Keys::around(key.to_string(), format!("{{{key}}}"), true)
    }

    /// The lock `lock` with its companions named after `base`.
    fn around(lock: String, base: String, app_key: bool) -> Self {
        Keys {
            holder: format!("{base}:holder"),
            control: format!("{base}:control"),
            fence: format!("{base}:fence"),
            channel: format!("{base}:released"),
            waiters: format!("{base}:waiters"),
            limit: format!("{base}:limit"),
            history: format!("{base}:history"),
            readers: format!("{base}:readers"),
            reader_details: format!("{base}:readers:holder"),
            writers: format!("{base}:writers"),
            first: lock.clone(),
            lock,
            app_key,
            base,
        }
    }

    /// Place `slot` of the same lock.
    pub fn slot(&self, slot: usize) -> Keys {
        if slot == 0 {
            return Keys::around(self.first.clone(), self.base.clone(), self.app_key);
        }
        let lock = format!("{}:slot:{slot}", self.base);
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

    /// The channel the waiter holding `token` listens on: a release (or a break) wakes the
    /// first waiter of the queue on its own (notify.lua's `wake`). It is also the waiter's entry
    /// in the queue, so no script builds it; `wake("")` is what every waiter's channel starts
    /// with.
    pub fn wake(&self, token: &str) -> String {
        format!("{}:{token}", self.channel)
    }

    /// The channel on which a server of database `db` tells of the changes to the lock's key
    /// (Redis's keyspace notifications), which a `--key` waiter listens to: a library that
    /// holds the key publishes no release notice.
    pub fn keyspace(&self, db: i64) -> String {
        format!("__keyspace@{db}__:{}", self.lock)
    }
}

/// What `SCAN ... MATCH` is given to find the places of the locks whose names match the glob
/// `names` (`redlock list`): `PREFIX:{NAMES}*`, the prefix's own glob characters escaped. It
/// finds the companions too, which `lock_of` tells apart.
pub fn scan_pattern(prefix: &str, names: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("{escaped}:{{{names}}}*")
}

/// The lock's name and place, if `key` is the key of a lock's place (`PREFIX:{NAME}` or
/// `PREFIX:{NAME}:slot:K`), or its shared holders (`PREFIX:{NAME}:readers`: place 0, held
/// shared), rather than another of its companions.
pub fn lock_of(key: &str, prefix: &str) -> Option<(String, usize)> {
    let rest = key.strip_prefix(&format!("{prefix}:{{"))?;
    let (name, after) = rest.rsplit_once('}')?;
    if name.contains('{') || name.contains('}') {
        return None;
    }
    let slot = match after {
        "" | ":readers" => 0,
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

/// Checks a lock name or key prefix: it becomes part of a key and of a hash tag.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    check_length(what, name, MAX_NAME)?;
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || *c == '{' || *c == '}')
    {
        bail!("{what} {name:?} contains {c:?}: braces and control characters are not allowed");
    }
    Ok(())
}

/// That `text` (`what`, in the message) is not empty and at most `limit` bytes long.
fn check_length(what: &str, text: &str, limit: usize) -> Result<()> {
    if text.is_empty() {
        bail!("{what} must not be empty");
    }
    if text.len() > limit {
        bail!("{what} is {} bytes long; the limit is {limit}", text.len());
    }
    Ok(())
}

/// Longest `--key`: an application's key is its own, but it is also a label in messages.
const MAX_KEY: usize = 512;

/// Checks an application's key (`--key`): its companions `{KEY}:...` must hash to its slot.
pub fn check_key(key: &str) -> Result<()> {
    check_length("the key", key, MAX_KEY)?;
    if key.contains('}') {
        bail!(
            "the key {key:?} contains '}}': redlock's companion keys, named after {{KEY}}, would hash \
             to another slot than the key (a Redis Cluster could not run the scripts that \
             touch both); use a key without '}}'"
        );
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        bail!("the key {key:?} contains {c:?}: control characters are not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("name", "backup-db.daily").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "a{b}").is_err());
        assert!(check_name("name", "a\nb").is_err());
        assert!(check_name("name", &"x".repeat(201)).is_err());
    }

    #[test]
    fn keys_must_not_part_from_their_companions() {
        assert!(check_key("reindex").is_ok());
        assert!(check_key("lock:{tenant").is_ok());
        let err = check_key("lock:{tenant}:reindex").unwrap_err().to_string();
        assert!(err.contains("another slot"), "{err}");
        assert!(check_key("").is_err());
        assert!(check_key("a\tb").is_err());
    }

    #[test]
    fn prefixes_are_matched_literally() {
        assert_eq!(scan_pattern("team[a]*", "b*"), "team\\[a\\]\\*:{b*}*");
        assert_eq!(scan_pattern("redlock", "*"), "redlock:{*}*");
    }

    #[test]
    fn a_keys_notifications_name_its_database() {
        assert_eq!(Keys::for_key("kk").keyspace(3), "__keyspace@3__:kk");
    }

    #[test]
    fn all_keys_share_the_hash_tag() {
        let keys = Keys::new("redlock", "backup");
        assert_eq!(keys.lock, "redlock:{backup}");
        assert_eq!(keys.holder, "redlock:{backup}:holder");
        assert_eq!(keys.fence, "redlock:{backup}:fence");
        assert_eq!(keys.channel, "redlock:{backup}:released");
        assert_eq!(keys.wake("t1"), "redlock:{backup}:released:t1");
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
        assert!(!keys.app_key);
    }

    #[test]
    fn an_app_keys_companions_share_its_slot() {
        let keys = Keys::for_key("reindex");
        assert_eq!(keys.lock, "reindex");
        assert_eq!(keys.holder, "{reindex}:holder");
        assert_eq!(keys.control, "{reindex}:control");
        assert_eq!(keys.fence, "{reindex}:fence");
        assert_eq!(keys.channel, "{reindex}:released");
        assert_eq!(keys.waiters, "{reindex}:waiters");
        assert_eq!(keys.limit, "{reindex}:limit");
        assert_eq!(keys.history, "{reindex}:history");
        assert!(keys.app_key);
        assert_eq!(keys.slot(0).lock, "reindex");
        assert_eq!(keys.slot(0).holder, "{reindex}:holder");
    }

    #[test]
    fn only_the_places_keys_name_a_lock() {
        let lock = |key| lock_of(key, "redlock");
        assert_eq!(lock("redlock:{backup}"), Some(("backup".into(), 0)));
        assert_eq!(
            lock("redlock:{backup}:slot:12"),
            Some(("backup".into(), 12))
        );
        assert_eq!(lock("redlock:{backup}:readers"), Some(("backup".into(), 0)));
        assert_eq!(lock("redlock:{backup}:readers:holder"), None);
        assert_eq!(lock("redlock:{backup}:writers"), None);
        assert_eq!(lock("redlock:{backup}:holder"), None);
        assert_eq!(lock("redlock:{backup}:slot:1:holder"), None);
        assert_eq!(lock("redlock:{backup}:slot:"), None);
        assert_eq!(lock("redlock:{a}b}"), None);
        assert_eq!(lock("other:{backup}"), None);
    }
}
