//! A Redis Sentinel set on free ports, for tests of `redis.mode =
//! "sentinel"` (docs/contract.md §5): one master, one replica and three
//! sentinels (quorum 2) that fail the master over one second after it stops
//! answering. A test kills the master, waits for the sentinels to announce
//! the promoted replica (timed), and may bring the old node back as a
//! replica. Everything runs on 127.0.0.1 in a tempdir and is killed on drop.
//!
//! [`start_tls`](SentinelSet::start_tls) gives every node a TLS port beside its plaintext
//! one and makes replication and the sentinels' own links TLS (`tls-replication`): the
//! sentinels then know the data nodes, and announce them, by their TLS ports. The harness
//! keeps to the plaintext ports, translating; the server under test gets the sentinels'
//! TLS ports and so learns only TLS ports.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::redis_node::{NodeProcess, RedisNode, data_node_args, node_log};
use crate::{eventually, eventually_ok};

const MASTER_NAME: &str = "mymaster";
/// How long a master may not answer before a sentinel deems it down.
const DOWN_AFTER_MS: u64 = 1000;
/// Bounds each failover step, and Sentinel waits twice this long before it
/// retries a failover that did not complete (after a split vote, say), so
/// it is kept small for tests.
const FAILOVER_TIMEOUT_MS: u64 = 2000;
const SENTINELS: usize = 3;
/// Sentinel's own periods, shortened with `SENTINEL DEBUG`. It reconnects
/// to a node at most once per ping period (default 1 s): right after a
/// failover that can leave the promoted master without a reply for the
/// whole down-after time, and the sentinels fail it over again (seen in
/// about one run in ten). Hello messages every 200 ms instead of 2 s let
/// the sentinels find each other, and learn a new master, sooner.
const SENTINEL_DEBUG: [(&str, u64); 2] = [("ping-period", 100), ("publish-period", 200)];

/// 1 master + 1 replica + 3 sentinels, ready to fail over (see
/// [`start`](Self::start)); killed on drop.
pub struct SentinelSet {
    dir: TempDir,
    /// The master and the replica, in start order (their roles swap on a
    /// failover).
    data_nodes: Vec<DataNode>,
    /// Each with its TLS port, when the set has them.
    sentinels: Vec<(RedisNode, Option<u16>, NodeProcess)>,
    tls: bool,
}

struct DataNode {
    node: RedisNode,
    /// The port the sentinels know it by: its TLS port when it has one.
    announced: u16,
    /// `None` while killed.
    process: Option<NodeProcess>,
    killed_at: Option<Instant>,
}

impl SentinelSet {
    /// Starts the set and returns once it can fail over: the replica's link
    /// to the master is up, and every sentinel names the master, sees the
    /// replica healthy and knows both other sentinels (they find each other
    /// through the hello messages they publish on the master).
    pub async fn start() -> SentinelSet {
        Self::start_with(false).await
    }

    /// [`start`](Self::start), with TLS ports and TLS links between the nodes, from
    /// certificates of a CA of its own (`ca.crt` in its folder).
    pub async fn start_tls() -> SentinelSet {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> SentinelSet {
        let dir = tempfile::tempdir().expect("creating a tempdir for the sentinel set");
        if tls {
            crate::redis_tls::write_node_files(dir.path());
        }
        let master = start_data_node(&dir, tls, None).await;
        let replica = start_data_node(&dir, tls, Some(master.announced)).await;
        let mut sentinels = Vec::new();
        for _ in 0..SENTINELS {
            let wanted = if tls { 2 } else { 1 };
            let (process, ports) = NodeProcess::start_on_free_ports(dir.path(), wanted, |ports| {
                write_sentinel_config(&dir, ports[0], ports.get(1).copied(), master.announced)
            })
            .await;
            let sentinel = RedisNode::new(ports[0]);
            let mut debug = redis::cmd("SENTINEL");
            debug.arg("DEBUG");
            for (param, ms) in SENTINEL_DEBUG {
                debug.arg(param).arg(ms);
            }
            sentinel.query::<()>(&debug).await;
            sentinels.push((sentinel, ports.get(1).copied(), process));
        }
        let (master_port, replica_port) = (master.node.port, replica.node.port);
        let set = SentinelSet {
            dir,
            data_nodes: vec![master, replica],
            sentinels,
            tls,
        };
        set.wait_until_healthy(master_port, replica_port).await;
        set
    }

    /// The sentinels' plaintext addresses, `redis://127.0.0.1:P`, for `redis.sentinels`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(node, _, _)| node.url())
            .collect()
    }

