//! A Redis Cluster on free ports, for tests of `redis.mode = "cluster"`
//! (docs/contract.md §5): three masters with one replica each, a node
//! timeout of one second. A test can ask which master owns a key, count the
//! commands each node ran, kill or freeze (SIGSTOP) a master and time its
//! replica's promotion. Everything runs on 127.0.0.1 in a tempdir and is
//! killed on drop, frozen nodes too (SIGKILL ends a stopped process), also
//! when the test panics.
//!
//! [`start_tls`](RedisCluster::start_tls) gives every node a TLS port beside its
//! plaintext one, and the nodes speak TLS among themselves (`tls-cluster`,
//! `tls-replication`). Redis tells a client the ports of its own kind, so the harness
//! keeps to plaintext while the server under test, on `rediss://`, is sent to the TLS
//! ports only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::process::Command;
use std::time::{Duration, Instant};

use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::eventually_ok;
use crate::redis_node::{NodeProcess, RedisNode, data_node_args, parse_info};

const MASTERS: usize = 3;
/// Nodes in all: each master has one replica.
const NODES: usize = 2 * MASTERS;
const SLOTS: usize = 16384;
/// How long a node may not answer before the others deem it failing.
const NODE_TIMEOUT_MS: u64 = 1000;

/// 3 masters + 3 replicas, every slot served (see [`start`](Self::start));
/// killed on drop.
pub struct RedisCluster {
    dir: TempDir,
    nodes: Vec<ClusterNode>,
    /// Whether the nodes have TLS ports too (the CA of their certificates is `ca.crt` in
    /// `dir`).
    tls: bool,
    /// Masters killed or frozen through [`kill_master`](Self::kill_master) or
    /// [`freeze_master`](Self::freeze_master).
    failures: HashMap<u16, Failure>,
}

struct ClusterNode {
    node: RedisNode,
    /// Its TLS port, when the cluster has them.
    tls_port: Option<u16>,
    /// `None` while killed.
    process: Option<NodeProcess>,
    /// Stopped with SIGSTOP: running, but it answers nobody.
    frozen: bool,
}

/// A master that was killed or frozen.
struct Failure {
    at: Instant,
    /// Its replicas when it failed: one of them is to take over.
    replicas: Vec<u16>,
}

impl RedisCluster {
    /// Starts six nodes, joins them with `redis-cli --cluster create
    /// --cluster-replicas 1`, and returns once every node says
    /// `cluster_state:ok`, sees all six nodes connected with every slot
    /// assigned and each replica attached to its master, and every
    /// replica's link is up (so a master can be failed over at once).
    pub async fn start() -> RedisCluster {
        Self::start_with(false).await
    }

    /// [`start`](Self::start), with a TLS port on every node too, certificates from a CA
    /// of its own, and TLS between the nodes (cluster bus and replication).
    pub async fn start_tls() -> RedisCluster {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> RedisCluster {
        let dir = tempfile::tempdir().expect("creating a tempdir for the cluster");
        if tls {
            crate::redis_tls::write_node_files(dir.path());
        }
        let mut nodes = Vec::new();
        for _ in 0..NODES {
            // The cluster bus gets a free port of its own (the default, port
            // + 10000, may be taken or past 65535); so does TLS.
            let wanted = if tls { 3 } else { 2 };
            let (process, ports) = NodeProcess::start_on_free_ports(dir.path(), wanted, |ports| {
                let (port, bus_port) = (ports[0], ports[1]);
                let mut cluster_args = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    &NODE_TIMEOUT_MS.to_string(),
                    "--cluster-port",
                    &bus_port.to_string(),
                ]
                .map(String::from)
                .to_vec();
                if let Some(&tls_port) = ports.get(2) {
                    cluster_args.extend(crate::redis_tls::node_args(dir.path(), tls_port));
                    cluster_args.extend(
                        ["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from),
                    );
                }
                data_node_args(dir.path(), port, &cluster_args)
            })
            .await;
            nodes.push(ClusterNode {
                node: RedisNode::new(ports[0]),
                tls_port: ports.get(2).copied(),
                process: Some(process),
                frozen: false,
            });
        }
        let data_ports: Vec<u16> = nodes.iter().map(|n| n.node.port).collect();
        create_cluster(&data_ports).await;
        let cluster = RedisCluster {
            dir,
            nodes,
            tls,
            failures: HashMap::new(),
        };
        for node in cluster.live_nodes() {
            let what = format!("cluster node {} to see a healthy cluster", node.port);
            eventually_ok(&what, || node_sees_healthy_cluster(node)).await;
        }
        cluster
    }

    /// The `[redis]` lines of a status-server config for this cluster: its nodes'
    /// `rediss://` TLS ports and `tls_ca` when it has them.
    pub fn redis_location(&self) -> String {
        if !self.tls {
            return format!(
                "mode = \"cluster\"\nnodes = {}",
                crate::config::toml_list(&self.node_urls())
            );
        }
        let urls: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.tls_port)
            .map(|port| format!("rediss://127.0.0.1:{port}"))
            .collect();
        format!(
            "mode = \"cluster\"\nnodes = {}\ntls_ca = {:?}",
            crate::config::toml_list(&urls),
            self.dir.path().join("ca.crt")
        )
    }

