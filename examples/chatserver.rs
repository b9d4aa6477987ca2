//! A stand-in ChatServer: it behaves toward the StatusServer exactly like a deployed
//! ChatServer, without any chat. Integration tests and the demo use it, and it documents
//! what a ChatServer has to do to work with the StatusServer.
//!
//! ```text
//! cargo run --example chatserver -- --name chatserver1 --listen 127.0.0.1:8090 \
//!     [--redis redis://127.0.0.1:6379 | --config config/status.toml] \
//!     [--status http://127.0.0.1:50052] [--login-count-key logincount]
//! ```
//!
//! `STATUS_REDIS_URL`, when set and non-empty, replaces `--redis` (as for the StatusServer).
//! With `--config`, it takes the `[redis]` section of that status-server config instead
//! (standalone, Sentinel or Cluster, `STATUS_REDIS_PASSWORD`, `login_count_key`), and talks
//! to Redis through the same `RedisLink` as the StatusServer.
//!
//! # How a user gets onto a ChatServer
//!
//! 1. The user (through the GateServer) calls the StatusServer's `GetChatServer(uid)` and
//!    gets `host`, `port` and a one-time `token`; the StatusServer stores the token in Redis.
//! 2. The user opens a TCP connection to `host:port` and sends one line:
//!    `<uid> <token>\n` (decimal uid, one space, the token; a trailing `\r` is tolerated).
//!    The line must arrive within 5 s and be at most 256 bytes, newline included; otherwise
//!    the connection is closed without a reply.
//! 3. The ChatServer checks the pair with the StatusServer's `Login(uid, token)` RPC and
//!    replies with one line:
//!    - `OK\n` when `error == 0`; the connection stays open (a real ChatServer would now
//!      speak its chat protocol; this one ignores whatever the peer sends) and counts as one
//!      connection until the peer closes it;
//!    - `ERR <code>\n` with the business code (`1010` token invalid, `1011` uid invalid),
//!      then closes;
//!    - `ERR unavailable <message>\n` when the RPC itself failed (StatusServer down, Redis
//!      down behind it, ...), then closes;
//!    - `ERR malformed\n` when the line is not `<uid> <token>` with a 32-bit uid, then closes.
//!
//! A connection that closes without sending anything is ignored and not counted: the
//! StatusServer's health probe is exactly such a TCP connect-and-close.
//!
//! # Redis writes (the only ones a ChatServer makes)
//!
//! All in the hash `--login-count-key` (default `logincount`), field `--name`:
//!
//! - at start, after the listener is bound: `HSET logincount <name> 0`;
//! - after every change of the number of open authenticated connections:
//!   `HSET logincount <name> <count>` (decimal). One task owns the count and makes every
//!   write, so writes never reorder and the last one always holds the current count. Changes
//!   that queue up while a write is in flight are folded into the next write; a failed write
//!   is retried every second until it succeeds;
//! - on SIGTERM or SIGINT: `HDEL logincount <name>`, then exit 0 (exit 1 if the HDEL failed).
//!
//! The StatusServer only reads this hash: a server whose field is missing is not alive.
//! The bind comes before the first `HSET` so that a second instance started by mistake on an
//! address in use fails without touching the field of the instance already running.
//!
//! # Output
//!
//! Once ready it prints `chatserver <name> listening on <addr>` to stdout (with the bound
//! address, so `--listen 127.0.0.1:0` works). Logs go to stderr (`RUST_LOG`, default
//! `info`); tokens are logged by a short prefix only (at most 8 characters and at most
//! half of the token). If Redis is unreachable at start (or hangs: 2 s bound) or the
//! address is in use, it prints `error: ...` to stderr and exits 1.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::{debug, info, warn};
use status_actors::redis_link::{LinkSettings, RedisLink, Topology};
use status_server::config::Settings;
use status_server::proto::LoginReq;
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::redact::redact_url;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::{Channel, Endpoint};

/// Longest accepted login line, newline included.
const MAX_LINE: u64 = 256;
/// Time a new connection has to send its login line.
const LINE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one Redis command (connect included).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Delay before retrying a failed count write.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Bound on the whole shutdown (a pending write plus the HDEL).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Stand-in ChatServer for the StatusServer: authenticates `uid token` lines with the
/// StatusServer's Login RPC and publishes its connection count in Redis.
#[derive(Parser, Debug)]
#[command(name = "chatserver", version)]
struct Args {
    /// Name of this ChatServer: its field in the load hash; must match `chat_servers.name`
    /// in the StatusServer's config.
    #[arg(long)]
    name: String,

