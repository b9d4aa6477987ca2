//! A private `redis-server` that speaks only TLS (docs/contract.md §6): `--port 0
//! --tls-port P`, with a certificate for 127.0.0.1 from a CA of its own and, when asked,
//! `tls-auth-clients yes` (only clients whose certificate that CA signed get in). The PEM
//! files live in its temporary folder, where a config can name them; the harness's own
//! connections present the client certificate, so they get in either way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::{ClientTlsConfig, TlsCertificates};

use crate::redis_server::command_text;
use crate::{TestCa, WAIT, free_port};

/// How often the server is started again on another port when its port was taken between
/// picking and binding it.
const START_ATTEMPTS: usize = 5;

/// A TLS-only `redis-server`, killed on drop.
pub struct TlsRedisServer {
    child: Child,
    /// The TLS port (there is no plaintext one).
    pub port: u16,
    dir: tempfile::TempDir,
    client: redis::Client,
}

impl TlsRedisServer {
    /// Starts it with `tls-auth-clients yes` when `client_certs` (a client without a
    /// certificate from its CA is refused), `no` otherwise.
    pub async fn start(client_certs: bool) -> TlsRedisServer {
        // The harness's own client asks rustls for the process default.
        status_server::tls::install_default_provider();
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let ca = TestCa::new("redis test CA");
        let node = ca.redis_node();
        let client_leaf = ca.client("status-server");
        for (name, pem) in [
            ("ca.crt", ca.pem()),
            ("redis.crt", node.cert_pem),
            ("redis.key", node.key_pem),
            ("client.crt", client_leaf.cert_pem.clone()),
            ("client.key", client_leaf.key_pem.clone()),
        ] {
            std::fs::write(dir.path().join(name), pem).expect("writing a test PEM file");
        }
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let client = redis::Client::build_with_tls(
                format!("rediss://127.0.0.1:{port}"),
                TlsCertificates {
                    client_tls: Some(ClientTlsConfig {
                        client_cert: client_leaf.cert_pem.clone().into_bytes(),
                        client_key: client_leaf.key_pem.clone().into_bytes(),
                    }),
                    root_cert: Some(ca.pem().into_bytes()),
                },
            )
            .expect("a rediss:// URL and PEM the test made");
            // A new log for each attempt: the last one's tells whether its port was taken.
            let _ = std::fs::remove_file(dir.path().join("redis.log"));
            let mut child = spawn(&dir, port, client_certs);
            if wait_until_up(&mut child, &client, &dir, port).await {
                return TlsRedisServer {
                    child,
                    port,
                    dir,
                    client,
                };
            }
        }
        panic!("redis-server found its TLS port taken {START_ATTEMPTS} times in a row")
    }

    /// `rediss://127.0.0.1:P`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// A PEM file of its folder: `ca.crt` (the CA that signed both certificates),
    /// `redis.crt`/`redis.key` (the server's), `client.crt`/`client.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `[redis]` lines that reach it: its URL and `tls_ca`, and with `client_cert` the
    /// client certificate too.
    pub fn redis_location(&self, client_cert: bool) -> String {
        let mut lines = format!(
            "url = \"{}\"\ntls_ca = {:?}",
            self.url(),
            self.path("ca.crt")
        );
        if client_cert {
            lines.push_str(&format!(
                "\ntls_cert = {:?}\ntls_key = {:?}",
                self.path("client.crt"),
                self.path("client.key")
            ));
        }
        lines
    }

    /// A connection of the harness's own (over TLS, with the client certificate).
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|err| panic!("connecting to the TLS Redis on {}: {err}", self.port))
    }

    /// Runs `cmd` and returns the reply; panics naming the command if it fails.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        cmd.query_async(&mut self.conn().await)
            .await
            .unwrap_or_else(|err| panic!("TLS Redis: {}: {err}", command_text(cmd)))
    }

    /// Sets the load hash field of each `(name, value)`.
    pub async fn set_loads(&self, fields: &[(&str, &str)]) {
        for (name, value) in fields {
            self.query::<()>(redis::cmd("HSET").arg("logincount").arg(name).arg(value))
                .await;
        }
    }

    /// The token stored for `uid` (`GET utoken_<uid>`), if any.
    pub async fn stored_token(&self, uid: i32) -> Option<String> {
        self.query(redis::cmd("GET").arg(format!("utoken_{uid}")))
            .await
    }
}

/// Waits until the server on `port` answers `PING` through `client`; false if it exited
/// first because its port was taken (the log in `dir` says so).
async fn wait_until_up(
    child: &mut Child,
    client: &redis::Client,
    dir: &tempfile::TempDir,
    port: u16,
) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default();
            assert!(
                log.contains("Address already in use"),
                "the TLS redis-server exited ({status}); its log: {log}"
            );
            return false;
        }
        let ping = tokio::time::timeout(Duration::from_secs(1), async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await;
        if matches!(ping, Ok(Ok(_))) {
            return true;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("timed out waiting for the TLS redis-server on port {port} to answer PING");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `ca.crt` and a Redis node's `redis.crt`/`redis.key` into `dir`, for the nodes of
/// a topology whose nodes speak TLS.
pub(crate) fn write_node_files(dir: &Path) {
    let ca = TestCa::new("redis test CA");
    let node = ca.redis_node();
    for (name, pem) in [
        ("ca.crt", ca.pem()),
        ("redis.crt", node.cert_pem),
        ("redis.key", node.key_pem),
    ] {
        std::fs::write(dir.join(name), pem).expect("writing a test PEM file");
    }
}

/// The arguments that give a node TLS port `tls_port` with the files of
/// [`write_node_files`]; a client needs no certificate.
pub(crate) fn node_args(dir: &Path, tls_port: u16) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    [
        "--tls-port".to_string(),
        tls_port.to_string(),
        "--tls-cert-file".to_string(),
        file("redis.crt"),
        "--tls-key-file".to_string(),
        file("redis.key"),
        "--tls-ca-cert-file".to_string(),
        file("ca.crt"),
        "--tls-auth-clients".to_string(),
        "no".to_string(),
    ]
    .to_vec()
}

/// `redis-server` on TLS port `port` only, with the files of `dir`, logging to
/// `dir/redis.log`.
fn spawn(dir: &tempfile::TempDir, port: u16, client_certs: bool) -> Child {
    let file = |name: &str| dir.path().join(name).display().to_string();
    Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--tls-cert-file", &file("redis.crt")])
        .args(["--tls-key-file", &file("redis.key")])
        .args(["--tls-ca-cert-file", &file("ca.crt")])
        .args([
            "--tls-auth-clients",
            if client_certs { "yes" } else { "no" },
        ])
        .args(["--logfile", &file("redis.log")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (.ci/run installs it)")
}

impl Drop for TlsRedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
