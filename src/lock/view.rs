//! Reading a lock as it is on one server, for `status` and `list`, and breaking it.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::keys::Keys;
use super::server::{Lua, Server, args};

static BREAK: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("break.lua")));

/// One server's view of a lock. Field names are part of the documented JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ServerView {
    pub address: String,
    pub held: bool,
    pub token: Option<String>,
    pub ttl_ms: Option<i64>,
    pub fence: Option<u64>,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub user: Option<String>,
    pub command: Option<String>,
    /// When the holder took the lock, in milliseconds since the Unix epoch (server clock).
    pub started_ms: Option<i64>,
    pub age_ms: Option<i64>,
    pub error: Option<String>,
}

impl ServerView {
    pub fn unreachable(address: &str, error: String) -> Self {
        ServerView {
            address: address.to_string(),
            held: false,
            token: None,
            ttl_ms: None,
            fence: None,
            host: None,
            pid: None,
            user: None,
            command: None,
            started_ms: None,
            age_ms: None,
            error: Some(error),
        }
    }
}

/// Reads the lock, its holder's details and its fencing counter in one round trip.
pub fn view(server: &mut Server, keys: &Keys, timeout: Duration) -> ServerView {
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(&keys.lock);
    pipe.cmd("PTTL").arg(&keys.lock);
    pipe.cmd("HGETALL").arg(&keys.holder);
    pipe.cmd("GET").arg(&keys.fence);
    pipe.cmd("TIME");
    type Reply = (
        Option<String>,
        i64,
        HashMap<String, String>,
        Option<String>,
        (u64, u64),
    );
    match server.query::<Reply>(&pipe, timeout) {
        Err(e) => ServerView::unreachable(&server.address, format!("{e:#}")),
        Ok((token, pttl, holder, counter, (secs, micros))) => {
            let now_ms = (secs * 1000 + micros / 1000) as i64;
            // Details of an earlier holder are not this one's.
            let ours = token.is_some() && holder.get("token") == token.as_ref();
            let field = |name: &str| ours.then(|| holder.get(name).cloned()).flatten();
            let started_ms = field("start").and_then(|s| s.parse::<i64>().ok());
            ServerView {
                address: server.address.clone(),
                held: token.is_some(),
                ttl_ms: token.is_some().then_some(pttl),
                fence: field("fence").or(counter).and_then(|f| f.parse().ok()),
                host: field("host"),
                pid: field("pid").and_then(|p| p.parse().ok()),
                user: field("user"),
                command: field("cmd"),
                age_ms: started_ms.map(|start| now_ms - start),
                started_ms,
                token,
                error: None,
            }
        }
    }
}

/// What breaking a lock found on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    Deleted,
    NotHeld,
    OtherToken,
}

/// Deletes the lock (only if it holds `token`, when given) and notifies waiters.
pub fn break_lock(
    server: &mut Server,
    keys: &Keys,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Broken> {
    let names = [keys.lock.as_str(), &keys.holder];
    let args = args(&[&keys.channel, &token.unwrap_or("")]);
    let outcome: i64 = server.eval(&BREAK, &names, &args, timeout)?;
    Ok(match outcome {
        1 => Broken::Deleted,
        0 => Broken::NotHeld,
        _ => Broken::OtherToken,
    })
}