    /// TCP address to accept users on, e.g. 127.0.0.1:8090 (port 0: any free port, printed
    /// at start).
    #[arg(long)]
    listen: SocketAddr,

    /// Redis URL; the environment variable STATUS_REDIS_URL, when set and non-empty,
    /// overrides it.
    #[arg(
        long,
        default_value = "redis://127.0.0.1:6379",
        conflicts_with = "config"
    )]
    redis: String,

    /// A status-server config file whose [redis] section (any mode) to use instead of
    /// --redis; its login_count_key replaces --login-count-key.
    #[arg(long, value_name = "PATH")]
    config: Option<std::path::PathBuf>,

    /// gRPC endpoint of the StatusServer.
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    status: String,

    /// Redis hash holding the connection count of every ChatServer.
    #[arg(long, default_value = "logincount")]
    login_count_key: String,
}

/// Messages to the task that owns the connection count.
enum CountMsg {
    /// An authenticated connection opened.
    Opened,
    /// An authenticated connection closed.
    Closed,
    /// Shut down: delete the field, answer whether that worked, and stop.
    Stop(oneshot::Sender<Result<(), String>>),
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    // rediss:// connections ask rustls for the process default.
    status_server::tls::install_default_provider();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The Redis link and load hash key the arguments ask for, and how to name Redis in messages.
fn redis_link(args: &Args) -> Result<(RedisLink, String, String), String> {
    let (link, key) = match &args.config {
        Some(path) => {
            let settings = Settings::load(path).map_err(|e| e.to_string())?;
            let link = LinkSettings {
                command_timeout: REDIS_TIMEOUT,
                ..settings.redis.link().map_err(|e| e.to_string())?
            };
            (link, settings.redis.login_count_key)
        }
        None => {
            let url = match std::env::var("STATUS_REDIS_URL") {
                Ok(url) if !url.is_empty() => url,
                _ => args.redis.clone(),
            };
            let link = LinkSettings {
                topology: Topology::Standalone { url },
                password: None,
                command_timeout: REDIS_TIMEOUT,
                tls: None,
            };
            (link, args.login_count_key.clone())
        }
    };
    let shown = match &link.topology {
        Topology::Standalone { url } => redact_url(url),
        other => format!("{} Redis", other.mode()),
    };
    let opened =
        RedisLink::open(&link).map_err(|e| format!("invalid Redis settings for {shown}: {e}"))?;
    Ok((opened, key, shown))
}

async fn run(args: Args) -> Result<(), String> {
    // Signal handlers first, so a signal right after the ready line is never missed.
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;

    let status = connect_status(&args.status)?;
    let (redis, login_count_key, shown_url) = redis_link(&args)?;

    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;

    hset(&redis, &login_count_key, &args.name, 0)
        .await
        .map_err(|e| {
            format!(
                "cannot write HSET {login_count_key} {} 0 to Redis at {shown_url}: {e}",
                args.name
            )
        })?;
    info!(
        "registered {} in hash {login_count_key} (count 0)",
        args.name
    );

    let (count_tx, count_rx) = mpsc::unbounded_channel();
    let counter = tokio::spawn(run_counter(
        redis,
        login_count_key.clone(),
        args.name.clone(),
        count_rx,
    ));

    {
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "chatserver {} listening on {local}", args.name)
            .and_then(|()| out.flush())
        {
            warn!("cannot write the ready line to stdout: {e}");
        }
    }
    info!(
        "chatserver {} listening on {local}, verifying logins with {}",
        args.name, args.status
    );

