//! `statusctl`: the operator's command line for status-server.
//!
//! ```text
//! statusctl [--addr URL] [--admin-addr URL] [--json] [--timeout SECS] [--compress ENC]
//!           [--tls-ca PEM [--tls-cert PEM --tls-key PEM]] <command>
//!   get-server --uid N            GetChatServer: place a user, print host, port, token
//!   get-servers --uids 1,2,3      Batch/GetChatServers: place several users in one call
//!   login --uid N --token T       Login: check a user's token
//!   connect --uid N [--hold]      a user's whole login flow: place it, connect to that
//!                                 ChatServer, which checks the token with Login
//!   servers                       the chat servers as the balancer sees them (Admin/ListServers)
//!   health                        grpc.health.v1 Check of "" and message.StatusService
//!   reload                        re-read the config file, like SIGHUP (Admin/Reload)
//!   drain NAME / undrain NAME     place no new users on a chat server, or again (Admin/SetDraining)
//!   revoke --uid N                delete a user's login token (Admin/RevokeToken)
//!   bench --rpc R --concurrency N --duration SECS [--connections C] [--uid-base U] ...
//!                                 load the server; print requests/s and latency percentiles
//!   chaos-load --instances URL,URL [--duration SECS] [--rate R] ...
//!                                 GetChatServer + Login load over several instances; check
//!                                 that every token handed out still passes Login (bench/chaos)
//!   convert-config PATH.ini [--keep-password]
//!                                 the C++ server's INI file as the equivalent TOML, on stdout
//! ```
//!
//! `--addr` defaults to `http://127.0.0.1:50052`, the gRPC address of the shipped
//! `config/status.toml`; the Admin commands (`servers`, `reload`, `drain`, `undrain`,
//! `revoke`) call `--admin-addr`, `http://127.0.0.1:50053` by default: the Admin service is
//! served on `server.admin_listen` only (docs/contract.md §6). `--timeout` (default 5 s) bounds connecting and every call.
//! `--compress gzip` (or `deflate`, `zstd`) compresses every request and accepts replies
//! compressed so. An `https://` address speaks TLS, trusting the CA of `--tls-ca`;
//! `--tls-cert` and `--tls-key` present a client certificate (a server with mTLS).
//! Output is human-readable (`key: value` lines, tables) unless `--json`, which prints one
//! JSON document on a single line of stdout. Progress and errors go to stderr only.
//!
//! Exit status, for scripts:
//! - 0: success.
//! - 1: the server answered, but no: a business error (`error != 0`, e.g. uid 0 or a wrong
//!   token), a ChatServer refusing the login of `connect`, a health check not SERVING, a
//!   reload not applied, an `undrain` of a server whose config still drains it, a `revoke`
//!   of a uid with no token, a benchmark with business errors.
//! - 2: bad command line.
//! - 3: the server could not be reached, or a call failed with a gRPC status (UNAVAILABLE,
//!   DEADLINE_EXCEEDED, UNIMPLEMENTED, ...), or `bench --seed-redis` could not store its
//!   tokens, or `connect`'s ChatServer could not be reached or could not check the token.
//!
//! `convert-config` reaches no server: 0 converted, 1 the INI file is missing or bad.
//!
//! Every error is one line on stderr: `statusctl: error: <message>`.
//!
//! Modules: `target` (address, timeout, channels), `failure` (errors and exit codes),
//! `output` (tables, fields, JSON), one module per command (`calls`, `connect`, `servers`,
//! `health`, `reload`, `drain`, `revoke`, `bench`, `bench::chaos`, `convert_config`).

