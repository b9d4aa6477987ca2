//! Configs for tests: gRPC and metrics on port 0, probing off, fast polls,
//! written to a temporary file the server can re-read.

use std::io::Write;
use std::path::PathBuf;

use crate::RedisServer;

/// One `[[chat_servers]]` entry for a test config; the policy keys are
/// written only when set.
pub struct ChatServerEntry {
    pub name: String,
    pub port: u16,
    pub weight: Option<u64>,
    pub max_connections: Option<u64>,
    pub draining: Option<bool>,
}

impl ChatServerEntry {
    pub fn new(name: &str, port: u16) -> Self {
        ChatServerEntry {
            name: name.to_string(),
            port,
            weight: None,
            max_connections: None,
            draining: None,
        }
    }

    pub fn weight(mut self, weight: u64) -> Self {
        self.weight = Some(weight);
        self
    }

    pub fn max_connections(mut self, max: u64) -> Self {
        self.max_connections = Some(max);
        self
    }

    pub fn draining(mut self, draining: bool) -> Self {
        self.draining = Some(draining);
        self
    }
}

/// `[[chat_servers]]` entries from `(name, port)` pairs, so a test's list of
/// servers reads as one line.
pub fn chat_servers(servers: &[(&str, u16)]) -> Vec<ChatServerEntry> {
    servers
        .iter()
        .map(|&(name, port)| ChatServerEntry::new(name, port))
        .collect()
}

/// A config for tests: gRPC on an ephemeral port, probing off, fast polls.
pub struct TestConfig {
    /// Where Redis is: the `[redis]` lines of its mode (`url = ...`, or
    /// `mode`, `sentinels`, `master_name`, or `mode`, `nodes`).
    pub redis_location: String,
    pub min_replicas_ack: u64,
    pub servers: Vec<ChatServerEntry>,
    pub poll_interval_ms: u64,
    pub probe_interval_ms: u64,
    pub command_timeout_ms: u64,
    pub token_ttl_secs: u64,
    pub shutdown_grace_ms: u64,
    /// `balancer.strategy`; left out (the default) when `None`.
    pub strategy: Option<String>,
    /// `server.threads` (1, the default: everything on one thread).
    pub threads: usize,
}

impl TestConfig {
    pub fn new(redis: &RedisServer, servers: Vec<ChatServerEntry>) -> Self {
        Self::at(&redis.url(), servers)
    }

    /// A standalone Redis at `url` (which need not be running).
    pub fn at(url: &str, servers: Vec<ChatServerEntry>) -> Self {
        Self::located(format!("url = \"{url}\""), servers)
    }

    /// Redis where the `[redis]` lines `location` say.
    pub fn located(location: String, servers: Vec<ChatServerEntry>) -> Self {
        TestConfig {
            redis_location: location,
            min_replicas_ack: 0,
            servers,
            poll_interval_ms: 100,
            probe_interval_ms: 0,
            command_timeout_ms: 1000,
            token_ttl_secs: 86400,
            shutdown_grace_ms: 10000,
            strategy: None,
            threads: 1,
        }
    }

    pub fn to_toml(&self) -> String {
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             shutdown_grace_ms = {}\nthreads = {}\n\n\
             [redis]\n{}\nmin_replicas_ack = {}\ntoken_ttl_secs = {}\ncommand_timeout_ms = {}\n\n\
             [balancer]\npoll_interval_ms = {}\nprobe_interval_ms = {}\n",
            self.shutdown_grace_ms,
            self.threads,
            self.redis_location,
            self.min_replicas_ack,
            self.token_ttl_secs,
            self.command_timeout_ms,
            self.poll_interval_ms,
            self.probe_interval_ms,
        );
        if let Some(strategy) = &self.strategy {
            toml.push_str(&format!("strategy = \"{strategy}\"\n"));
        }
        for server in &self.servers {
            toml.push_str(&format!(
                "\n[[chat_servers]]\nname = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\n",
                server.name, server.port
            ));
            if let Some(weight) = server.weight {
                toml.push_str(&format!("weight = {weight}\n"));
            }
            if let Some(max) = server.max_connections {
                toml.push_str(&format!("max_connections = {max}\n"));
            }
            if let Some(draining) = server.draining {
                toml.push_str(&format!("draining = {draining}\n"));
            }
        }
        toml
    }
}

/// Writes `text` into a fresh temporary file and returns both (the file
/// disappears when the `TempDir` drops).
pub fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    write_config_as("status.toml", text)
}

/// [`write_config`] under the name `file_name`, whose extension decides how
/// the server reads it (`.ini`: the C++ server's INI file).
pub fn write_config_as(file_name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join(file_name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("writing the test config");
    (dir, path)
}

/// `["a", "b"]`: strings as a TOML array.
pub(crate) fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("{item:?}")).collect();
    format!("[{}]", quoted.join(", "))
}