    /// The `[redis]` lines of a status-server config for this set: its sentinels'
    /// `rediss://` TLS ports and `tls_ca` when it has them.
    pub fn redis_location(&self) -> String {
        let (urls, ca) = if self.tls {
            let urls = self
                .sentinels
                .iter()
                .filter_map(|(_, tls_port, _)| *tls_port)
                .map(|port| format!("rediss://127.0.0.1:{port}"))
                .collect();
            (
                urls,
                format!("\ntls_ca = {:?}", self.dir.path().join("ca.crt")),
            )
        } else {
            (self.sentinel_urls(), String::new())
        };
        format!(
            "mode = \"sentinel\"\nsentinels = {}\nmaster_name = \"{}\"{ca}",
            crate::config::toml_list(&urls),
            self.master_name()
        )
    }

    /// The name the sentinels monitor the master under, for `redis.master_name`.
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// The (plaintext) port of the master the first answering sentinel announces.
    pub async fn master_port(&self) -> u16 {
        let sentinels = &self.sentinels;
        let announced = eventually("a sentinel to name the master", || async move {
            for (sentinel, _, _) in sentinels {
                if let Some(port) = announced_master(sentinel).await {
                    return Some(port);
                }
            }
            None
        })
        .await;
        self.plain_port(announced)
    }

    /// The plaintext port of the data node the sentinels know by `announced`.
    fn plain_port(&self, announced: u16) -> u16 {
        self.data_nodes
            .iter()
            .find(|data_node| data_node.announced == announced)
            .map_or(announced, |data_node| data_node.node.port)
    }

    /// The port the sentinels know the data node on plaintext port `port` by.
    fn announced_port(&self, port: u16) -> u16 {
        self.data_nodes
            .iter()
            .find(|data_node| data_node.node.port == port)
            .map_or(port, |data_node| data_node.announced)
    }

    /// A handle to the current master (asked from the sentinels).
    pub async fn master(&self) -> RedisNode {
        RedisNode::new(self.master_port().await)
    }

    /// Kills the current master with SIGKILL and returns its port.
    pub async fn kill_master(&mut self) -> u16 {
        let port = self.master_port().await;
        let data_node = self.data_node(port);
        data_node
            .process
            .take()
            .unwrap_or_else(|| panic!("the sentinels name {port}, which was already killed"))
            .kill();
        data_node.killed_at = Some(Instant::now());
        port
    }

    /// Waits until every sentinel announces one master other than
    /// `old_port` and that node answers `ROLE` with `master`. Returns its
    /// port and the time since `old_port` was killed (since this call, if it
    /// was not killed through [`kill_master`](Self::kill_master)). The
    /// sentinel that led the failover announces it first; the others learn
    /// it from its hello messages, up to two seconds later.
    pub async fn wait_for_new_master(&self, old_port: u16) -> (u16, Duration) {
        let since = self
            .data_nodes
            .iter()
            .find(|data_node| data_node.node.port == old_port)
            .and_then(|data_node| data_node.killed_at)
            .unwrap_or_else(Instant::now);
        let what = format!("every sentinel to announce one master other than {old_port}");
        let sentinels = &self.sentinels;
        let old_announced = self.announced_port(old_port);
        let new_announced = eventually_ok(&what, || async move {
            let mut announced = Vec::new();
            for (sentinel, _, _) in sentinels {
                announced.push(announced_master(sentinel).await);
            }
            let port = announced[0].filter(|&port| port != old_announced);
            let role = match port {
                Some(port) if announced.iter().all(|&p| p == Some(port)) => {
                    RedisNode::new(self.plain_port(port)).role().await
                }
                _ => return Err(format!("the sentinels announce {announced:?}")),
            };
            match (port, role.as_deref()) {
                (Some(port), Some("master")) => Ok(port),
                _ => Err(format!("{port:?} answers ROLE {role:?}")),
            }
        })
        .await;
        (self.plain_port(new_announced), since.elapsed())
    }

