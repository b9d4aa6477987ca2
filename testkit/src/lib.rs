//! Test harness shared by the workspace's integration tests: a real
//! `redis-server` on a free port ([`RedisServer`]), status-server run
//! in-process on port 0 ([`TestServer`]) or as the binary
//! ([`ServerProcess`], for what only a process shows: signals, exit codes,
//! stderr), stand-in ChatServers, and load generators; for Redis past one
//! node, a Sentinel set ([`SentinelSet`]) and a cluster ([`RedisCluster`])
//! whose masters can be killed and their failovers timed; a TLS-only Redis
//! ([`TlsRedisServer`]); certificates for TLS ([`TlsDir`]).
//!
//! Every process and server is stopped when its handle drops, so a failing
//! test leaves nothing behind. Waits are on events (a log line, a port
//! answering, a reply) with a deadline, never fixed sleeps.

mod certs;
mod chat;
mod cluster;
mod config;
mod in_process;
mod load;
mod process;
mod redis_node;
mod redis_server;
mod redis_tls;
mod sentinel;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

pub use certs::{Leaf, TestCa, TlsDir, client_config};
pub use chat::{StandInChatServer, chatserver_binary};
pub use cluster::RedisCluster;
pub use config::{ChatServerEntry, TestConfig, chat_servers, write_config, write_config_as};
pub use in_process::TestServer;
pub use load::{LoadOutcome, LoadWorkers, placed_port};
pub use process::{ServerProcess, run_binary_to_exit, run_to_exit, run_to_exit_as, server_binary};
pub use redis_node::RedisNode;
pub use redis_server::{RedisServer, parse_commandstats, set_loads};
pub use redis_tls::TlsRedisServer;
pub use sentinel::SentinelSet;

use status_server::proto::status_service_client::StatusServiceClient;
use tonic::transport::Channel;

/// Upper bound for anything the harness waits on.
pub const WAIT: Duration = Duration::from_secs(20);

/// A port nobody listens on right now (the OS picked it; we released it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port on 127.0.0.1")
        .port()
}

/// `n` distinct ports nobody listens on right now: all are held at once
/// while picking, so no two are the same (calling [`free_port`] `n` times
/// may return one twice).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port on 127.0.0.1"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has an address")
                .port()
        })
        .collect()
}

/// Polls `check` until it returns `Some` or `WAIT` passes.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`], for checks that say why they are not done yet
/// (`Err(reason)`): a timeout names the last reason, which is what tells a
/// slow topology from a broken one.
pub async fn eventually_ok<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let reason = match check().await {
            Ok(value) => return value,
            Err(reason) => reason,
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connected channel to a gRPC address, for any client.
pub async fn channel_to(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("connecting to status-server")
}

/// A `message.StatusService` client of a gRPC address.
pub async fn client_of(addr: SocketAddr) -> StatusServiceClient<Channel> {
    StatusServiceClient::new(channel_to(addr).await)
}

/// `GET path` on an HTTP/1.1 address: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting to the metrics listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("sending the request");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("the response came in time")
        .expect("reading the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (status, body.to_string())
}

/// An HTTP/1.1 response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// The header lines after the status line, as sent.
    pub head: String,
    pub body: String,
}

impl HttpReply {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `request` (raw HTTP/1.1, asking the server to close) on a connection of its own
/// and reads the response until the server closes it.
pub async fn http_exchange(addr: SocketAddr, request: &[u8]) -> HttpReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting to the HTTP port");
    stream
        .write_all(request)
        .await
        .expect("sending the request");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the response came in time")
        .expect("reading the response");
    parse_http_reply(&String::from_utf8_lossy(&response))
}

/// Splits one HTTP/1.1 response (with its body) into its parts.
pub fn parse_http_reply(response: &str) -> HttpReply {
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let (status_line, head) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    HttpReply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `POST path` with a JSON `body` on an HTTP/1.1 address.
pub async fn http_post(addr: SocketAddr, path: &str, body: &str) -> HttpReply {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(addr, request.as_bytes()).await
}

/// The most common set-up: a Redis where "chat1" (port 8090) is alive with
/// count 0, and a server (in-process) configured with just that chat server.
pub async fn server_with_one_chat_server() -> (RedisServer, TestServer) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let server = TestServer::start(&config).await;
    (redis, server)
}
