//! One node of a Redis topology: a handle that queries it by port
//! ([`RedisNode`]) and the `redis-server` process behind it
//! ([`NodeProcess`], killed on drop). [`SentinelSet`](crate::SentinelSet)
//! and [`RedisCluster`](crate::RedisCluster) are made of these; unlike
//! [`RedisServer`](crate::RedisServer), a node can die and come back while
//! its topology lives on, so the handle and the process are separate.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::command_text;
use crate::{WAIT, free_ports};

/// How long one query of a polling wait may take: a node that is down or
/// busy failing over must not stall the wait past its deadline.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis node (data node or sentinel) at `127.0.0.1:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisNode {
    pub port: u16,
}

impl RedisNode {
    pub fn new(port: u16) -> RedisNode {
        RedisNode { port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a redis:// URL with a port parses")
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|err| panic!("connecting to the node on port {}: {err}", self.port))
    }

    /// Runs `cmd` on a connection of its own and returns the reply; panics
    /// naming the node and the command if it fails.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        cmd.query_async(&mut self.conn().await)
            .await
            .unwrap_or_else(|err| panic!("port {}: {}: {err}", self.port, command_text(cmd)))
    }

    /// Like [`query`](Self::query), but `None` when the node is down,
    /// answers with an error or takes longer than a second: for waits that
    /// poll nodes which may be dead or failing over.
    pub async fn try_query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let reply = tokio::time::timeout(QUERY_TIMEOUT, async {
            let mut conn = self.client().get_multiplexed_async_connection().await?;
            cmd.query_async::<T>(&mut conn).await
        })
        .await;
        reply.ok()?.ok()
    }

    /// The first word of `ROLE`: `master`, `slave` or `sentinel`; `None`
    /// when the node does not answer.
    pub async fn role(&self) -> Option<String> {
        let reply: Vec<redis::Value> = self.try_query(&redis::cmd("ROLE")).await?;
        redis::from_redis_value(reply.into_iter().next()?).ok()
    }

    /// One section of `INFO` as `field -> value` (`INFO replication`, ...);
    /// `None` when the node does not answer.
    pub async fn info(&self, section: &str) -> Option<HashMap<String, String>> {
        let text: String = self.try_query(redis::cmd("INFO").arg(section)).await?;
        Some(parse_info(&text))
    }

    /// Whether this replica's link to its master is up (`INFO replication`).
    pub async fn replica_link_up(&self) -> bool {
        self.info("replication")
            .await
            .is_some_and(|info| info.get("master_link_status").is_some_and(|s| s == "up"))
    }

    /// The token stored for `uid` (`GET utoken_<uid>`), if any.
    pub async fn stored_token(&self, uid: i32) -> Option<String> {
        self.query(redis::cmd("GET").arg(format!("utoken_{uid}")))
            .await
    }

    /// Calls per command since the last `CONFIG RESETSTAT`. A replica counts
    /// the writes it applies from its master too.
    pub async fn command_calls(&self) -> HashMap<String, u64> {
        let info: String = self.query(redis::cmd("INFO").arg("commandstats")).await;
        crate::parse_commandstats(&info)
    }

    pub async fn reset_stats(&self) {
        self.query::<()>(redis::cmd("CONFIG").arg("RESETSTAT"))
            .await;
    }
}

/// `field:value` lines of an `INFO` reply (section headers and blank lines
/// skipped).
pub(crate) fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(field, value)| (field.to_string(), value.to_string()))
        .collect()
}

/// How often a node is started again on other ports when one of its ports
/// was taken between picking and binding it.
const START_ATTEMPTS: usize = 5;

/// A `redis-server` process of a topology, killed on drop (frozen or not).
pub(crate) struct NodeProcess {
    child: Child,
}

/// Why a `redis-server` did not come up.
enum StartFailure {
    /// One of its ports was taken meanwhile: worth another try on others.
    PortTaken,
    /// It exited: the end of its log says why.
    Exited(String),
}

