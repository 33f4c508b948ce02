//! Which lock a command is about: a name of redlock's own (its keys under `--prefix`), or an
//! application's key (`--key`), held the way redis-py's `Lock`, node-redlock and redsync hold
//! theirs.

use clap::Args;

/// `--key`'s help, the same for `run` (`Locks`) and the other commands (`Which`).
const KEY_HELP: &str =
    "Lock exactly this key, as redis-py's Lock, node-redlock and redsync do (not with --name)";
const KEY_LONG_HELP: &str = "Lock exactly this key, as redis-py's Lock, node-redlock and redsync \
    do (not with --name)\n\nThe key itself holds the holder's token with the lease as its TTL, so \
    an application locking the same key with one of those libraries and redlock exclude each \
    other. redlock's own details (holder, fencing counter, waiters, history) go in companion keys \
    {KEY}:..., in the key's hash slot. No '}' (it would part the companions from the key) or \
    control characters; --prefix does not apply.";

#[derive(Debug, Clone, Args)]
#[group(id = "which", required = true, multiple = false)]
pub struct Which {
    /// Name of the lock
    ///
    /// The same name on every host means the same lock. At most 200 bytes; no braces or control
    /// characters.
    #[arg(short, long, value_name = "NAME")]
    pub name: Option<String>,

    #[arg(long, value_name = "KEY", conflicts_with = "given_prefix", help = KEY_HELP, long_help = KEY_LONG_HELP)]
    pub key: Option<String>,
}

impl Which {
    /// The name or key, as messages, the history and the metrics name the lock.
    pub fn label(&self) -> &str {
        self.name.as_deref().or(self.key.as_deref()).unwrap_or("")
    }

    /// The variable that names the lock in the command's environment (REDLOCK_NAME, or
    /// REDLOCK_KEY with --key), and the other one, which an outer run may have set.
    pub fn variables(&self) -> (&'static str, &'static str) {
        match self.key {
            Some(_) => ("REDLOCK_KEY", "REDLOCK_NAME"),
            None => ("REDLOCK_NAME", "REDLOCK_KEY"),
        }
    }
}

/// Which locks `run` takes: one name, several (all or none), or one key.
#[derive(Debug, Clone, Args)]
#[group(id = "which", required = true, multiple = false)]
pub struct Locks {
    /// Name of the lock; repeat it to hold several locks at once
    ///
    /// The same name on every host means the same lock. At most 200 bytes; no braces or control
    /// characters. With several, the command runs once all are taken, never with part of them:
    /// a run takes them in one order (sorted), holds none while it waits, and gives back those
    /// it took when another is busy, so runs that ask for overlapping sets in any order never
    /// deadlock.
    #[arg(short, long, value_name = "NAME")]
    pub name: Vec<String>,

    #[arg(long, value_name = "KEY", conflicts_with = "given_prefix", help = KEY_HELP, long_help = KEY_LONG_HELP)]
    pub key: Option<String>,
}

impl Locks {
    /// Each lock, in the order they are taken: sorted, each name once.
    pub fn each(&self) -> Vec<Which> {
        let mut names = self.name.clone();
        names.sort();
        names.dedup();
        match &self.key {
            Some(key) => vec![Which {
                name: None,
                key: Some(key.clone()),
            }],
            None => (names.into_iter())
                .map(|name| Which {
                    name: Some(name),
                    key: None,
                })
                .collect(),
        }
    }

    /// The locks as messages, the history and the metrics name them: a name, a key, or the
    /// names in the order taken, joined by "+".
    pub fn label(&self) -> String {
        let each = self.each();
        let labels: Vec<&str> = each.iter().map(Which::label).collect();
        labels.join("+")
    }

    pub fn variables(&self) -> (&'static str, &'static str) {
        self.each()[0].variables()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_names_are_taken_sorted_each_once() {
        let locks = Locks {
            name: ["nas", "db", "nas"].map(String::from).to_vec(),
            key: None,
        };
        let names: Vec<String> = locks.each().iter().map(|w| w.label().to_string()).collect();
        assert_eq!(names, ["db", "nas"]);
        assert_eq!(locks.label(), "db+nas");
    }
}