    /// Every node's plaintext address, `redis://127.0.0.1:P` (killed and frozen ones too), for
    /// `redis.nodes`.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.node.url()).collect()
    }

    /// Ports of the masters that serve slots now, ascending.
    pub async fn masters(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .view()
            .await
            .iter()
            .filter(|entry| entry.is_master() && !entry.slots.is_empty())
            .map(|entry| entry.port)
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The port of the master that serves `key`'s slot.
    pub async fn master_of_key(&self, key: &str) -> u16 {
        let slot: u16 = self
            .any_live_node()
            .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await;
        self.view()
            .await
            .iter()
            .find(|entry| entry.is_master() && entry.slots.iter().any(|r| r.contains(&slot)))
            .map(|entry| entry.port)
            .unwrap_or_else(|| panic!("no master serves slot {slot} (of key {key:?})"))
    }

    /// GetChatServer, then Login with its token, for uids 1-12 through `client`
    /// (`how` names the path in failure messages): each token lands on the
    /// master of its key, and the 12 keys reach every one of the 3 masters.
    pub async fn places_and_logs_in_on_every_master(
        &self,
        client: &mut StatusServiceClient<Channel>,
        how: &str,
    ) {
        let mut masters = HashSet::new();
        for uid in 1..=12 {
            let placed = client
                .get_chat_server(GetChatServerReq { uid })
                .await
                .unwrap_or_else(|status| panic!("GetChatServer {how}: {status:?}"))
                .into_inner();
            let master = RedisNode::new(self.master_of_key(&format!("utoken_{uid}")).await);
            assert_eq!(master.stored_token(uid).await, Some(placed.token.clone()));
            masters.insert(master.port);
            let login = client
                .login(LoginReq {
                    uid,
                    token: placed.token,
                })
                .await
                .unwrap_or_else(|status| panic!("Login {how}: {status:?}"))
                .into_inner();
            assert_eq!(login.error, 0);
        }
        assert_eq!(masters.len(), 3, "12 token keys hash to every master");
    }

    /// Kills the master on `port` with SIGKILL, noting its replicas for
    /// [`wait_for_promotion`](Self::wait_for_promotion).
    pub async fn kill_master(&mut self, port: u16) {
        let node = self.note_failure(port, "kill_master").await;
        node.process
            .take()
            .unwrap_or_else(|| panic!("kill_master({port}): that node is not running"))
            .kill();
    }

    /// Freezes the master on `port` with SIGSTOP (a hung host: its port still
    /// accepts connections, nothing answers), noting its replicas for
    /// [`wait_for_promotion`](Self::wait_for_promotion). It stays frozen until
    /// the cluster is dropped, which kills it.
    pub async fn freeze_master(&mut self, port: u16) {
        let node = self.note_failure(port, "freeze_master").await;
        node.process
            .as_ref()
            .unwrap_or_else(|| panic!("freeze_master({port}): that node is not running"))
            .freeze();
        node.frozen = true;
    }

    /// Notes the replicas of the master on `port` and the time, just before
    /// `what` makes it fail, and returns the node.
    async fn note_failure(&mut self, port: u16, what: &str) -> &mut ClusterNode {
        let view = self.view().await;
        let master = view
            .iter()
            .find(|entry| entry.port == port && entry.is_master())
            .unwrap_or_else(|| panic!("{what}({port}): not a master of this cluster"));
        let replicas = view
            .iter()
            .filter(|entry| entry.master_id.as_deref() == Some(&master.id))
            .map(|entry| entry.port)
            .collect();
        let failure = Failure {
            at: Instant::now(),
            replicas,
        };
        self.failures.insert(port, failure);
        self.nodes
            .iter_mut()
            .find(|n| n.node.port == port)
            .unwrap_or_else(|| panic!("{what}({port}): not a node of this cluster"))
    }

    /// Waits until a replica of the master killed or frozen on `failed_port`
    /// answers `ROLE` with `master` and every live node says
    /// `cluster_state:ok` with that replica, not the failed node, serving the
    /// slots. Returns its port and the time since the kill or freeze.
    pub async fn wait_for_promotion(&self, failed_port: u16) -> (u16, Duration) {
        let failure = self.failures.get(&failed_port).unwrap_or_else(|| {
            panic!(
                "wait_for_promotion({failed_port}): call kill_master or freeze_master({failed_port}) first"
            )
        });
        let live: Vec<RedisNode> = self.live_nodes().collect();
        let what = format!("a replica of {failed_port} to take over its slots");
        let new_master = eventually_ok(&what, || {
            let (replicas, live) = (&failure.replicas, &live);
            async move {
                let mut promoted = None;
                for &replica in replicas {
                    if RedisNode::new(replica).role().await.as_deref() == Some("master") {
                        promoted = Some(replica);
                    }
                }
                let promoted =
                    promoted.ok_or(format!("no replica of {replicas:?} says ROLE master"))?;
                for node in live {
                    let view = cluster_state_ok(node)
                        .await
                        .then_some(())
                        .ok_or(format!("{} says cluster_state is not ok", node.port))
                        .and(
                            cluster_view(node)
                                .await
                                .ok_or(format!("{} does not answer CLUSTER NODES", node.port)),
                        )?;
                    let serves = |port| {
                        view.iter()
                            .any(|entry| entry.port == port && !entry.slots.is_empty())
                    };
                    if serves(failed_port) || !serves(promoted) {
                        return Err(format!(
                            "{} sees {failed_port} serving slots or {promoted} not",
                            node.port
                        ));
                    }
                }
                Ok(promoted)
            }
        })
        .await;
        (new_master, failure.at.elapsed())
    }

    /// `INFO commandstats` of every live node, by port. A replica counts
    /// the writes it applies from its master too.
    pub async fn command_calls_per_node(&self) -> BTreeMap<u16, HashMap<String, u64>> {
        let mut calls = BTreeMap::new();
        for node in self.live_nodes() {
            calls.insert(node.port, node.command_calls().await);
        }
        calls
    }

    /// Calls per command summed over the masters: what clients sent (the
    /// replicas' counts would add every write a second time).
    pub async fn master_command_calls(&self) -> HashMap<String, u64> {
        let mut sum = HashMap::new();
        for port in self.masters().await {
            for (command, calls) in RedisNode::new(port).command_calls().await {
                *sum.entry(command).or_insert(0) += calls;
            }
        }
        sum
    }

    /// `CONFIG RESETSTAT` on every live node.
    pub async fn reset_stats(&self) {
        for node in self.live_nodes() {
            node.reset_stats().await;
        }
    }

    fn live_nodes(&self) -> impl Iterator<Item = RedisNode> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.process.is_some() && !n.frozen)
            .map(|n| n.node)
    }

    fn any_live_node(&self) -> RedisNode {
        self.live_nodes().next().expect(
            "a cluster of six nodes cannot lose all of them through kill_master or freeze_master",
        )
    }

    /// `CLUSTER NODES` as the first live node that answers sees it.
    async fn view(&self) -> Vec<ViewEntry> {
        for node in self.live_nodes() {
            if let Some(view) = cluster_view(&node).await {
                return view;
            }
        }
        panic!(
            "no live node of the cluster in {} answers CLUSTER NODES",
            self.dir.path().display()
        )
    }
}

