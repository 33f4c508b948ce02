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
        Cluster::start_with(primaries, replicas, 5000)
    }

    /// `start`, with the nodes' `cluster-node-timeout` in ms: 1000 fails a primary over in
    /// about two seconds, for the tests of failovers.
    pub fn start_with(primaries: usize, replicas: usize, node_timeout_ms: u32) -> Cluster {
        let node_timeout = node_timeout_ms.to_string();
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
                    &node_timeout,
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

    /// Waits until `replica` has taken over its primary's slots, and every node but the ones
    /// on the ports `down` says the cluster is whole again.
    pub fn wait_failed_over(&self, replica: &RedisServer, down: &[u16]) {
        wait_until("the replica is a primary", || {
            replica
                .try_cmd::<String>(&["INFO", "replication"])
                .is_ok_and(|info| info.contains("role:master"))
        });
        for node in self.nodes.iter().filter(|n| !down.contains(&n.port)) {
            wait_until("the cluster is whole again", || {
                node.try_cmd::<String>(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
        }
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
