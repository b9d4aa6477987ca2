//! status-server run inside the test process: the library's own
//! `Server::start` + `serve` on listeners bound to port 0, on the runtime
//! `main` runs it on (`status_server::runtime::block_on`), in a thread of its
//! own, driven by control events instead of signals. Faster than a process, and a failure shows a
//! backtrace.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use status_server::admin_proto::admin_client::AdminClient;
use status_server::config::Settings;
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::reload::ReloadOutcome;
use status_server::server::{Control, Exit, Listeners, Server, StartError};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use crate::{TestConfig, WAIT, write_config};

/// A running in-process server; stopped (at once) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `statusadmin.v1.Admin` is served, when on.
    pub admin_addr: Option<SocketAddr>,
    /// Where `/metrics` and `/healthz` are served, when on.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the HTTP/JSON port is, when on.
    pub http_addr: Option<SocketAddr>,
    control: mpsc::Sender<Control>,
    exited: Option<std::sync::mpsc::Receiver<Result<Exit, StartError>>>,
    config_dir: tempfile::TempDir,
    config_path: PathBuf,
}

impl TestServer {
    pub async fn start(config: &TestConfig) -> TestServer {
        Self::start_with_config_text(&config.to_toml()).await
    }

    /// Validates `text` as the binary would, binds its addresses (port 0:
    /// free ports) and starts serving; calls made right away wait in the
    /// listen backlog until the first readings are in.
    pub async fn start_with_config_text(text: &str) -> TestServer {
        // As the binary's main does: rediss:// links ask rustls for the process default.
        status_server::tls::install_default_provider();
        let (config_dir, config_path) = write_config(text);
        let settings = Settings::load(&config_path).expect("the test config is valid");
        let listeners = Listeners::bind(&settings).expect("binding the test server's ports");
        let addr = listeners
            .grpc
            .local_addr()
            .expect("a bound listener's address");
        let admin_addr = listeners
            .admin
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener's address"));
        let metrics_addr = listeners
            .metrics
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener's address"));
        let http_addr = listeners
            .http
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener's address"));
        let (control, events) = mpsc::channel(4);
        let (exit_tx, exited) = std::sync::mpsc::channel();
        let path = config_path.clone();
        std::thread::Builder::new()
            .name(format!("status-server {addr}"))
            .spawn(move || {
                let threads = settings.server.threads;
                let exit = status_server::runtime::block_on(threads, async move {
                    let server = Server::start(path, settings).await?;
                    server.serve(listeners, events).await
                });
                let _ = exit_tx.send(exit);
            })
            .expect("spawning the test server's thread");
        TestServer {
            addr,
            admin_addr,
            metrics_addr,
            http_addr,
            control,
            exited: Some(exited),
            config_dir,
            config_path,
        }
    }

    /// A connected channel to the gRPC port, for any client.
    pub async fn channel(&self) -> Channel {
        crate::channel_to(self.addr).await
    }

    pub async fn client(&self) -> StatusServiceClient<Channel> {
        crate::client_of(self.addr).await
    }

    /// A `statusadmin.v1.Admin` client of the Admin port.
    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(crate::channel_to(self.admin_addr.expect("the Admin port is on")).await)
    }

    /// `GET path` on the metrics listener: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        crate::http_get(self.metrics_addr.expect("the metrics listener is on"), path).await
    }

    /// `POST path` with `body` on the HTTP/JSON port, on a connection of its own.
    pub async fn http_post(&self, path: &str, body: &str) -> crate::HttpReply {
        crate::http_post(
            self.http_addr.expect("the HTTP/JSON port is on"),
            path,
            body,
        )
        .await
    }

    /// Replaces the config file the server was started with (for a
    /// reload), atomically so the server never reads half a file.
    pub fn rewrite_config(&self, text: &str) {
        let tmp = self.config_dir.path().join("status.toml.new");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.config_path))
            .expect("rewriting the test config");
    }

    /// The config file the server was started with (and re-reads on a reload).
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Reloads the config file (what SIGHUP does) and returns the outcome.
    pub async fn reload(&self) -> ReloadOutcome {
        let (reply, outcome) = oneshot::channel();
        self.control
            .send(Control::Reload(Some(reply)))
            .await
            .expect("the test server is running");
        tokio::time::timeout(WAIT, outcome)
            .await
            .expect("the reload finished in time")
            .expect("the server answered the reload")
    }

    /// Asks for a graceful stop (what SIGTERM does) and waits for the end.
    pub async fn stop(mut self) -> Result<Exit, StartError> {
        let _ = self.control.send(Control::Stop("test stop")).await;
        let exited = self.exited.take().expect("stopped only once");
        tokio::task::spawn_blocking(move || exited.recv_timeout(WAIT))
            .await
            .expect("waiting for the test server's thread")
            .expect("the test server stopped in time")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A stop, then a second one that cuts the drain short: clients the
        // test still holds must not keep the server's thread alive.
        let _ = self.control.try_send(Control::Stop("test end"));
        let _ = self.control.try_send(Control::Stop("test end"));
        if let Some(exited) = self.exited.take() {
            let _ = exited.recv_timeout(Duration::from_secs(5));
        }
    }
}