impl Drop for RedisCluster {
    /// The processes die with their handles; a failing test keeps the
    /// nodes' logs and config files to read.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!("cluster: logs kept in {}", self.dir.path().display());
        }
    }
}

/// `redis-cli --cluster create` over `ports`, one replica per master.
async fn create_cluster(ports: &[u16]) {
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
    })
    .await
    .expect("the redis-cli task ran to completion")
    .expect("redis-cli must be installed with redis-server");
    assert!(
        output.status.success(),
        "redis-cli --cluster create failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One line of `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master id or
/// -> <ping> <pong> <epoch> <link state> <slot ranges>...`.
struct ViewEntry {
    id: String,
    port: u16,
    flags: Vec<String>,
    master_id: Option<String>,
    connected: bool,
    slots: Vec<RangeInclusive<u16>>,
}

impl ViewEntry {
    fn parse(line: &str) -> Option<ViewEntry> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (addr, _bus) = fields.get(1)?.split_once('@')?;
        let port = addr.rsplit_once(':')?.1.parse().ok()?;
        let slots = fields
            .get(8..)
            .unwrap_or_default()
            .iter()
            // `[slot->-id]` marks a slot being migrated: not served here.
            .filter(|range| !range.starts_with('['))
            .map(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                Some(start.parse().ok()?..=end.parse().ok()?)
            })
            .collect::<Option<_>>()?;
        Some(ViewEntry {
            id: fields.first()?.to_string(),
            port,
            flags: fields.get(2)?.split(',').map(String::from).collect(),
            master_id: Some(fields.get(3)?.to_string()).filter(|id| id != "-"),
            connected: *fields.get(7)? == "connected",
            slots,
        })
    }

    fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }

    fn slot_count(&self) -> usize {
        self.slots.iter().map(|range| range.clone().count()).sum()
    }

    /// Connected and not failing, joining or without an address.
    fn is_healthy(&self) -> bool {
        self.connected
            && !self
                .flags
                .iter()
                .any(|f| matches!(f.as_str(), "fail" | "fail?" | "handshake" | "noaddr"))
    }
}

