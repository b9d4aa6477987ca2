//! Test harness: a real `redis-server` on a free port, the `status-server`
//! binary as a child process, stand-in ChatServers, and small helpers.
//!
//! Every process is killed when its handle drops, so a failing test leaves
//! nothing behind. Waits are on events (a log line, a port answering) with a
//! deadline, never fixed sleeps.

#![allow(dead_code)] // each test binary uses its own subset of the harness

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use status_server::proto::GetChatServerReq;
use status_server::proto::status_service_client::StatusServiceClient;
use tokio::task::JoinHandle;
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

/// Polls `check` until it returns `Some` or `WAIT` passes.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
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

/// A private `redis-server`, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
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
        let server = RedisServer { child, port };
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
            .expect("connecting to the test redis-server")
    }

    /// Runs `cmd` on a connection of its own and returns the reply; panics
    /// naming the command if it fails. One-off reads and writes in a test
    /// stay one line, and a failure says which of them it was.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        cmd.query_async(&mut self.conn().await)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", command_text(cmd)))
    }

    /// The token stored for `uid` (`GET utoken_<uid>`), if any.
    pub async fn stored_token(&self, uid: i32) -> Option<String> {
        self.query(redis::cmd("GET").arg(format!("utoken_{uid}")))
            .await
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

    /// Calls per command since the last `CONFIG RESETSTAT` (from `INFO commandstats`).
    pub async fn command_calls(&self) -> HashMap<String, u64> {
        let info: String = self.query(redis::cmd("INFO").arg("commandstats")).await;
        parse_commandstats(&info)
    }

    pub async fn reset_stats(&self) {
        self.query::<()>(redis::cmd("CONFIG").arg("RESETSTAT"))
            .await;
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
fn command_text(cmd: &redis::Cmd) -> String {
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

/// One `[[chat_servers]]` entry for a test config.
pub struct ChatServerEntry {
    pub name: String,
    pub port: u16,
}

impl ChatServerEntry {
    pub fn new(name: &str, port: u16) -> Self {
        ChatServerEntry {
            name: name.to_string(),
            port,
        }
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
    pub redis_url: String,
    pub servers: Vec<ChatServerEntry>,
    pub poll_interval_ms: u64,
    pub probe_interval_ms: u64,
    pub command_timeout_ms: u64,
    pub token_ttl_secs: u64,
    pub shutdown_grace_ms: u64,
}

impl TestConfig {
    pub fn new(redis: &RedisServer, servers: Vec<ChatServerEntry>) -> Self {
        TestConfig {
            redis_url: redis.url(),
            servers,
            poll_interval_ms: 100,
            probe_interval_ms: 0,
            command_timeout_ms: 1000,
            token_ttl_secs: 86400,
            shutdown_grace_ms: 10000,
        }
    }

    pub fn to_toml(&self) -> String {
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nshutdown_grace_ms = {}\n\n\
             [redis]\nurl = \"{}\"\ntoken_ttl_secs = {}\ncommand_timeout_ms = {}\n\n\
             [balancer]\npoll_interval_ms = {}\nprobe_interval_ms = {}\n",
            self.shutdown_grace_ms,
            self.redis_url,
            self.token_ttl_secs,
            self.command_timeout_ms,
            self.poll_interval_ms,
            self.probe_interval_ms,
        );
        for server in &self.servers {
            toml.push_str(&format!(
                "\n[[chat_servers]]\nname = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\n",
                server.name, server.port
            ));
        }
        toml
    }
}

/// Writes `text` into a fresh temporary file and returns both (the file
/// disappears when the `TempDir` drops).
pub fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join("status.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("writing the test config");
    (dir, path)
}

/// The `status-server` binary Cargo built for these tests.
///
/// Cargo names it in `CARGO_BIN_EXE_status-server` only for the root package's own
/// tests; the tests of other packages (statusctl's) find it in the target directory,
/// where `cargo test --workspace` builds it before any test runs, because the root
/// package has integration tests. (`cargo test -p statusctl` alone does not build it.)
pub fn server_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_status-server") {
        Some(path) => PathBuf::from(path),
        None => built_binary(Path::new("status-server")),
    }
}

/// `relative` in the profile directory of the running test binary
/// (`target/<profile>/deps/<test>` -> `target/<profile>/<relative>`), where `cargo test`
/// puts the binaries and examples of the workspace.
fn built_binary(relative: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join(relative))
        .expect("test binary lives in target/<profile>/deps");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// A running `status-server` process, killed on drop.
pub struct StatusServer {
    child: Child,
    _config_dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// Where `/metrics` and `/healthz` are served (the config asks for port 0).
    pub metrics_addr: Option<SocketAddr>,
    /// Every log line arrives here (stderr, read by a thread).
    log_lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub log: Vec<String>,
}

impl StatusServer {
    pub async fn start(config: &TestConfig) -> StatusServer {
        Self::start_with_config_text(&config.to_toml()).await
    }

    /// Starts the binary and waits for its "listening on" line.
    pub async fn start_with_config_text(text: &str) -> StatusServer {
        let (dir, path) = write_config(text);
        let mut child = Command::new(server_binary())
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "debug")
            .env_remove("STATUS_REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning status-server");
        let stderr = child.stderr.take().expect("stderr was piped");
        let (tx, log_lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = StatusServer {
            child,
            _config_dir: dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: None,
            log_lines,
            log: Vec::new(),
        };
        let line = server.wait_for_log("listening on").await;
        server.addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        // Logged before "listening on" when the metrics listener is on.
        server.metrics_addr = server
            .log
            .iter()
            .find_map(|l| l.split("metrics and health on http://").nth(1))
            .and_then(|addr| addr.trim().parse().ok());
        server
    }

    /// `GET path` on the metrics listener: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.metrics_addr.expect("the metrics listener is on");
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

    /// Waits until a log line containing `needle` appears; returns it.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        self.wait_for_nth_log(1, |line| line.contains(needle)).await
    }

    /// Waits until `n` log lines match `matches`; returns the n-th.
    pub async fn wait_for_nth_log(&mut self, n: usize, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let (mut found, mut checked) = (0, 0);
        loop {
            // Only lines not checked yet: the log can grow to many thousands.
            for line in &self.log[checked..] {
                if matches(line) {
                    found += 1;
                    if found == n {
                        return line.clone();
                    }
                }
            }
            checked = self.log.len();
            match tokio::time::timeout_at(deadline.into(), self.log_lines.recv()).await {
                Ok(Some(line)) => self.log.push(line),
                Ok(None) => panic!(
                    "status-server exited before the log line awaited; log:\n{}",
                    self.log.join("\n")
                ),
                Err(_) => panic!(
                    "the log line awaited did not come within {WAIT:?}; log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Every log line the process wrote until it exited (call after `wait_exit`).
    pub async fn drain_log(&mut self) -> &[String] {
        while let Ok(Some(line)) = tokio::time::timeout(WAIT, self.log_lines.recv()).await {
            self.log.push(line);
        }
        &self.log
    }

    /// A connected channel to the gRPC port, for any client.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("a valid URI")
            .connect()
            .await
            .expect("connecting to status-server")
    }

    pub async fn client(&self) -> StatusServiceClient<Channel> {
        StatusServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connecting to status-server")
    }

    /// Replaces the config file the server was started with (for SIGHUP),
    /// atomically so the server never reads half a file.
    pub fn rewrite_config(&self, text: &str) {
        let path = self._config_dir.path().join("status.toml");
        let tmp = self._config_dir.path().join("status.toml.new");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .expect("rewriting the test config");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        eventually("status-server to exit", || {
            let status = self.child.try_wait().expect("waiting for status-server");
            async move { status }
        })
        .await
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `config_text` and returns (exit status, stderr) once
/// it exits, for configs that must be rejected at start.
pub fn run_to_exit(config_text: &str) -> (ExitStatus, String) {
    let (_dir, path) = write_config(config_text);
    run_binary_to_exit(&[std::ffi::OsStr::new("--config"), path.as_os_str()])
}

pub fn run_binary_to_exit(args: &[&std::ffi::OsStr]) -> (ExitStatus, String) {
    let mut child = Command::new(server_binary())
        .args(args)
        .env_remove("STATUS_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning status-server");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for status-server") {
            let mut stderr = String::new();
            use std::io::Read;
            let _ = child
                .stderr
                .take()
                .expect("stderr was piped")
                .read_to_string(&mut stderr);
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("status-server did not exit within {WAIT:?} for a config it must reject");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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

/// GetChatServer for `uid`: the port it placed the user on, or the status.
pub async fn placed_port(
    client: &mut StatusServiceClient<Channel>,
    uid: i32,
) -> Result<String, tonic::Status> {
    client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .map(|rsp| rsp.into_inner().port)
}

/// One GetChatServer call under load: its uid and what it got.
pub type LoadOutcome = (i32, Result<String, tonic::Status>);

/// Continuous GetChatServer load, for tests that change something while
/// calls are in flight (a reload, SIGTERM): `workers` tasks each call in a
/// loop, one fresh uid per call, until `stop`. Dropping it stops the workers.
pub struct LoadWorkers {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Vec<LoadOutcome>>>,
}

impl LoadWorkers {
    /// Starts the workers. Worker `w` calls uids `w * uids_per_worker + 1`
    /// upwards, so no two calls share a uid and a uid names one call (in
    /// the server's log too).
    pub fn start(
        client: StatusServiceClient<Channel>,
        workers: i32,
        uids_per_worker: i32,
    ) -> LoadWorkers {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let tasks = (0..workers)
            .map(|w| {
                let mut client = client.clone();
                let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
                let uids = w * uids_per_worker + 1..=(w + 1) * uids_per_worker;
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for uid in uids {
                        if stop.load(Ordering::Relaxed) {
                            return outcomes;
                        }
                        outcomes.push((uid, placed_port(&mut client, uid).await));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    panic!("a load worker ran out of its {uids_per_worker} uids");
                })
            })
            .collect();
        LoadWorkers { stop, done, tasks }
    }

    /// Calls completed so far, by all workers, whatever their outcome.
    pub fn calls_done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits (bounded by `WAIT`) until at least `n` calls completed; returns
    /// how many had then.
    pub async fn wait_for_calls(&self, n: usize) -> usize {
        eventually(&format!("{n} calls under load"), || {
            let count = self.calls_done();
            async move { (count >= n).then_some(count) }
        })
        .await
    }

    /// Stops the workers and returns every call they made, in no set order.
    pub async fn stop(mut self) -> Vec<LoadOutcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcomes = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            outcomes.extend(task.await.expect("load worker task"));
        }
        outcomes
    }
}

impl Drop for LoadWorkers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The stand-in ChatServer example (`examples/chatserver.rs`), which
/// `cargo test` of the root package builds next to the test binaries.
pub fn chatserver_binary() -> PathBuf {
    built_binary(&Path::new("examples").join("chatserver"))
}

/// A running stand-in ChatServer, killed on drop.
pub struct StandInChatServer {
    child: Child,
    pub port: u16,
}

impl StandInChatServer {
    /// Starts it on `port` and waits for its ready line.
    pub fn start(
        name: &str,
        port: u16,
        redis: &RedisServer,
        status_addr: Option<SocketAddr>,
    ) -> Self {
        let status =
            status_addr.map_or("http://127.0.0.1:1".to_string(), |a| format!("http://{a}"));
        let mut child = Command::new(chatserver_binary())
            .args(["--name", name, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--redis", &redis.url(), "--status", &status])
            .env_remove("STATUS_REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning the stand-in chatserver");
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_default();
        assert!(
            line.contains("listening on"),
            "stand-in chatserver {name} did not start: {line:?}"
        );
        StandInChatServer { child, port }
    }

    pub fn signal_term(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    pub fn wait(&mut self) -> Option<ExitStatus> {
        self.child.wait().ok()
    }
}

impl Drop for StandInChatServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The most common set-up: a Redis where "chat1" (port 8090) is alive with
/// count 0, and a server configured with just that chat server.
pub async fn server_with_one_chat_server() -> (RedisServer, StatusServer) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let server = StatusServer::start(&config).await;
    (redis, server)
}