    /// Starts the killed node on `port` again, as a replica of the current
    /// master, and returns once its link is up and every sentinel sees it
    /// as a healthy replica (so the next failover can promote it).
    pub async fn restart_node(&mut self, port: u16) {
        assert!(
            self.data_node(port).process.is_none(),
            "restart_node({port}): that node is running"
        );
        let master_port = self.master_port().await;
        let mut extra = replica_of(self.announced_port(master_port)).to_vec();
        if self.tls {
            extra.extend(tls_args(self.dir.path(), self.announced_port(port)));
        }
        let args = data_node_args(self.dir.path(), port, &extra);
        let process = NodeProcess::start(self.dir.path(), port, &args).await;
        let data_node = self.data_node(port);
        data_node.process = Some(process);
        data_node.killed_at = None;
        self.wait_until_healthy(master_port, port).await;
    }

    fn data_node(&mut self, port: u16) -> &mut DataNode {
        self.data_nodes
            .iter_mut()
            .find(|data_node| data_node.node.port == port)
            .unwrap_or_else(|| panic!("{port} is not a data node of this sentinel set"))
    }

    /// Waits until `replica`'s link to `master` is up and every sentinel
    /// names `master`, sees `replica` as a healthy replica of it and knows
    /// the other sentinels.
    async fn wait_until_healthy(&self, master: u16, replica: u16) {
        let replica_node = RedisNode::new(replica);
        eventually("the replica's link to the master to be up", || async move {
            replica_node.replica_link_up().await.then_some(())
        })
        .await;
        let (master, replica) = (self.announced_port(master), self.announced_port(replica));
        for (sentinel, _, _) in &self.sentinels {
            let what = format!(
                "sentinel {} to see master {master}, replica {replica} and the other sentinels",
                sentinel.port
            );
            eventually_ok(&what, || sentinel_sees(sentinel, master, replica)).await;
        }
    }
}

impl Drop for SentinelSet {
    /// The processes die with their handles; a failing test keeps the
    /// nodes' logs and config files to read.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!("sentinel set: logs kept in {}", self.dir.path().display());
        }
    }
}

/// `--replicaof 127.0.0.1 <port>`.
fn replica_of(master_port: u16) -> [String; 3] {
    [
        "--replicaof".to_string(),
        "127.0.0.1".to_string(),
        master_port.to_string(),
    ]
}

/// A data node on a free port (and a TLS one with `tls`), a replica of the master the
/// sentinels know by `master` if given.
async fn start_data_node(dir: &TempDir, tls: bool, master: Option<u16>) -> DataNode {
    let wanted = if tls { 2 } else { 1 };
    let (process, ports) = NodeProcess::start_on_free_ports(dir.path(), wanted, |ports| {
        let mut extra = master
            .map(|port| replica_of(port).to_vec())
            .unwrap_or_default();
        if let Some(&tls_port) = ports.get(1) {
            extra.extend(tls_args(dir.path(), tls_port));
        }
        data_node_args(dir.path(), ports[0], &extra)
    })
    .await;
    DataNode {
        node: RedisNode::new(ports[0]),
        announced: ports.get(1).copied().unwrap_or(ports[0]),
        process: Some(process),
        killed_at: None,
    }
}

/// A TLS port `tls_port` for a node of the set, and TLS for the links it opens.
fn tls_args(dir: &std::path::Path, tls_port: u16) -> Vec<String> {
    let mut args = crate::redis_tls::node_args(dir, tls_port);
    args.extend(["--tls-replication", "yes"].map(String::from));
    args
}