impl NodeProcess {
    /// Picks `ports` free ports, starts `redis-server` with the arguments
    /// `args_for` makes of them (the first is the port it listens on), and
    /// returns it with its ports once it answers `PING`. Ports picked by
    /// binding and releasing them can be taken again before the server
    /// binds them (by any outgoing connection on the machine), so that case
    /// is retried on new ports.
    pub(crate) async fn start_on_free_ports(
        dir: &Path,
        ports: usize,
        mut args_for: impl FnMut(&[u16]) -> Vec<String>,
    ) -> (NodeProcess, Vec<u16>) {
        for _ in 0..START_ATTEMPTS {
            let picked = free_ports(ports);
            match Self::try_start(dir, picked[0], &args_for(&picked)).await {
                Ok(process) => return (process, picked),
                Err(StartFailure::PortTaken) => continue,
                Err(StartFailure::Exited(why)) => panic!("{why}"),
            }
        }
        panic!("redis-server found one of its ports taken {START_ATTEMPTS} times in a row")
    }

    /// Starts `redis-server args`, which must make it listen on `port` and
    /// log to `dir/node-<port>.log` (as [`data_node_args`] does), and waits
    /// until it answers `PING`; panics with the end of its log if it exits
    /// first.
    pub(crate) async fn start(dir: &Path, port: u16, args: &[String]) -> NodeProcess {
        match Self::try_start(dir, port, args).await {
            Ok(process) => process,
            Err(StartFailure::PortTaken) => panic!("redis-server: port {port} is taken"),
            Err(StartFailure::Exited(why)) => panic!("{why}"),
        }
    }

    async fn try_start(
        dir: &Path,
        port: u16,
        args: &[String],
    ) -> Result<NodeProcess, StartFailure> {
        let log_path = dir.join(node_log(port));
        // A restarted node appends to its log: read only what this run wrote.
        let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let child = Command::new("redis-server")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        let mut process = NodeProcess { child };
        let node = RedisNode::new(port);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                let log = std::fs::read(&log_path).unwrap_or_default();
                let log = String::from_utf8_lossy(log.get(log_start..).unwrap_or_default());
                if log.contains("Address already in use") {
                    return Err(StartFailure::PortTaken);
                }
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(StartFailure::Exited(format!(
                    "redis-server on port {port} exited ({status}); its log ends: {:?}",
                    tail.into_iter().rev().collect::<Vec<_>>()
                )));
            }
            if node
                .try_query::<String>(&redis::cmd("PING"))
                .await
                .is_some()
            {
                return Ok(process);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for redis-server on port {port} to answer PING"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: a crash, from the clients' point of view.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: a hung host, from the clients' point of view. The kernel still
    /// accepts TCP connections on its port; nothing answers on them.
    pub(crate) fn freeze(&self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::STOP)
            .unwrap_or_else(|err| panic!("SIGSTOP to redis-server {pid:?}: {err}"));
    }
}

impl Drop for NodeProcess {
    /// SIGKILL ends a stopped (frozen) process as well, so a test that
    /// panics with a node frozen leaves no process behind.
    fn drop(&mut self) {
        self.kill();
    }
}

/// The arguments of a data node on `port`, then `extra`: bound to
/// 127.0.0.1, its files (log, cluster config, the RDB of a full sync) in
/// `dir`, no persistence. Full syncs go through a file: a diskless one
/// waits 5 s for more replicas by default, and then streams commands only
/// after the replica's next ACK, which comes up to a second after its link
/// is up when its first one raced the end of the transfer; a `WAIT` right
/// after start would then time out.
pub(crate) fn data_node_args(dir: &Path, port: u16, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync",
        "no",
        "--dir",
        &dir.display().to_string(),
        "--logfile",
        &node_log(port),
    ]
    .map(String::from)
    .to_vec();
    args.extend_from_slice(extra);
    args
}

/// The log file name of the node on `port`, in its topology's dir.
pub(crate) fn node_log(port: u16) -> String {
    format!("node-{port}.log")
}