mod bench;
mod calls;
mod connect;
mod convert_config;
mod drain;
mod failure;
mod health;
mod output;
mod reload;
mod revoke;
mod servers;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use failure::{EXIT_USAGE, Failure, one_line};
use target::{Compress, Target, TlsFiles, parse_addr, parse_positive_secs};

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  the server answered, but no: a business error (error != 0), a ChatServer
     refusing the login (connect), a health check not SERVING, a reload not
     applied, an undrain while the config still drains, a revoke of a uid with
     no token, a benchmark with business errors; convert-config: the INI file
     is missing or bad
  2  bad command line
  3  the server (or connect's ChatServer) could not be reached, or a call failed
     with a gRPC status

Errors are one line on stderr: `statusctl: error: <message>`.";

/// Operator command line for status-server: call its RPCs, run a user's login flow, list
/// and drain the chat servers, revoke tokens, check health, reload the config, benchmark
/// it, and convert the C++ server's INI config.
#[derive(Parser, Debug)]
#[command(name = "statusctl", version, after_help = EXIT_CODES)]
#[command(long_about = "Operator command line for status-server: call its RPCs \
    (message.StatusService), run a user's whole login flow through a ChatServer, list the \
    chat servers as the balancer sees them, reload the config, drain chat servers and revoke \
    tokens (statusadmin.v1.Admin), check gRPC health (grpc.health.v1), benchmark it, and \
    convert the C++ StatusServer's INI config to TOML.\n\n\
    Output is human-readable unless --json, which prints one JSON document on one line of \
    stdout; errors and the bench progress bar go to stderr.")]
struct Cli {
    /// gRPC address of status-server (`host:port` means `http://host:port`).
    #[arg(long, global = true, value_name = "URL", default_value = "http://127.0.0.1:50052",
          value_parser = parse_addr)]
    addr: String,
    /// gRPC address of the Admin service (servers, reload, drain, undrain, revoke):
    /// status-server's `server.admin_listen`.
    #[arg(long, global = true, value_name = "URL", default_value = "http://127.0.0.1:50053",
          value_parser = parse_addr)]
    admin_addr: String,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds allowed for connecting and for each call.
    #[arg(long, global = true, value_name = "SECS", default_value = "5",
          value_parser = parse_positive_secs)]
    timeout: Duration,
    /// Compress every request with this encoding, and accept replies compressed with it
    /// (the server compresses replies as its server.compression says).
    #[arg(long, global = true, value_name = "ENCODING")]
    compress: Option<Compress>,
    /// PEM CA certificate the server's certificate must be signed by (https:// addresses).
    #[arg(long, global = true, value_name = "PATH")]
    tls_ca: Option<PathBuf>,
    /// PEM client certificate to present (a server with mTLS); with --tls-key.
    #[arg(long, global = true, value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, global = true, value_name = "PATH")]
    tls_key: Option<PathBuf>,

    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Place a user (GetChatServer): prints error, host, port and the new login token.
    #[command(
        after_help = "Exit status: 0 error=0; 1 business error (e.g. 1011 for \
        uid <= 0); 3 unreachable or gRPC error (UNAVAILABLE: no chat server alive, Redis down)."
    )]
    GetServer {
        /// User id.
        #[arg(long, allow_negative_numbers = true)]
        uid: i32,
    },
    /// Place several users in one call (statusbatch.v1.Batch/GetChatServers): prints
    /// uid, error, host, port and token per user.
    #[command(
        after_help = "One Redis round trip for the whole batch; at most 1000 uids, none \
        twice.\n\nExit status: 0 error=0 for every uid; 1 a business error for some uid \
        (1011 for uid <= 0); 3 unreachable or gRPC error (INVALID_ARGUMENT: too many or a \
        repeated uid; UNAVAILABLE: no chat server alive, Redis down; RESOURCE_EXHAUSTED: \
        the servers cannot take every user of the batch, none placed)."
    )]
    GetServers {
        /// User ids, comma-separated: `--uids 1,2,3`.
        #[arg(
            long,
            value_delimiter = ',',
            allow_negative_numbers = true,
            required = true
        )]
        uids: Vec<i32>,
    },
    /// Check a user's login token (Login): prints error, uid and token.
    #[command(
        after_help = "Exit status: 0 error=0 (the token matches); 1 business error \
        (1010 token invalid, 1011 uid invalid or no token stored); 3 unreachable or gRPC error."
    )]
    Login {
        /// User id.
        #[arg(long, allow_negative_numbers = true)]
        uid: i32,
        /// The token GetChatServer returned.
        #[arg(long)]
        token: String,
    },
    /// Run a user's whole login flow through its ChatServer; prints the ChatServer's reply.
    ///
    /// GetChatServer places the user; statusctl connects to that ChatServer and sends
    /// `<uid> <token>`; the ChatServer checks the token with Login and replies OK, or ERR ...
    #[command(
        after_help = "The token shows only as the prefix status-server logs. With \
        --hold the connection stays open after OK (it counts in the ChatServer's load) until \
        Ctrl-C.\n\nExit status: 0 OK (with --hold: then Ctrl-C); 1 business error from \
        GetChatServer, or the ChatServer refused the login (ERR 1010, ERR 1011); 3 \
        status-server or the ChatServer unreachable, a gRPC error, the ChatServer's Login \
        call failed (ERR unavailable), or it closed a held connection."
    )]
    Connect {
        /// User id.
        #[arg(long, allow_negative_numbers = true)]
        uid: i32,
        /// After OK, stay connected until Ctrl-C.
        #[arg(long)]
        hold: bool,
    },
    /// List the chat servers as the balancer sees them (Admin/ListServers).
    #[command(
        after_help = "Columns: POLLED is the count read by the last poll (- when \
        the field is missing or invalid, see LOAD-FIELD); ASSIGNED the tokens stored since \
        that poll; IN-FLIGHT placements whose token write is pending; REACHABLE the last TCP \
        probe (off when probing is off); WEIGHT its share under the weighted strategy; \
        MAX-CONN its max_connections (- for no limit); DRAINING who drains it (no, config, \
        admin, config+admin). The header names the strategy.\n\nExit status: 0 listed; 3 \
        unreachable or gRPC error."
    )]
    Servers,
    /// Check gRPC health (grpc.health.v1.Health/Check); prints SERVING or NOT_SERVING per service.
    #[command(
        after_help = "Exit status: 0 every service SERVING; 1 some service not \
        SERVING (e.g. Redis down, or draining); 3 unreachable or gRPC error (NOT_FOUND for \
        an unknown service)."
    )]
    Health {
        /// Service to check (repeatable) [default: "" (the whole server) and message.StatusService].
        #[arg(long = "service", value_name = "NAME")]
        services: Vec<String>,
    },
    /// Re-read the server's config file, as SIGHUP does (Admin/Reload).
    #[command(
        after_help = "Prints applied, message and the changed keys that need a \
        restart (server.listen, server.metrics_listen).\n\nExit status: 0 applied; 1 not \
        applied (the file did not validate; the running config is kept); 3 unreachable or \
        gRPC error."
    )]
    Reload,
    /// Place no new users on a chat server (Admin/SetDraining); Login is unaffected.
    #[command(
        after_help = "The drain lasts across reloads until `undrain` or a restart; a \
        drain set in the config (draining = true) is separate. Prints the server's drain \
        state.\n\nExit status: 0 draining; 3 unreachable or gRPC error (NOT_FOUND for a name \
        that is not configured)."
    )]
    Drain {
        /// The chat server's name, as configured.
        name: String,
    },
    /// Undo `drain`: place users on the chat server again (Admin/SetDraining).
    #[command(
        after_help = "Exit status: 0 no longer draining; 1 still draining because its \
        config says draining = true (edit the config and reload); 3 unreachable or gRPC \
        error (NOT_FOUND for a name that is not configured)."
    )]
    Undrain {
        /// The chat server's name, as configured.
        name: String,
    },
    /// Delete a user's login token (Admin/RevokeToken): Login with it then answers 1011.
    #[command(
        after_help = "Exit status: 0 a token was stored and is deleted; 1 no token was \
        stored for the uid; 3 unreachable or gRPC error (INVALID_ARGUMENT for uid <= 0, \
        UNAVAILABLE when Redis fails)."
    )]
    Revoke {
        /// User id.
        #[arg(long, allow_negative_numbers = true)]
        uid: i32,
    },
    /// Load the server with concurrent calls for a while; prints requests/s, outcomes and
    /// latency percentiles (p50/p90/p99/p99.9/max).
    #[command(
        after_help = "`--rpc login` sends the token bench-token-<uid> for uids \
        uid-base..uid-base+9999: store them first with --seed-redis URL, or yourself \
        (`redis-cli SET utoken_<uid> bench-token-<uid>` for each uid).\n\nA progress bar \
        is drawn on stderr when it is a terminal.\n\nExit status: 0 every counted call ok; \
        1 some business errors; 3 unreachable, some gRPC errors, or no call completed."
    )]
    Bench(bench::BenchArgs),
    /// GetChatServer + Login load over several instances while something breaks them;
    /// checks at the end that every token handed out passes Login (used by bench/chaos).
    #[command(
        after_help = "Every call uses a fresh uid. Counts gRPC outcomes per RPC; OK, \
        UNAVAILABLE and RESOURCE_EXHAUSTED are expected, anything else breaks an invariant, \
        as does a token rejected by the final check.\n\nExit status: 0 every invariant held; \
        1 one broke (the report names it)."
    )]
    ChaosLoad(bench::chaos::ChaosArgs),
    /// Print the C++ StatusServer's INI file as the equivalent TOML config, commented.
    ///
    /// Reads PATH as `status-server --config PATH.ini` would (the same checks, the same
    /// error line) and prints the TOML that gives the same settings. Reaches no server.
    #[command(
        after_help = "The Redis password ([Redis] Passwd) is left out of the output, so the \
        TOML file holds no secret: give it to status-server as STATUS_REDIS_URL, as a comment \
        in the output shows. --keep-password writes it into redis.url instead.\n\nExit \
        status: 0 converted; 1 the INI file is missing or bad; 2 bad command line (--json does \
        not apply)."
    )]
    ConvertConfig {
        /// The INI file (the C++ StatusServer's config.ini).
        #[arg(value_name = "PATH.ini")]
        path: PathBuf,
        /// Write [Redis] Passwd into redis.url (percent-encoded) rather than leaving it out.
        #[arg(long)]
        keep_password: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    if let Cmd::Bench(args) = &cli.cmd
        && let Err(msg) = args.connections()
    {
        return usage_error(Cli::command().error(ErrorKind::ArgumentConflict, msg));
    }
    if let Cmd::ConvertConfig { .. } = &cli.cmd
        && cli.json
    {
        return usage_error(Cli::command().error(
            ErrorKind::ArgumentConflict,
            "convert-config prints TOML; --json does not apply",
        ));
    }
    // `bench --seed-redis rediss://..` asks rustls for the process default.
    status_server::tls::install_default_provider();
    let runtime = match &cli.cmd {
        Cmd::Bench(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads as usize)
            .enable_all()
            .build(),
        Cmd::ChaosLoad(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("statusctl: error: cannot start the tokio runtime: {err}");
            return ExitCode::from(failure::EXIT_UNREACHABLE);
        }
    };
    let result = runtime.block_on(run(cli));
    // Connection tasks and abandoned calls must not hold the process.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("statusctl: error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let compress = cli.compress.map(Into::into);
    let tls = TlsFiles {
        ca: cli.tls_ca,
        cert: cli.tls_cert,
        key: cli.tls_key,
    }
    .client_config()?;
    let admin = Target {
        addr: cli.admin_addr,
        timeout: cli.timeout,
        compress,
        tls: tls.clone(),
    };
    let target = Target {
        addr: cli.addr,
        timeout: cli.timeout,
        compress,
        tls,
    };
    let json = cli.json;
    match cli.cmd {
        Cmd::GetServer { uid } => calls::get_server(&target, json, uid).await,
        Cmd::GetServers { uids } => calls::get_servers(&target, json, uids).await,
        Cmd::Login { uid, token } => calls::login(&target, json, uid, token).await,
        Cmd::Connect { uid, hold } => connect::run(&target, json, uid, hold).await,
        Cmd::Servers => servers::run(&admin, json).await,
        Cmd::Health { services } => health::run(&target, json, &services).await,
        Cmd::Reload => reload::run(&admin, json).await,
        Cmd::Drain { name } => drain::run(&admin, json, name, true).await,
        Cmd::Undrain { name } => drain::run(&admin, json, name, false).await,
        Cmd::Revoke { uid } => revoke::run(&admin, json, uid).await,
        Cmd::Bench(args) => bench::run(&target, json, &args).await,
        Cmd::ChaosLoad(args) => bench::chaos::run(target.timeout, json, &args).await,
        Cmd::ConvertConfig {
            path,
            keep_password,
        } => convert_config::run(&path, keep_password),
    }
}