/// Writes the config file of a sentinel on `port` (Sentinel rewrites it
/// with what it learns, so each needs a writable one of its own) and
/// returns the arguments that start it.
/// With `tls_port`, the sentinel has that TLS port too and reaches the nodes over TLS
/// (`master_port` is then the master's TLS port).
fn write_sentinel_config(
    dir: &TempDir,
    port: u16,
    tls_port: Option<u16>,
    master_port: u16,
) -> Vec<String> {
    let tls = match tls_port {
        None => String::new(),
        Some(tls_port) => {
            let file = |name: &str| dir.path().join(name).display().to_string();
            format!(
                "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                 tls-auth-clients no\ntls-replication yes\n",
                file("redis.crt"),
                file("redis.key"),
                file("ca.crt")
            )
        }
    };
    let config = format!(
        "port {port}\n\
         {tls}\
         bind 127.0.0.1\n\
         dir {dir}\n\
         logfile {log}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.path().display(),
        log = node_log(port),
    );
    let path = dir.path().join(format!("sentinel-{port}.conf"));
    std::fs::write(&path, config).expect("writing a sentinel config into the tempdir");
    vec![path.display().to_string(), "--sentinel".to_string()]
}

/// The master port `SENTINEL get-master-addr-by-name` names, if the
/// sentinel answers.
async fn announced_master(sentinel: &RedisNode) -> Option<u16> {
    let addr: Option<(String, String)> = sentinel
        .try_query(
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER_NAME),
        )
        .await?;
    addr?.1.parse().ok()
}

/// `Ok(())` once `sentinel` names `master`, lists `replica`, and knows the
/// other sentinels, each of them up (see [`up_as`]); otherwise what it
/// sees.
async fn sentinel_sees(sentinel: &RedisNode, master: u16, replica: u16) -> Result<(), String> {
    let master_info: Instance = sentinel_query(sentinel, "master").await?;
    let replicas: Vec<Instance> = sentinel_query(sentinel, "replicas").await?;
    let others: Vec<Instance> = sentinel_query(sentinel, "sentinels").await?;
    let is = |instance: &Instance, port: u16, role: &str| {
        instance.get("port") == Some(&port.to_string()) && up_as(instance, role)
    };
    if is(&master_info, master, "master")
        && replicas.iter().any(|r| is(r, replica, "slave"))
        && others.len() == SENTINELS - 1
        && others.iter().all(|s| up_as(s, "sentinel"))
    {
        return Ok(());
    }
    let describe = |instances: &[&Instance]| {
        instances
            .iter()
            .map(|i| format!("{}({})", field(i, "port"), field(i, "flags")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Err(format!(
        "master {}, replicas {}, other sentinels {}",
        describe(&[&master_info]),
        describe(&replicas.iter().collect::<Vec<_>>()),
        describe(&others.iter().collect::<Vec<_>>())
    ))
}

/// `SENTINEL <sub> mymaster`.
async fn sentinel_query<T: redis::FromRedisValue>(
    sentinel: &RedisNode,
    sub: &str,
) -> Result<T, String> {
    sentinel
        .try_query(redis::cmd("SENTINEL").arg(sub).arg(MASTER_NAME))
        .await
        .ok_or(format!("no reply to SENTINEL {sub}"))
}

fn field<'a>(instance: &'a Instance, key: &str) -> &'a str {
    instance.get(key).map_or("?", String::as_str)
}

/// An instance as `SENTINEL master|replicas|sentinels` describes it.
type Instance = HashMap<String, String>;

/// Whether the instance's `flags` name `role` and none of the flags of an
/// instance that is down or in the middle of a failover. (`master_down` on
/// a sentinel only records its last vote and stays set after a failover, so
/// it does not count.)
fn up_as(instance: &Instance, role: &str) -> bool {
    const NOT_READY: [&str; 6] = [
        "s_down",
        "o_down",
        "disconnected",
        "failover_in_progress",
        "reconf_sent",
        "reconf_inprog",
    ];
    let flags: Vec<&str> = instance
        .get("flags")
        .map_or(Vec::new(), |f| f.split(',').collect());
    flags.contains(&role) && !flags.iter().any(|flag| NOT_READY.contains(flag))
}
