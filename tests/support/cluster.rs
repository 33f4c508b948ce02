//! A Redis Cluster of our own on loopback: primaries (and replicas) started like any other test
//! server, and joined with CLUSTER commands, so no `redis-cli` is needed.

use super::{RedisServer, free_port, wait_until};

pub struct Cluster {
    pub nodes: Vec<RedisServer>,
}

/// How many slots a cluster has.
const SLOTS: usize = 16384;

impl Cluster {
    /// `primaries` nodes sharing the slots evenly, and `replicas` more of each.
    pub fn start(primaries: usize, replicas: usize) -> Cluster {
        let total = primaries * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..total)
            .map(|_| {
                // The cluster bus gets a port of its own: port + 10000 may be taken, or too high.
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let cluster = Cluster { nodes };
        for (i, node) in cluster.nodes.iter().take(primaries).enumerate() {
            let slots: Vec<String> = (i * SLOTS / primaries..(i + 1) * SLOTS / primaries)
                .map(|slot| slot.to_string())
                .collect();
            let mut args = vec!["CLUSTER", "ADDSLOTS"];
            args.extend(slots.iter().map(String::as_str));
            let _: () = node.cmd(&args);
        }
        let first = &cluster.nodes[0];
        for node in &cluster.nodes[1..] {
            let port = node.port.to_string();
            let bus: Vec<String> = node.cmd(&["CONFIG", "GET", "cluster-port"]);
            let _: () = first.cmd(&["CLUSTER", "MEET", "127.0.0.1", &port, &bus[1]]);
        }
        for node in &cluster.nodes {
            wait_until("every node knows every other", || {
                node.cmd::<String>(&["CLUSTER", "NODES"]).lines().count() == total
            });
        }
        for (i, replica) in cluster.nodes[primaries..].iter().enumerate() {
            let primary: String = cluster.nodes[i % primaries].cmd(&["CLUSTER", "MYID"]);
            let _: () = replica.cmd(&["CLUSTER", "REPLICATE", &primary]);
        }
        for node in &cluster.nodes {
            wait_until("the cluster is ready", || {
                let info: String = node.cmd(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok")
            });
        }
        for replica in &cluster.nodes[primaries..] {
            wait_until("the replica is in sync", || {
                replica
                    .cmd::<String>(&["INFO", "replication"])
                    .contains("master_link_status:up")
            });
        }
        cluster
    }

    /// A seed URL: any node will do.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The node that owns `key`'s slot now, as the cluster says.
    pub fn owner(&self, key: &str) -> &RedisServer {
        let slot: i64 = self.nodes[0].cmd(&["CLUSTER", "KEYSLOT", key]);
        let shards: Vec<redis::Value> = self.nodes[0].cmd(&["CLUSTER", "SLOTS"]);
        for shard in shards {
            let redis::Value::Array(fields) = shard else {
                continue;
            };
            let number = |v: &redis::Value| match v {
                redis::Value::Int(n) => *n,
                _ => -1,
            };
            if (number(&fields[0])..=number(&fields[1])).contains(&slot) {
                let redis::Value::Array(primary) = &fields[2] else {
                    continue;
                };
                let port = number(&primary[1]) as u16;
                return self.nodes.iter().find(|n| n.port == port).expect("a node");
            }
        }
        panic!("no node owns slot {slot}");
    }

    /// The replica of `primary`.
    pub fn replica_of(&self, primary: &RedisServer) -> &RedisServer {
        let id: String = primary.cmd(&["CLUSTER", "MYID"]);
        self.nodes
            .iter()
            .find(|node| {
                // `ID ADDRESS FLAGS PRIMARY-ID ...`: a replica names its primary.
                node.cmd::<String>(&["CLUSTER", "NODES"])
                    .lines()
                    .any(|line| {
                        let fields: Vec<&str> = line.split(' ').collect();
                        fields[2].contains("myself") && fields[3] == id
                    })
            })
            .expect("a replica")
    }
}
