//! The stand-in ChatServer (`examples/chatserver.rs`) as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;

use crate::{RedisServer, WAIT};

/// The stand-in ChatServer example (`examples/chatserver.rs`), which
/// `cargo test` builds next to the test binaries.
pub fn chatserver_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    // target/<profile>/deps/<test> -> target/<profile>/examples/chatserver
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("examples").join("chatserver"))
        .expect("test binary lives in target/<profile>/deps");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
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
