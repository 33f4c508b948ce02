//! Which lock a command is about: a name of redlock's own (its keys under `--prefix`), or an
//! application's key (`--key`), held the way redis-py's `Lock`, node-redlock and redsync hold
//! theirs.

use clap::Args;

#[derive(Debug, Clone, Args)]
#[group(id = "which", required = true, multiple = false)]
pub struct Which {
    /// Name of the lock
    ///
    /// The same name on every host means the same lock. At most 200 bytes; no braces or control
    /// characters.
    #[arg(short, long, value_name = "NAME")]
    pub name: Option<String>,

    /// Lock exactly this key, as redis-py's Lock, node-redlock and redsync do (not with --name)
    ///
    /// The key itself holds the holder's token with the lease as its TTL, so an application
    /// locking the same key with one of those libraries and redlock exclude each other. redlock's
    /// own details (holder, fencing counter, waiters, history) go in companion keys {KEY}:...,
    /// in the key's hash slot. No '}' (it would part the companions from the key) or control
    /// characters; --prefix does not apply.
    #[arg(long, value_name = "KEY", conflicts_with = "given_prefix")]
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
