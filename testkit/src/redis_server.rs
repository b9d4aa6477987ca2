//! A private `redis-server` per test, on a free port, killed on drop, and
//! the one-line Redis reads and writes tests make.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

use tokio::task::JoinHandle;

use crate::redis_node::RedisNode;
use crate::{eventually, free_port};

/// A private `redis-server`, killed on drop. The queries on it are its
/// [`RedisNode`]'s (through `Deref`): a server is a node plus its process.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    node: RedisNode,
}

impl std::ops::Deref for RedisServer {
    type Target = RedisNode;

    fn deref(&self) -> &RedisNode {
        &self.node
    }
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        Self::start_on(free_port(), &[]).await
    }

    /// Also accepts `DEBUG SLEEP`, to simulate a hung Redis.
    pub async fn start_with_debug() -> RedisServer {
        Self::start_on(free_port(), &["--enable-debug-command", "yes"]).await
    }

    pub async fn start_on(port: u16, extra: &[&str]) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        let server = RedisServer {
            child,
            port,
            node: RedisNode::new(port),
        };
        let client = server.client();
        eventually("redis-server to answer PING", || {
            let client = client.clone();
            async move {
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
        })
        .await;
        server
    }

    /// `TTL key`: seconds left, -1 without expiry, -2 for no such key.
    pub async fn ttl(&self, key: &str) -> i64 {
        self.query(redis::cmd("TTL").arg(key)).await
    }

    /// Sends `DEBUG SLEEP secs` (needs `start_with_debug`) and returns
    /// without waiting for it: Redis then answers nobody for `secs`, a hung
    /// Redis. The connection is open before this returns, so the sleep goes
    /// out ahead of anything the test sends next. Await the handle before
    /// the test ends.
    pub async fn sleep_in_background(&self, secs: f64) -> JoinHandle<redis::RedisResult<()>> {
        let mut conn = self.conn().await;
        tokio::spawn(async move {
            redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(secs)
                .query_async(&mut conn)
                .await
        })
    }

    /// Kills the server now (a crash, from the clients' point of view).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `cmd` as it would be typed, e.g. `GET utoken_5`, for failure messages.
pub(crate) fn command_text(cmd: &redis::Cmd) -> String {
    cmd.args_iter()
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => "<cursor>".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cmdstat_set:calls=3,usec=...` lines -> {"set": 3}.
pub fn parse_commandstats(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

/// Sets the load hash field of each `(name, value)`.
pub async fn set_loads(redis: &RedisServer, fields: &[(&str, &str)]) {
    let mut conn = redis.conn().await;
    for (name, value) in fields {
        let () = redis::cmd("HSET")
            .arg("logincount")
            .arg(name)
            .arg(value)
            .query_async(&mut conn)
            .await
            .expect("HSET logincount");
    }
}
