//! Baseline servers for the benchmark suite (`bench/run`): the same
//! `message.StatusService` as status-server, written the plain way — tonic
//! handlers that talk to Redis directly, no actors, no balancing.
//!
//! ```text
//! cargo run --release --example baseline -- --listen 127.0.0.1:0 --redis redis://127.0.0.1:6379
//! cargo run --release --example baseline -- --listen 127.0.0.1:0 --no-redis
//! ```
//!
//! - **(a) `--redis URL`: the "plain tonic + Redis" ceiling.** GetChatServer mints a UUID v4
//!   token and does exactly one `SET utoken_<uid> <token> EX 86400` from the handler, on a
//!   clone of one multiplexed `redis::aio::ConnectionManager` (many commands in flight, no
//!   lock), then replies `127.0.0.1` / `8090` / token. Login does exactly one
//!   `GET utoken_<uid>` and compares in constant time. Error codes, input checks and the
//!   Redis deadline (1 s, failures become gRPC `UNAVAILABLE`) are those of docs/contract.md §3, so
//!   it does the same work per call as status-server minus the actors and the balancing.
//!   `--redis-cluster URL,...` does the same on a Redis Cluster (the crate's async
//!   `ClusterConnection`), so status-server's cluster mode has a baseline on the same nodes.
//! - **(b) `--no-redis`: the gRPC ceiling.** The same replies with no Redis at all: the
//!   token is minted but not stored, and Login accepts any token that passes the input
//!   checks (uid > 0, token 1-128 bytes).
//!
//! Both run a multi-threaded tokio runtime (one worker per core), accept with TCP_NODELAY
//! and refuse requests over 64 KiB, like status-server. Once listening it prints
//! `baseline listening on <addr>` to stdout (so `--listen 127.0.0.1:0` works); SIGTERM or
//! SIGINT stops it gracefully (exit 0).
//!
//! `--tls-cert PEM --tls-key PEM` makes either speak TLS only (`bench/run --tls`), with the
//! rustls config status-server builds for `[server.tls]` (`status_server::tls`: ring, ALPN
//! h2), so that TLS costs both sides the same. As in status-server, each handshake runs in
//! a task of its own (one slow client does not hold the others at the door) and one that
//! fails or takes over 10 s closes that connection.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use status_server::config::TlsFiles;
use status_server::proto::status_service_server::{StatusService, StatusServiceServer};
use status_server::proto::{GetChatServerReq, GetChatServerRsp, LoginReq, LoginRsp};
use status_server::tls::{Port, TlsAcceptor};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tonic::{Request, Response, Status};

/// Largest request accepted, as in status-server.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Token lifetime (the default `token_ttl_secs`).
const TOKEN_TTL_SECS: u64 = 86_400;
/// Deadline of a Redis command (the default `command_timeout_ms`).
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest token Login looks up (docs/contract.md §3).
const MAX_TOKEN_BYTES: usize = 128;
/// The fixed placement every GetChatServer returns.
const CHAT_HOST: &str = "127.0.0.1";
const CHAT_PORT: &str = "8090";
/// Longest a client may take to finish its TLS handshake (as status-server).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for tonic to take them.
const READY_QUEUE: usize = 64;

const SUCCESS: i32 = 0;
const TOKEN_INVALID: i32 = 1010;
const UID_INVALID: i32 = 1011;

/// Baseline StatusService for benchmarks: (a) with --redis, (b) with --no-redis.
#[derive(Parser, Debug)]
#[command(name = "baseline", version)]
struct Cli {
    /// Address to listen on (`IP:port`; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:50060")]
    listen: SocketAddr,
    /// Baseline (a): store and check tokens in this Redis.
    #[arg(long, value_name = "URL", required_unless_present_any = ["no_redis", "redis_cluster"])]
    redis: Option<String>,
    /// Baseline (a) on a Redis Cluster found from these seed nodes (comma-separated
    /// URLs): each command on the redis crate's async `ClusterConnection`, as
    /// status-server's cluster mode does.
    #[arg(
        long,
        value_name = "URL,...",
        value_delimiter = ',',
        conflicts_with = "redis"
    )]
    redis_cluster: Option<Vec<String>>,
    /// Baseline (b): no Redis at all.
    #[arg(long, conflicts_with_all = ["redis", "redis_cluster"])]
    no_redis: bool,
    /// Slots of the Redis client's command queue (redis crate default: 50).
    #[arg(long, value_name = "N")]
    pipeline_buffer_size: Option<usize>,
    /// Speak TLS only, with this PEM certificate chain (the server's own first).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// A TLS connection as tonic takes it: tonic implements [`Connected`] for rustls streams
/// only with its own TLS features, which this workspace leaves off.
struct TlsConnection(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Handshakes every connection `incoming` accepts, each in a task of its own, and yields
/// the ones that finish.
fn tls_incoming(
    mut incoming: TcpIncoming,
    tls: TlsAcceptor,
) -> impl futures_util::Stream<Item = io::Result<TlsConnection>> {
    let (ready, mut handshaken) = mpsc::channel(READY_QUEUE);
    tokio::spawn(async move {
        while let Some(accepted) = incoming.next().await {
            let stream = match accepted {
                Ok(stream) => stream,
                Err(err) => {
                    // Handed on: tonic logs accept errors and goes on.
                    if ready.send(Err(err)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let acceptor = tls.current(Port::Grpc);
            let ready = ready.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(session)) => {
                        let _ = ready.send(Ok(TlsConnection(session))).await;
                    }
                    Ok(Err(err)) => eprintln!("baseline: TLS handshake failed: {err}"),
                    Err(_) => eprintln!("baseline: TLS handshake timed out"),
                }
            });
        }
    });
    futures_util::stream::poll_fn(move |cx| handshaken.poll_recv(cx))
}