/// `node`'s `CLUSTER NODES`, parsed; `None` if it does not answer or a line
/// does not parse.
async fn cluster_view(node: &RedisNode) -> Option<Vec<ViewEntry>> {
    let text: String = node.try_query(redis::cmd("CLUSTER").arg("NODES")).await?;
    text.lines().map(ViewEntry::parse).collect()
}

async fn cluster_state_ok(node: &RedisNode) -> bool {
    let info: Option<String> = node.try_query(redis::cmd("CLUSTER").arg("INFO")).await;
    info.is_some_and(|text| {
        parse_info(&text)
            .get("cluster_state")
            .is_some_and(|state| state == "ok")
    })
}

/// `Ok(())` once `node` says `cluster_state:ok`, sees all nodes healthy,
/// three masters serving every slot and a replica attached to each, and
/// (if it is a replica) its own link to its master is up; otherwise what is
/// missing.
async fn node_sees_healthy_cluster(node: RedisNode) -> Result<(), String> {
    if !cluster_state_ok(&node).await {
        return Err("cluster_state is not ok".to_string());
    }
    let view = cluster_view(&node)
        .await
        .ok_or("no reply to CLUSTER NODES".to_string())?;
    let masters: Vec<&ViewEntry> = view.iter().filter(|e| e.is_master()).collect();
    let served: usize = masters.iter().map(|m| m.slot_count()).sum();
    let every_master_has_a_replica = masters.iter().all(|m| {
        view.iter()
            .any(|e| e.master_id.as_deref() == Some(m.id.as_str()))
    });
    let is_replica = view
        .iter()
        .any(|e| e.port == node.port && e.flags.iter().any(|f| f == "slave"));
    let healthy = view.len() == NODES
        && view.iter().all(ViewEntry::is_healthy)
        && masters.len() == MASTERS
        && served == SLOTS
        && every_master_has_a_replica;
    if !healthy {
        let entries: Vec<String> = view
            .iter()
            .map(|e| {
                format!(
                    "{}({}, {} slots)",
                    e.port,
                    e.flags.join(","),
                    e.slot_count()
                )
            })
            .collect();
        return Err(format!("CLUSTER NODES: {}", entries.join(" ")));
    }
    if is_replica && !node.replica_link_up().await {
        return Err("its replication link is not up".to_string());
    }
    Ok(())
}
