//! What is sent: a Lua script, run by its hash (EVALSHA) and sent in full (EVAL, which also
//! caches it) when the server does not know it (see `Conn::send`), or a plain command. Packed
//! once, however many servers it goes to.

use std::sync::Arc;

use redis::{ToRedisArgs, Value};

/// A Lua script as build.rs prepares it: its code (without the comment lines, which are for
/// people) and the SHA1 of that code.
pub struct Script {
    code: &'static str,
    hash: &'static str,
}

impl Script {
    pub const fn prepared(code: &'static str, hash: &'static str) -> Self {
        Script { code, hash }
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
                by_hash: packed("EVALSHA", self.hash),
                in_full: packed("EVAL", self.code),
                code: self.code,
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
        code: &'static str,
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