    let sig = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            res = listener.accept() => match res {
                Ok((stream, peer)) => {
                    tokio::spawn(handle_conn(stream, peer, status.clone(), count_tx.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    };
    drop(listener);
    info!(
        "{sig} received: removing {} from hash {}",
        args.name, args.login_count_key
    );

    let (done_tx, done_rx) = oneshot::channel();
    if count_tx.send(CountMsg::Stop(done_tx)).is_err() {
        // The counter only returns after a Stop, and main sends a single one.
        counter.abort();
        return Err("internal: the count task is gone; field not removed".to_owned());
    }
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, done_rx).await {
        Ok(Ok(Ok(()))) => {
            info!("removed; bye");
            Ok(())
        }
        Ok(Ok(Err(e))) => Err(format!(
            "cannot HDEL {} {} at {shown_url}: {e}",
            args.login_count_key, args.name
        )),
        Ok(Err(_)) => Err("internal: the count task stopped without answering".to_owned()),
        Err(_) => Err(format!(
            "HDEL {} {} timed out at {shown_url}",
            args.login_count_key, args.name
        )),
    }
}

/// A lazily connecting client for the StatusServer, so this server starts (and answers
/// `ERR unavailable ...`) while the StatusServer is down.
fn connect_status(url: &str) -> Result<StatusServiceClient<Channel>, String> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("invalid --status URL {url}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    Ok(StatusServiceClient::new(endpoint.connect_lazy()))
}

async fn hset(redis: &RedisLink, key: &str, name: &str, count: u64) -> Result<(), String> {
    let mut pipe = redis::pipe();
    pipe.cmd("HSET").arg(key).arg(name).arg(count);
    one_write(redis, &pipe).await
}

async fn hdel(redis: &RedisLink, key: &str, name: &str) -> Result<(), String> {
    let mut pipe = redis::pipe();
    pipe.cmd("HDEL").arg(key).arg(name);
    one_write(redis, &pipe).await
}

/// Sends a one-command write, bounded by `REDIS_TIMEOUT`.
async fn one_write(redis: &RedisLink, pipe: &redis::Pipeline) -> Result<(), String> {
    redis
        .query::<(i64,)>(pipe, REDIS_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Owns the connection count and makes every Redis write for it, one at a time, so the last
/// write always carries the current count.
async fn run_counter(
    redis: RedisLink,
    key: String,
    name: String,
    mut rx: mpsc::UnboundedReceiver<CountMsg>,
) {
    let mut count: u64 = 0;
    // The value Redis holds, as far as we know (main wrote 0 before spawning us).
    let mut written: Option<u64> = Some(0);
    loop {
        let dirty = written != Some(count);
        let first = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => Some(msg),
                // Every sender is gone: main has returned, nothing left to do.
                None => return,
            },
            // A write failed earlier: retry it even if nothing changes.
            _ = tokio::time::sleep(RETRY_DELAY), if dirty => None,
        };
        let mut stop = None;
        let mut next = first;
        loop {
            match next {
                Some(CountMsg::Opened) => count += 1,
                Some(CountMsg::Closed) => count = count.saturating_sub(1),
                Some(CountMsg::Stop(reply)) => stop = Some(reply),
                None => {}
            }
            if stop.is_some() {
                break;
            }
            // Fold everything already queued into one write.
            match rx.try_recv() {
                Ok(msg) => next = Some(msg),
                Err(_) => break,
            }
        }
        if let Some(reply) = stop {
            let res = hdel(&redis, &key, &name).await;
            if reply.send(res).is_err() {
                warn!("shutdown gave up waiting for HDEL");
            }
            return;
        }
        if written != Some(count) {
            match hset(&redis, &key, &name, count).await {
                Ok(()) => {
                    written = Some(count);
                    debug!("HSET {key} {name} {count}");
                }
                Err(e) => {
                    written = None;
                    warn!(
                        "HSET {key} {name} {count} failed: {e}; retrying in {}s",
                        RETRY_DELAY.as_secs()
                    );
                }
            }
        }
    }
}

/// Sends [`CountMsg::Closed`] when an authenticated connection ends, however it ends.
struct OpenConn(mpsc::UnboundedSender<CountMsg>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        // Fails only at shutdown, when the count no longer matters.
        let _ = self.0.send(CountMsg::Closed);
    }
}

async fn handle_conn(
    stream: TcpStream,
    peer: SocketAddr,
    mut status: StatusServiceClient<Channel>,
    count_tx: mpsc::UnboundedSender<CountMsg>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(64);
    let mut limited = (&mut reader).take(MAX_LINE);
    let read = limited.read_until(b'\n', &mut line);
    match tokio::time::timeout(LINE_TIMEOUT, read).await {
        Err(_) => {
            info!("{peer}: no login line within {LINE_TIMEOUT:?}; closing");
            return;
        }
        Ok(Err(e)) => {
            debug!("{peer}: read failed before the login line: {e}");
            return;
        }
        Ok(Ok(0)) => {
            // The StatusServer's health probe, or a client that gave up.
            debug!("{peer}: closed without a login line");
            return;
        }
        Ok(Ok(_)) => {}
    }
    if line.last() != Some(&b'\n') {
        info!(
            "{peer}: login line over {MAX_LINE} bytes or cut off ({} bytes read); closing",
            line.len()
        );
        return;
    }

    let Some((uid, token)) = parse_login_line(&line) else {
        // Never log the line itself: it may hold a token.
        info!("{peer}: malformed login line ({} bytes)", line.len());
        reply_and_close(reader, peer, "ERR malformed\n").await;
        return;
    };
    let shown = token_prefix(token);

    let req = LoginReq {
        uid,
        token: token.to_owned(),
    };
    let rsp = match status.login(req).await {
        Ok(rsp) => rsp.into_inner(),
        Err(st) => {
            let msg = one_line(&status_message(&st));
            warn!(
                "{peer}: Login(uid={uid}, token={shown}) failed: {:?}: {msg}",
                st.code()
            );
            reply_and_close(reader, peer, &format!("ERR unavailable {msg}\n")).await;
            return;
        }
    };
    if rsp.error != 0 {
        info!(
            "{peer}: Login(uid={uid}, token={shown}) refused: error {}",
            rsp.error
        );
        reply_and_close(reader, peer, &format!("ERR {}\n", rsp.error)).await;
        return;
    }

    if let Err(e) = reader.get_mut().write_all(b"OK\n").await {
        info!("{peer}: uid {uid} authenticated but the peer is gone: {e}");
        return;
    }
    if count_tx.send(CountMsg::Opened).is_err() {
        // Shutting down: the field is being removed, do not count.
        return;
    }
    let _open = OpenConn(count_tx);
    info!("{peer}: uid {uid} logged in (token {shown})");

    // Hold the connection until the peer closes it; whatever it sends is ignored.
    match tokio::io::copy(&mut reader, &mut tokio::io::sink()).await {
        Ok(_) => info!("{peer}: uid {uid} disconnected"),
        Err(e) => info!("{peer}: uid {uid} connection lost: {e}"),
    }
}

/// Parses `<uid> <token>\n` (any ASCII whitespace between and around the two words, so a
/// trailing `\r` is fine). `None` unless it is exactly a 32-bit decimal uid and one token.
fn parse_login_line(line: &[u8]) -> Option<(i32, &str)> {
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_ascii_whitespace();
    let uid = words.next()?.parse::<i32>().ok()?;
    let token = words.next()?;
    if words.next().is_some() {
        return None;
    }
    Some((uid, token))
}

async fn reply_and_close(mut reader: BufReader<TcpStream>, peer: SocketAddr, reply: &str) {
    let stream = reader.get_mut();
    if let Err(e) = stream.write_all(reply.as_bytes()).await {
        debug!("{peer}: cannot send the reply: {e}");
        return;
    }
    if let Err(e) = stream.shutdown().await {
        debug!("{peer}: shutdown failed: {e}");
    }
}

/// A prefix of a token for logs: at most 8 characters and at most half of it, so not even
/// a short (bogus) token is ever logged whole.
fn token_prefix(token: &str) -> String {
    let len = token.chars().count();
    let mut shown: String = token.chars().take((len / 2).min(8)).collect();
    shown.push('…');
    shown
}

/// The message of a failed RPC, with the root cause of a transport failure appended
/// (`tcp connect error: Connection refused ...`).
fn status_message(status: &tonic::Status) -> String {
    let mut msg = status.message().to_owned();
    let mut cause = std::error::Error::source(status);
    // Only the root cause: the layers between repeat the message.
    let mut root = None;
    while let Some(err) = cause {
        root = Some(err.to_string());
        cause = err.source();
    }
    if let Some(root) = root
        && !msg.contains(&root)
    {
        msg.push_str(": ");
        msg.push_str(&root);
    }
    msg
}

/// Keeps a reply on one line.
fn one_line(msg: &str) -> String {
    msg.replace(['\r', '\n'], " ")
}
