//! `status-server --config PATH`: the StatusServer process. PATH is the TOML
//! config, or the C++ StatusServer's INI file when it ends in `.ini`.
//!
//! Exit codes: 0 after a graceful shutdown; 1 when the config is bad, the
//! server cannot start, or shutdown had to cut requests off; 2 for a bad
//! command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use status_server::config::Settings;
use status_server::contract::server_exit;
use status_server::log_writer::{self, LogFlush};
use status_server::server::{Control, Exit, Listeners, Server, StartError};
use tokio::sync::mpsc;

mod signals;

/// mimalloc rather than the system allocator: a call allocates about 50 times (h2 frames,
/// headers, the reply), and glibc's malloc and free were a tenth of its instructions
/// (README, design notes). Only this binary: the library and the benchmark baselines keep
/// the allocator their own binaries choose.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The config keys, for `--help` (docs/contract.md §4-5 and the README say more).
const CONFIG_KEYS: &str = "\
Config keys (default):
  [server]    listen (\"0.0.0.0:50052\"), admin_listen (\"127.0.0.1:50053\"; \"\" = off; Admin API),
              metrics_listen (\"127.0.0.1:9464\"; \"\" = off),
              http_listen (\"\" = off; HTTP/JSON), shutdown_grace_ms (10000),
              compression (\"none\" | \"gzip\" | \"zstd\"; replies; restart to change),
              max_connections (10000; gRPC connections open at once on listen; admin_listen
              holds 64; restart to change; at start the open-file limit is raised
              to hold them, or they are lowered to fit it, with a warning),
              threads (1: connections, actors and Redis on one thread; N > 1: connections
              on N workers beside the actors' thread; restart to change)
  [server.tls] cert, key (PEM; relative to the config file), client_ca (mTLS; optional);
              the table on: TLS only; files re-read on SIGHUP; on/off needs a restart
  [redis]     mode (\"standalone\" | \"sentinel\" | \"cluster\"),
              url (standalone: \"redis://127.0.0.1:6379\"),
              sentinels, master_name (sentinel), nodes (cluster),
              min_replicas_ack (0 = no WAIT), token_ttl_secs (86400; 0 = never expire),
              command_timeout_ms (1000), token_prefix (\"utoken_\"),
              login_count_key (\"logincount\"),
              tls_ca, tls_cert + tls_key (\"\"; PEM, relative to the config file; only with
              rediss:// URLs: CA instead of the system roots, client certificate; re-read
              on SIGHUP)
  [balancer]  strategy (\"least_loaded\" | \"weighted\" | \"p2c\"), poll_interval_ms (1000),
              probe_interval_ms (2000; 0 = probing off)
  [[chat_servers]]  name, host, port (required; at least one), weight (1),
              max_connections (0 = no limit), draining (false)";

use signals::Signals;

/// StatusServer of the chat system: places each user on a ChatServer (the
/// least-loaded one that is alive, not draining and below its
/// max_connections, unless balancer.strategy picks "weighted" or "p2c") and
/// issues the login token the ChatServer checks.
///
/// Stop it with SIGTERM or SIGINT: it stops accepting, finishes accepted
/// requests (up to server.shutdown_grace_ms), and exits 0. SIGHUP re-reads
/// the config file and applies it without dropping requests (a bad file
/// keeps the running config; listen addresses, server.compression and turning
/// [server.tls] on or off need a restart; TLS files are re-read). Logs go to stderr;
/// set RUST_LOG (e.g. RUST_LOG=debug) for more. STATUS_REDIS_URL, when set
/// and non-empty, replaces redis.url (in an INI file: [Redis] Host, Port and
/// Passwd); STATUS_REDIS_PASSWORD, when set and non-empty, is the password of
/// every Redis data-node connection (with the user a URL names, if any).
#[derive(Parser)]
#[command(version, after_help = CONFIG_KEYS)]
struct Cli {
    /// Config file: TOML (see the README for every key), or the C++
    /// StatusServer's INI file when PATH ends in `.ini` ([StatusServer],
    /// [Redis], [chatservers] and one section per chat server; every other
    /// setting takes its default; see the README, "Moving over from the C++
    /// server").
    #[arg(long, value_name = "PATH", default_value = "config/status.toml")]
    config: PathBuf,

    /// Log line format on stderr: `text` for people, `json` (one object per
    /// line: timestamp, level, target, message) for log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Sets up the log: to stderr through the log writer's thread (see
/// `status_server::log_writer`), so that a stalled stderr never stalls calls. Returns what
/// waits for the queued lines at exit.
fn init_logging(format: LogFormat) -> Option<LogFlush> {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    let flush = log_writer::spawn().map(|(queue, flush)| {
        builder.target(env_logger::Target::Pipe(Box::new(queue)));
        flush
    });
    if let LogFormat::Json = format {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "timestamp": buf.timestamp_micros().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
    flush
}

/// Why the process could not run.
enum RunError {
    Signals(std::io::Error),
    Start(StartError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Signals(err) => write!(f, "cannot install signal handlers: {err}"),
            RunError::Start(err) => err.fmt(f),
        }
    }
}

/// Starts, binds the ports once the first readings are in, serves until a
/// stop signal. Runs inside the actix System.
async fn run(config: PathBuf, settings: Settings) -> Result<Exit, RunError> {
    // First, so that a signal during a slow start waits instead of killing us.
    let signals = Signals::install().map_err(RunError::Signals)?;
    let (control, events) = mpsc::channel::<Control>(4);
    tokio::spawn(signals.forward(control));
    let server = Server::start(config, settings)
        .await
        .map_err(RunError::Start)?;
    let listeners = match Listeners::bind(server.settings()) {
        Ok(listeners) => listeners,
        Err(err) => {
            server.stop().await;
            return Err(RunError::Start(err));
        }
    };
    server
        .serve(listeners, events)
        .await
        .map_err(RunError::Start)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = init_logging(cli.log_format);
    let outcome = run_main(cli);
    // The log's last lines first, then the error: in the order they happened.
    if let Some(log) = log {
        log.flush(LOG_FLUSH_DEADLINE);
    }
    match outcome {
        Ok(code) => code,
        Err(err) => {
            // Straight to stderr: visible whatever RUST_LOG says.
            eprintln!("status-server: error: {err}");
            ExitCode::from(server_exit::FAILURE)
        }
    }
}

/// Longest the exit waits for queued log lines to reach stderr.
const LOG_FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// Loads the config and serves until stopped: the exit code, or why the server could not
/// run.
fn run_main(cli: Cli) -> Result<ExitCode, String> {
    // One crypto provider in the process, whoever asks rustls for the default.
    status_server::tls::install_default_provider();

    let settings = Settings::load(&cli.config).map_err(|err| err.to_string())?;
    let threads = settings.server.threads;
    match status_server::runtime::block_on(threads, run(cli.config, settings)) {
        Ok(Exit::Drained) => Ok(ExitCode::from(server_exit::DRAINED)),
        Ok(Exit::GraceExceeded | Exit::Forced) => Ok(ExitCode::from(server_exit::FAILURE)),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_command_line_exits_with_the_usage_code() {
        let err = Cli::try_parse_from(["status-server", "--no-such-flag"])
            .err()
            .expect("an unknown flag is a usage error");
        assert_eq!(err.exit_code(), i32::from(server_exit::USAGE));
    }
}
