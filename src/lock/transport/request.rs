//! What is sent: a Lua script, run by its hash (EVALSHA) and sent in full (EVAL, which also
//! caches it) when the server does not know it (see `Conn::send`), or a plain command. Packed
//! once, however many servers it goes to.

use std::sync::Arc;

use redis::{ToRedisArgs, Value};

/// A Lua script, without its comment lines: they are for people, and a script goes in full
/// to a server that does not know it yet.
pub struct Script {
    hash: Arc<str>,
    code: Arc<str>,
}

impl Script {
    pub fn new(source: &str) -> Self {
        let code = source
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        Script {
            hash: redis::Script::new(&code).get_hash().into(),
            code: code.into(),
        }
    }

    /// A request to run the script. `wrote` tells from the reply whether it wrote the lease:
    /// with `--wait-replicas`, the replicas must then confirm it (WAIT).
    pub fn call(&self, keys: &[&str], args: &[Vec<u8>], wrote: fn(&Value) -> bool) -> Request {
        let packed = |command: &str, body: &str| -> Arc<[u8]> {
            redis::cmd(command)
                .arg(body)
                .arg(keys.len())
                .arg(keys)
                .arg(args)
                .get_packed_command()
                .into()
        };
        Request {
            body: Body::Script {
                by_hash: packed("EVALSHA", &self.hash),
                in_full: packed("EVAL", &self.code),
                code: self.code.clone(),
            },
            wrote,
        }
    }
}

pub struct Request {
    pub(super) body: Body,
    pub(super) wrote: fn(&Value) -> bool,
}

pub(super) enum Body {
    Script {
        by_hash: Arc<[u8]>,
        in_full: Arc<[u8]>,
        /// Its text as sent, whose lines a refusal names (`errors::describe_refusal`).
        code: Arc<str>,
    },
    Command(Arc<[u8]>),
}

impl Request {
    /// A plain command (SCAN, SUBSCRIBE...), which writes no lease.
    pub fn command(command: &redis::Cmd) -> Self {
        Request {
            body: Body::Command(command.get_packed_command().into()),
            wrote: |_| false,
        }
    }
}

/// Encodes script arguments.
pub fn args(values: &[&dyn ToRedisArgsDyn]) -> Vec<Vec<u8>> {
    values.iter().flat_map(|v| v.encode()).collect()
}

/// `ToRedisArgs` is not object-safe; this is the part of it `args` needs.
pub trait ToRedisArgsDyn {
    fn encode(&self) -> Vec<Vec<u8>>;
}

impl<T: ToRedisArgs> ToRedisArgsDyn for T {
    fn encode(&self) -> Vec<Vec<u8>> {
        self.to_redis_args()
    }
}
