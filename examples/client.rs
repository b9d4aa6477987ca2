//! A tiny demo client of the StatusServer, for the README.
//!
//! ```text
//! cargo run --example client -- [--addr http://127.0.0.1:50052] get-server --uid 1
//! cargo run --example client -- login --uid 1 --token <token>
//! cargo run --example client -- connect --uid 1 [--hold]
//! ```
//!
//! - `get-server` calls GetChatServer and prints `error=0 host=... port=... token=...`
//!   (printing the whole token is the point of the demo).
//! - `login` calls Login and prints `error=... uid=... token=...`.
//! - `connect` runs the whole user flow: GetChatServer, a TCP connection to the chosen
//!   ChatServer, the line `<uid> <token>\n`, and prints the ChatServer's reply line
//!   (`OK` or `ERR ...`). With `--hold` it stays connected until Ctrl-C, so the
//!   ChatServer's load stays up (to watch the balancing).
//!
//! Exit status: 0 on success (`error=0`, or the reply `OK`); 1 otherwise. gRPC failures
//! print `error: <GRPC_CODE>: <message>` to stderr.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// Bound on connecting to a ChatServer and on waiting for its reply.
const CHAT_TIMEOUT: Duration = Duration::from_secs(10);

/// Demo client of the StatusServer. Exits 0 on success (error=0, or the ChatServer's reply
/// OK), 1 otherwise; gRPC failures print `error: <GRPC_CODE>: <message>` to stderr.
#[derive(Parser, Debug)]
#[command(name = "client", version)]
struct Cli {
    /// gRPC endpoint of the StatusServer.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50052")]
    addr: String,

    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Call GetChatServer; prints `error=... host=... port=... token=...`.
    GetServer {
        /// User id.
        #[arg(long, allow_negative_numbers = true)]
        uid: i32,
    },
    /// Call Login; prints `error=... uid=... token=...`.
    Login {
        /// User id.
        #[arg(long, allow_negative_numbers = true)]
        uid: i32,
        /// Token from get-server.
        #[arg(long)]
        token: String,
    },
    /// Whole user flow: GetChatServer, connect to the ChatServer, send `uid token`,
    /// print its reply line.
    Connect {
        /// User id.
        #[arg(long, allow_negative_numbers = true)]
        uid: i32,
        /// After `OK`, stay connected until Ctrl-C or until the ChatServer closes.
        #[arg(long)]
        hold: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(success)`, or `Err(message)` for failures to report on stderr.
async fn run(cli: Cli) -> Result<bool, String> {
    let mut client = status_client(&cli.addr)?;
    match cli.cmd {
        Cmd::GetServer { uid } => {
            let rsp = client
                .get_chat_server(GetChatServerReq { uid })
                .await
                .map_err(grpc_error)?
                .into_inner();
            println!(
                "error={} host={} port={} token={}",
                rsp.error, rsp.host, rsp.port, rsp.token
            );
            Ok(rsp.error == 0)
        }
        Cmd::Login { uid, token } => {
            let rsp = client
                .login(LoginReq { uid, token })
                .await
                .map_err(grpc_error)?
                .into_inner();
            println!("error={} uid={} token={}", rsp.error, rsp.uid, rsp.token);
            Ok(rsp.error == 0)
        }
        Cmd::Connect { uid, hold } => connect(&mut client, uid, hold).await,
    }
}

/// A lazily connecting client: an unreachable StatusServer shows up as the gRPC status
/// `UNAVAILABLE` of the call.
fn status_client(addr: &str) -> Result<StatusServiceClient<Channel>, String> {
    let endpoint = Endpoint::from_shared(addr.to_owned())
        .map_err(|e| format!("invalid --addr {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    Ok(StatusServiceClient::new(endpoint.connect_lazy()))
}

async fn connect(
    client: &mut StatusServiceClient<Channel>,
    uid: i32,
    hold: bool,
) -> Result<bool, String> {
    let rsp = client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .map_err(grpc_error)?
        .into_inner();
    if rsp.error != 0 {
        eprintln!("GetChatServer refused: error={}", rsp.error);
        return Ok(false);
    }
    let port: u16 = rsp
        .port
        .parse()
        .map_err(|_| format!("GetChatServer returned an invalid port {:?}", rsp.port))?;
    let target = format!("{}:{}", rsp.host, port);
    eprintln!("uid {uid}: assigned to {target}; connecting");

    let stream = tokio::time::timeout(CHAT_TIMEOUT, TcpStream::connect((rsp.host.as_str(), port)))
        .await
        .map_err(|_| format!("connect {target}: timed out"))?
        .map_err(|e| format!("connect {target}: {e}"))?;
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(format!("{uid} {}\n", rsp.token).as_bytes())
        .await
        .map_err(|e| format!("send to {target}: {e}"))?;

    let mut line = Vec::new();
    let mut limited = (&mut reader).take(1024);
    let read = limited.read_until(b'\n', &mut line);
    tokio::time::timeout(CHAT_TIMEOUT, read)
        .await
        .map_err(|_| format!("{target}: no reply within {}s", CHAT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("read from {target}: {e}"))?;
    if line.is_empty() {
        return Err(format!("{target} closed the connection without a reply"));
    }
    let reply = String::from_utf8_lossy(&line);
    let reply = reply.trim_end_matches(['\r', '\n']);
    println!("{reply}");
    if reply != "OK" {
        return Ok(false);
    }

    if hold {
        eprintln!("connected; press Ctrl-C to disconnect");
        let mut sink = tokio::io::sink();
        tokio::select! {
            res = tokio::signal::ctrl_c() => {
                res.map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
            }
            _ = tokio::io::copy(&mut reader, &mut sink) => {
                eprintln!("{target} closed the connection");
            }
        }
    }
    Ok(true)
}

/// `<GRPC_CODE>: <message>`, e.g. `UNAVAILABLE: no chat server alive`; a transport failure
/// gets its root cause appended (`tcp connect error: Connection refused ...`).
fn grpc_error(status: tonic::Status) -> String {
    let mut msg = format!("{}: {}", code_name(status.code()), status.message());
    let mut cause = std::error::Error::source(&status);
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

/// The canonical gRPC name of a code (`DEADLINE_EXCEEDED`), from tonic's `DeadlineExceeded`.
fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}