#[derive(Clone)]
struct Baseline {
    /// `None` for baseline (b).
    redis: Option<Conn>,
}

/// The one connection every handler clones: to a Redis, or to a Cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Conn::Single(conn) => cmd.query_async(&mut conn.clone()).await,
            Conn::Cluster(conn) => cmd.query_async(&mut conn.clone()).await,
        }
    }
}

fn token_key(uid: i32) -> String {
    format!("utoken_{uid}")
}

fn redis_error(err: redis::RedisError) -> Status {
    Status::unavailable(format!("redis command failed: {err}"))
}

/// Equal length and bytes, without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[tonic::async_trait]
impl StatusService for Baseline {
    async fn get_chat_server(
        &self,
        request: Request<GetChatServerReq>,
    ) -> Result<Response<GetChatServerRsp>, Status> {
        let uid = request.into_inner().uid;
        if uid <= 0 {
            return Ok(Response::new(GetChatServerRsp {
                error: UID_INVALID,
                ..GetChatServerRsp::default()
            }));
        }
        let token = uuid::Uuid::new_v4().to_string();
        if let Some(redis) = &self.redis {
            let mut set = redis::cmd("SET");
            set.arg(token_key(uid))
                .arg(&token)
                .arg("EX")
                .arg(TOKEN_TTL_SECS);
            redis.query::<()>(&set).await.map_err(redis_error)?;
        }
        Ok(Response::new(GetChatServerRsp {
            error: SUCCESS,
            host: CHAT_HOST.to_owned(),
            port: CHAT_PORT.to_owned(),
            token,
        }))
    }

    async fn login(&self, request: Request<LoginReq>) -> Result<Response<LoginRsp>, Status> {
        let LoginReq { uid, token } = request.into_inner();
        let error = if uid <= 0 {
            UID_INVALID
        } else if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            TOKEN_INVALID
        } else if let Some(redis) = &self.redis {
            let mut get = redis::cmd("GET");
            get.arg(token_key(uid));
            let stored: Option<Vec<u8>> = redis.query(&get).await.map_err(redis_error)?;
            match stored {
                None => UID_INVALID,
                Some(stored) if constant_time_eq(&stored, token.as_bytes()) => SUCCESS,
                Some(_) => TOKEN_INVALID,
            }
        } else {
            SUCCESS
        };
        let reply = if error == SUCCESS {
            LoginRsp { error, uid, token }
        } else {
            LoginRsp {
                error,
                ..LoginRsp::default()
            }
        };
        Ok(Response::new(reply))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("baseline: error: cannot build the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("baseline: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let redis = match &cli.redis {
        Some(url) => {
            let client =
                redis::Client::open(url.as_str()).map_err(|e| format!("redis url {url}: {e}"))?;
            let mut config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT))
                .set_number_of_retries(0);
            if let Some(size) = cli.pipeline_buffer_size {
                config = config.set_pipeline_buffer_size(size);
            }
            let conn = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| format!("cannot connect to redis {url}: {e}"))?;
            Some(Conn::Single(conn))
        }
        None => match &cli.redis_cluster {
            Some(nodes) => {
                let client = redis::cluster::ClusterClient::builder(nodes.clone())
                    .connection_timeout(REDIS_TIMEOUT)
                    .response_timeout(REDIS_TIMEOUT)
                    .build()
                    .map_err(|e| format!("redis cluster {nodes:?}: {e}"))?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| format!("cannot connect to the cluster {nodes:?}: {e}"))?;
                Some(Conn::Cluster(conn))
            }
            None => None,
        },
    };

    let tls = match (cli.tls_cert, cli.tls_key) {
        (Some(cert), Some(key)) => Some(
            TlsAcceptor::load(&TlsFiles {
                cert,
                key,
                client_ca: None,
            })
            .map_err(|e| e.to_string())?,
        ),
        // clap's `requires` makes them come together.
        _ => None,
    };

    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("signals: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("signals: {e}"))?;

    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    let mode = if redis.is_some() { "a" } else { "b" };
    println!("baseline listening on {local}");
    let _ = std::io::stdout().flush();
    let over = if tls.is_some() { "TLS" } else { "plaintext" };
    eprintln!("baseline ({mode}) listening on {local} ({over})");

    let service =
        StatusServiceServer::new(Baseline { redis }).max_decoding_message_size(MAX_REQUEST_BYTES);
    let server = tonic::transport::Server::builder().add_service(service);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
    };
    match tls {
        None => {
            server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Some(tls) => {
            server
                .serve_with_incoming_shutdown(tls_incoming(incoming, tls), shutdown)
                .await
        }
    }
    .map_err(|e| format!("gRPC server failed: {e}"))
}