/// Help and version go to stdout (exit 0), as clap prints them; a usage error becomes one
/// `statusctl: error: ...` line on stderr and exit 2.
fn usage_error(err: clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
        _ => {
            eprintln!(
                "statusctl: error: {}",
                usage_message(&err.render().to_string())
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// clap's rendered error (`error: ...`, tips, `Usage: ...`) folded into one line.
fn usage_message(rendered: &str) -> String {
    let parts: Vec<String> = rendered
        .split("\n\n")
        .map(str::trim)
        .filter(|part| {
            !part.is_empty() && !part.starts_with("Usage:") && !part.starts_with("For more")
        })
        .map(|part| one_line(part.strip_prefix("error:").unwrap_or(part)))
        .collect();
    format!("{} (see --help)", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_fold_into_one_line() {
        let err = Cli::try_parse_from(["statusctl", "get-server"]).unwrap_err();
        let line = usage_message(&err.render().to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--uid"), "{line}");
        assert!(!line.contains("Usage"), "{line}");
    }

    #[test]
    fn defaults_match_the_shipped_config() {
        let cli = Cli::try_parse_from(["statusctl", "servers"]).unwrap();
        assert_eq!(cli.addr, "http://127.0.0.1:50052");
        assert_eq!(cli.admin_addr, "http://127.0.0.1:50053");
        assert_eq!(cli.timeout, Duration::from_secs(5));
        let shipped = include_str!("../../config/status.toml");
        assert!(shipped.contains("listen = \"0.0.0.0:50052\""));
        assert!(shipped.contains("admin_listen = \"127.0.0.1:50053\""));
    }
}
