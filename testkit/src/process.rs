//! status-server as a child process, for what only a process shows:
//! signals, exit codes, stderr and log lines.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use status_server::proto::status_service_client::StatusServiceClient;
use tonic::transport::Channel;

use crate::{TestConfig, WAIT, eventually, write_config_as};

/// The `status-server` binary. Cargo builds it before the root package's
/// integration tests run (every `cargo test` of the workspace does), next to
/// the `deps/` folder that holds the test executables.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    // target/<profile>/deps/<test> -> target/<profile>/status-server
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("status-server"))
        .expect("test binary lives in target/<profile>/deps");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// A running `status-server` process, killed on drop.
pub struct ServerProcess {
    child: Child,
    _config_dir: tempfile::TempDir,
    config_path: PathBuf,
    pub addr: SocketAddr,
    /// Where `statusadmin.v1.Admin` is served, when on.
    pub admin_addr: Option<SocketAddr>,
    /// Where `/metrics` and `/healthz` are served (the config asks for port 0).
    pub metrics_addr: Option<SocketAddr>,
    /// Every log line arrives here (stderr, read by a thread).
    log_lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Stops (`true`) and resumes (`false`) the thread that reads stderr.
    stderr_stalled: std::sync::mpsc::Sender<bool>,
    pub log: Vec<String>,
}

impl ServerProcess {
    pub async fn start(config: &TestConfig) -> ServerProcess {
        Self::start_with_config_text(&config.to_toml()).await
    }

    /// Starts the binary and waits for its "listening on" line.
    pub async fn start_with_config_text(text: &str) -> ServerProcess {
        Self::start_with_config_file("status.toml", text).await
    }

    /// [`ServerProcess::start_with_config_text`] with the config in a file
    /// named `file_name`, whose extension decides how the server reads it
    /// (`.ini`: the C++ server's INI file).
    pub async fn start_with_config_file(file_name: &str, text: &str) -> ServerProcess {
        Self::spawn(file_name, text, &[], None).await
    }

    /// [`ServerProcess::start_with_config_text`] under an open-file limit (`RLIMIT_NOFILE`)
    /// of `soft`, and `hard`: set by the shell that then execs the binary, so the process
    /// keeps its pid.
    pub async fn start_with_open_files(text: &str, soft: u64, hard: u64) -> ServerProcess {
        Self::spawn("status.toml", text, &[], Some((soft, hard))).await
    }

    /// [`ServerProcess::start_with_config_file`] with the environment variables `env` set
    /// (`STATUS_REDIS_URL` and `STATUS_REDIS_PASSWORD` are unset unless named there).
    pub async fn start_with_env(
        file_name: &str,
        text: &str,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        Self::spawn(file_name, text, env, None).await
    }

    async fn spawn(
        file_name: &str,
        text: &str,
        env: &[(&str, &str)],
        open_files: Option<(u64, u64)>,
    ) -> ServerProcess {
        let (dir, path) = write_config_as(file_name, text);
        let mut command = match open_files {
            None => Command::new(server_binary()),
            Some((soft, hard)) => {
                let mut shell = Command::new("sh");
                // Soft first: a hard limit below the running soft one is refused.
                shell
                    .arg("-c")
                    .arg(format!(
                        "ulimit -S -n {soft} && ulimit -H -n {hard} && exec \"$0\" \"$@\""
                    ))
                    .arg(server_binary());
                shell
            }
        };
        let mut child = command
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "debug")
            .env_remove("STATUS_REDIS_URL")
            .env_remove("STATUS_REDIS_PASSWORD")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning status-server");
        let stderr = child.stderr.take().expect("stderr was piped");
        let (tx, log_lines) = tokio::sync::mpsc::unbounded_channel();
        let (stderr_stalled, stall) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
                // Stalled: read nothing until resumed (or the test ends).
                while let Ok(true) = stall.try_recv() {
                    while let Ok(true) = stall.recv() {}
                }
            }
        });
        let mut server = ServerProcess {
            child,
            _config_dir: dir,
            config_path: path,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: None,
            metrics_addr: None,
            log_lines,
            stderr_stalled,
            log: Vec::new(),
        };
        let line = server.wait_for_log("listening on").await;
        server.addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        // Both logged before "listening on" when their listener is on.
        server.admin_addr = server
            .log
            .iter()
            .find_map(|l| l.split("Admin API on ").nth(1))
            .and_then(|addr| addr.trim().parse().ok());
        server.metrics_addr = server
            .log
            .iter()
            .find_map(|l| l.split("metrics and health on http://").nth(1))
            .and_then(|addr| addr.trim().parse().ok());
        server
    }

    /// `GET path` on the metrics listener: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        crate::http_get(self.metrics_addr.expect("the metrics listener is on"), path).await
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

    /// Stops reading the process's stderr (after at most one more line), as a stalled log
    /// collector would: once the pipe's buffer is full, the process's writes to stderr block.
    pub fn stall_stderr(&self) {
        let _ = self.stderr_stalled.send(true);
    }

    /// Reads stderr again after [`ServerProcess::stall_stderr`].
    pub fn resume_stderr(&self) {
        let _ = self.stderr_stalled.send(false);
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
        crate::channel_to(self.addr).await
    }

    pub async fn client(&self) -> StatusServiceClient<Channel> {
        crate::client_of(self.addr).await
    }

    /// Replaces the config file the server was started with (for SIGHUP),
    /// atomically so the server never reads half a file.
    pub fn rewrite_config(&self, text: &str) {
        let tmp = self._config_dir.path().join("config.new");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.config_path))
            .expect("rewriting the test config");
    }

    /// The config file the server was started with (and re-reads on SIGHUP).
    pub fn config_path(&self) -> &Path {
        &self.config_path
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `config_text` and returns (exit status, stderr) once
/// it exits, for configs that must be rejected at start.
pub fn run_to_exit(config_text: &str) -> (ExitStatus, String) {
    run_to_exit_as("status.toml", config_text)
}

/// [`run_to_exit`] with the config in a file named `file_name` (`.ini`: the
/// C++ server's INI file).
pub fn run_to_exit_as(file_name: &str, config_text: &str) -> (ExitStatus, String) {
    let (_dir, path) = write_config_as(file_name, config_text);
    run_binary_to_exit(&[std::ffi::OsStr::new("--config"), path.as_os_str()])
}

pub fn run_binary_to_exit(args: &[&std::ffi::OsStr]) -> (ExitStatus, String) {
    let mut child = Command::new(server_binary())
        .args(args)
        .env_remove("STATUS_REDIS_URL")
        .env_remove("STATUS_REDIS_PASSWORD")
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
