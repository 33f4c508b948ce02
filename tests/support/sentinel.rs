//! Redis Sentinel of our own on loopback: a primary, a replica, and three sentinels watching
//! them (`redis-server CONFIG --sentinel`, each with a writable config file of its own).

use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use super::{RedisServer, free_port, server_program, wait_until};

/// The service name the sentinels know the primary by.
pub const SERVICE: &str = "mymaster";

pub struct Sentinels {
    pub primary: RedisServer,
    pub replica: RedisServer,
    /// Replicas beyond the first (`start_with`).
    pub others: Vec<RedisServer>,
    sentinels: Vec<(Child, u16, TempDir)>,
}

impl Sentinels {
    pub fn start() -> Sentinels {
        Sentinels::start_with(1)
    }

    /// A primary with `replicas` replicas (at least one), and the three sentinels.
    pub fn start_with(replicas: usize) -> Sentinels {
        let primary = RedisServer::start();
        let port = primary.port.to_string();
        let mut all: Vec<RedisServer> = (0..replicas.max(1))
            .map(|_| RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]))
            .collect();
        for replica in &all {
            wait_until("the replica is in sync", || {
                replica
                    .cmd::<String>(&["INFO", "replication"])
                    .contains("master_link_status:up")
            });
        }
        let replica = all.remove(0);
        let others = all;
        let sentinels: Vec<(Child, u16, TempDir)> = (0..3)
            .map(|_| {
                let dir = tempfile::tempdir().unwrap();
                let own = free_port();
                let config = dir.path().join("sentinel.conf");
                std::fs::write(
                    &config,
                    format!(
                        "port {own}\nbind 127.0.0.1\ndir {}\nlogfile sentinel.log\n\
                         sentinel monitor {SERVICE} 127.0.0.1 {port} 2\n\
                         sentinel down-after-milliseconds {SERVICE} 2000\n\
                         sentinel failover-timeout {SERVICE} 20000\n",
                        dir.path().display()
                    ),
                )
                .unwrap();
                let child = Command::new(server_program())
                    .arg(&config)
                    .arg("--sentinel")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server must be installed (see README)");
                (child, own, dir)
            })
            .collect();
        let set = Sentinels {
            primary,
            replica,
            others,
            sentinels,
        };
        let slaves = format!("slaves={}", replicas.max(1));
        for (_, port, _) in &set.sentinels {
            wait_until("each sentinel knows the others and the replicas", || {
                let Ok(info) = set.ask::<String>(*port, &["INFO", "sentinel"]) else {
                    return false;
                };
                info.contains(&slaves) && info.contains("sentinels=3")
            });
        }
        set
    }

    /// `redis+sentinel://` naming all three sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, port, _)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    fn ask<T: redis::FromRedisValue>(&self, port: u16, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut connection =
            client.get_connection_with_timeout(std::time::Duration::from_secs(2))?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query(&mut connection)
    }

    /// Has the sentinels fail the primary over to the replica, and waits until the replica
    /// is the primary and the sentinels say so.
    pub fn fail_over(&self) {
        let port = self.sentinels[0].1;
        let _: () = self
            .ask(port, &["SENTINEL", "FAILOVER", SERVICE])
            .expect("SENTINEL FAILOVER");
        let replica = self.replica.port.to_string();
        wait_until("the replica is the primary", || {
            let address: Vec<String> = self
                .ask(port, &["SENTINEL", "get-master-addr-by-name", SERVICE])
                .unwrap_or_default();
            address.get(1) == Some(&replica)
                && self
                    .replica
                    .try_cmd::<String>(&["INFO", "replication"])
                    .is_ok_and(|info| info.contains("role:master"))
        });
    }

    /// Freezes sentinel `i` (SIGSTOP): it accepts connections and answers nothing.
    pub fn freeze_sentinel(&self, i: usize) {
        let pid = nix::unistd::Pid::from_raw(self.sentinels[i].0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    }

    /// Waits until the sentinels name the replica as the primary (after the primary froze or
    /// died: `down-after-milliseconds` is 2 s).
    pub fn wait_promoted(&self) {
        let port = self.sentinels[0].1;
        let replica = self.replica.port.to_string();
        wait_until("the sentinels promote the replica", || {
            let address: Vec<String> = self
                .ask(port, &["SENTINEL", "get-master-addr-by-name", SERVICE])
                .unwrap_or_default();
            address.get(1) == Some(&replica)
        });
    }

    /// `fail_over`, and waits until the old primary is the new one's replica, in sync.
    pub fn fail_over_and_resync(&self) {
        self.fail_over();
        wait_until("the old primary is a replica in sync", || {
            self.primary
                .try_cmd::<String>(&["INFO", "replication"])
                .is_ok_and(|info| info.contains("master_link_status:up"))
        });
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for (child, _, _) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
