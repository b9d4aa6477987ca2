//! `statusctl` as operators and scripts use it: the binary run as a process against a real
//! `status-server` and `redis-server`, checking its text and `--json` output and its exit
//! codes (0 success, 1 business error / not serving / not applied, 2 usage, 3 unreachable
//! or gRPC error). `convert-config` runs against no server: its output is parsed back with
//! the server's own config parser.
//!
//! The server runs in-process (`testkit::TestServer`); the stand-in ChatServer is found in
//! the target directory, where `cargo test --workspace` builds it. This file holds the
//! harness (running statusctl, the usual server); one module per group of commands.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use status_server::config::Settings;
use status_server::contract::LOGGED_TOKEN_PREFIX;
use testkit::*;

/// What one run of statusctl gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout parsed as the one JSON document `--json` promises.
    fn json(&self) -> Value {
        assert_eq!(
            self.stdout.lines().count(),
            1,
            "--json prints one line: {:?}",
            self.stdout
        );
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// `key: value` lines of stdout.
    fn fields(&self) -> HashMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// The failure line: exactly one line on stderr, `statusctl: error: ...`.
    fn error_line(&self) -> &str {
        let line = self.stderr.trim_end();
        assert!(
            !line.contains('\n') && line.starts_with("statusctl: error: "),
            "stderr must be one `statusctl: error:` line: {:?}",
            self.stderr
        );
        line
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout: {:?} stderr: {:?}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs statusctl with `args` and waits (bounded) for it to exit.
fn statusctl(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statusctl"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning statusctl");
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        let mut pipe = pipe.expect("piped");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for statusctl") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("statusctl {args:?} did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let [stdout, stderr] = readers.map(|r| r.join().expect("pipe reader"));
    Run {
        code: status
            .code()
            .expect("statusctl exited, not killed by a signal"),
        stdout,
        stderr,
    }
}

/// `statusctl --addr http://<server> --admin-addr http://<its Admin port> <args>`.
fn ctl(server: &TestServer, args: &[&str]) -> Run {
    let addr = format!("http://{}", server.addr);
    let admin = format!(
        "http://{}",
        server.admin_addr.expect("the Admin port is on")
    );
    let mut all = vec!["--addr", &addr, "--admin-addr", &admin, "--timeout", "5"];
    all.extend_from_slice(args);
    statusctl(&all)
}

/// Redis and a status-server with one alive chat server `chatserver1` on `port`.
async fn one_alive_server(port: u16) -> (RedisServer, TestServer) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chatserver1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chatserver1", port)]);
    let server = TestServer::start(&config).await;
    (redis, server)
}

mod admin;
mod bench;
mod calls;
mod connect;
mod convert_config;
mod tls;
