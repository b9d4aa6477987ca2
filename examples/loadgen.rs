//! A closed-loop gRPC load generator for the benchmark suite (`bench/run`, issue 4).
//!
//! ```text
//! cargo run --release --example loadgen -- --addr http://127.0.0.1:50052 \
//!     --rpc get-chat-server --connections 8 --concurrency 64 --duration 10 [--warmup 2] \
//!     [--uid-base 1] [--rate 15000] [--threads 2]
//! ```
//!
//! It opens `--connections` separate HTTP/2 connections (one tonic `Channel` each) and keeps
//! `--concurrency` calls in flight on each, so `connections x concurrency` calls are in
//! flight in total. Unlike h2load, which counts any HTTP 200 as a success, it decodes every
//! reply: a call is `ok` only when the gRPC status is OK and the reply's `error` is 0
//! (GetChatServer must also return a host and a 36-character token).
//!
//! - `get-chat-server` cycles through the uids `uid-base .. uid-base+9999`.
//! - `login` sends `(uid, "bench-token-<uid>")` for the same uids; the caller must have
//!   stored `utoken_<uid> = bench-token-<uid>` in Redis first (bench/run does).
//! - `--rate R` caps the total at about R calls/s (for soak runs); default: as fast as the
//!   server answers.
//!
//! Calls completing during `--warmup` are not counted (except in `all_calls` / `all_ok`,
//! which count every call that returned, for comparing with server-side counters). After `--warmup + --duration` no new
//! call starts; calls still in flight then are not counted, and the process exits at the
//! latest 5 s later, whatever the server does (every call also has a 10 s deadline).
//!
//! Output: one JSON line on stdout, e.g.
//! `{"rpc":"login","requests":301234,"ok":301234,"business_errors":0,...,"rps":30123.4,
//! "p50_us":15000,"p99_us":30000,"p999_us":41000,"max_us":52000}` — latencies (from an HDR
//! histogram, 3 significant digits) cover every call that got a reply, business errors
//! included; calls that failed with a gRPC status are only counted in `grpc_errors`.
//! Exit status 1 when no connection could be opened, 2 for a bad command line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use tonic::transport::{Channel, Endpoint};

/// Number of distinct uids a run cycles through.
const UID_COUNT: i32 = 10_000;
/// Deadline of one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long calls still in flight at the end may take before the run is cut off.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// Highest latency the histogram tracks (larger values are clamped to it).
const MAX_TRACKED_US: u64 = 60_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Rpc {
    GetChatServer,
    Login,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::GetChatServer => "get-chat-server",
            Rpc::Login => "login",
        }
    }
}

/// Closed-loop gRPC load generator for message.StatusService; prints one JSON line.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
struct Cli {
    /// gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    addr: String,
    /// Which RPC to call.
    #[arg(long, value_enum)]
    rpc: Rpc,
    /// Separate HTTP/2 connections.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
    /// Calls in flight per connection.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// First uid; uids uid-base .. uid-base+9999 are used in turn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=(i32::MAX - UID_COUNT) as i64))]
    uid_base: i32,
    /// Total calls per second to aim at (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Client worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
}

/// What one worker saw in the measured window.
struct Tally {
    latency_us: Histogram<u64>,
    /// Every call that returned, warm-up and end included (what the server served).
    all_calls: u64,
    /// Those of `all_calls` that were ok.
    all_ok: u64,
    requests: u64,
    ok: u64,
    business_errors: BTreeMap<i32, u64>,
    grpc_errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
                .expect("static histogram bounds are valid"),
            all_calls: 0,
            all_ok: 0,
            requests: 0,
            ok: 0,
            business_errors: BTreeMap::new(),
            grpc_errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.all_calls += other.all_calls;
        self.all_ok += other.all_ok;
        self.requests += other.requests;
        self.ok += other.ok;
        for (code, n) in other.business_errors {
            *self.business_errors.entry(code).or_default() += n;
        }
        for (code, n) in other.grpc_errors {
            *self.grpc_errors.entry(code).or_default() += n;
        }
    }
}

/// The outcome of one call.
enum Outcome {
    Ok,
    Business(i32),
    Grpc(tonic::Code),
}

struct Worker {
    client: StatusServiceClient<Channel>,
    rpc: Rpc,
    uid_base: i32,
    /// Offset into the uid cycle, so workers do not all send the same uid.
    next: i32,
    measure_from: Instant,
    stop_at: Instant,
    /// Pause between calls of this worker when a rate is set.
    period: Option<Duration>,
}

impl Worker {
    async fn call(&mut self) -> Outcome {
        let uid = self.uid_base + self.next;
        self.next = (self.next + 1) % UID_COUNT;
        let result = match self.rpc {
            Rpc::GetChatServer => self
                .client
                .get_chat_server(GetChatServerReq { uid })
                .await
                .map(|rsp| {
                    let rsp = rsp.into_inner();
                    match rsp.error {
                        0 if !rsp.host.is_empty() && rsp.token.len() == 36 => Outcome::Ok,
                        // A "success" without a placement or token is broken: count it
                        // apart from real codes.
                        0 => Outcome::Business(-1),
                        code => Outcome::Business(code),
                    }
                }),
            Rpc::Login => {
                let token = format!("bench-token-{uid}");
                self.client.login(LoginReq { uid, token }).await.map(|rsp| {
                    match rsp.into_inner().error {
                        0 => Outcome::Ok,
                        code => Outcome::Business(code),
                    }
                })
            }
        };
        result.unwrap_or_else(|status| Outcome::Grpc(status.code()))
    }

    async fn run(mut self) -> Tally {
        let mut tally = Tally::new();
        let mut ticker = self.period.map(|period| {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ticker
        });
        loop {
            if let Some(ticker) = ticker.as_mut() {
                ticker.tick().await;
            }
            let started = Instant::now();
            if started >= self.stop_at {
                break;
            }
            let outcome = self.call().await;
            let done = Instant::now();
            tally.all_calls += 1;
            if matches!(outcome, Outcome::Ok) {
                tally.all_ok += 1;
            }
            if done < self.measure_from || done > self.stop_at {
                continue;
            }
            tally.requests += 1;
            match outcome {
                Outcome::Ok => tally.ok += 1,
                Outcome::Business(code) => *tally.business_errors.entry(code).or_default() += 1,
                Outcome::Grpc(code) => {
                    *tally.grpc_errors.entry(code_name(code)).or_default() += 1;
                    continue;
                }
            }
            let us = u64::try_from((done - started).as_micros()).unwrap_or(u64::MAX);
            tally
                .latency_us
                .saturating_record(us.clamp(1, MAX_TRACKED_US));
        }
        tally
    }
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

fn seconds(value: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{what} {value}: not a duration"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads as usize)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("loadgen: error: cannot build the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(&cli));
    // Calls cut off at the drain limit must not hold the process.
    runtime.shutdown_background();
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("loadgen: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<String, String> {
    let warmup = seconds(cli.warmup, "warmup")?;
    let duration = seconds(cli.duration, "duration")?;
    if duration.is_zero() {
        return Err("--duration must be > 0".to_owned());
    }
    if !(cli.rate >= 0.0 && cli.rate.is_finite()) {
        return Err(format!("--rate {}: must be >= 0", cli.rate));
    }
    let endpoint = Endpoint::from_shared(cli.addr.clone())
        .map_err(|e| format!("invalid --addr {}: {e}", cli.addr))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true);

    // One Channel per connection: each `connect` opens its own HTTP/2 connection.
    let mut channels = Vec::with_capacity(cli.connections as usize);
    for _ in 0..cli.connections {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", cli.addr))?;
        channels.push(channel);
    }

    let workers = cli.connections * cli.concurrency;
    let period = (cli.rate > 0.0).then(|| Duration::from_secs_f64(f64::from(workers) / cli.rate));
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let mut tasks = Vec::with_capacity(workers as usize);
    for (c, channel) in channels.iter().enumerate() {
        for m in 0..cli.concurrency {
            let index = c as u32 * cli.concurrency + m;
            let worker = Worker {
                client: StatusServiceClient::new(channel.clone()),
                rpc: cli.rpc,
                uid_base: cli.uid_base,
                next: ((u64::from(index) * 7919) % UID_COUNT as u64) as i32,
                measure_from,
                stop_at,
                period,
            };
            tasks.push(tokio::spawn(worker.run()));
        }
    }

    let mut total = Tally::new();
    let mut unfinished = 0u32;
    let drain_deadline = tokio::time::Instant::from_std(stop_at + DRAIN_LIMIT);
    for task in tasks {
        match tokio::time::timeout_at(drain_deadline, task).await {
            Ok(Ok(tally)) => total.merge(tally),
            Ok(Err(err)) => return Err(format!("a worker failed: {err}")),
            Err(_) => unfinished += 1,
        }
    }
    let measured = (Instant::now().min(stop_at) - measure_from).as_secs_f64();
    Ok(report(cli, &total, measured, unfinished))
}

fn report(cli: &Cli, total: &Tally, measured_secs: f64, unfinished: u32) -> String {
    let h = &total.latency_us;
    let (p50, p99, p999, max) = if h.is_empty() {
        (0, 0, 0, 0)
    } else {
        (
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
        )
    };
    let business: u64 = total.business_errors.values().sum();
    let grpc: u64 = total.grpc_errors.values().sum();
    let rps = if measured_secs > 0.0 {
        total.requests as f64 / measured_secs
    } else {
        0.0
    };
    let mut by_code = String::new();
    for (i, (code, n)) in total.business_errors.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(by_code, "{sep}\"{code}\":{n}");
    }
    let mut grpc_by_code = String::new();
    for (i, (code, n)) in total.grpc_errors.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(grpc_by_code, "{sep}\"{code}\":{n}");
    }
    format!(
        concat!(
            "{{\"rpc\":\"{}\",\"addr\":\"{}\",\"connections\":{},\"concurrency\":{},",
            "\"in_flight\":{},\"duration_s\":{:.3},\"requests\":{},\"ok\":{},",
            "\"business_errors\":{},\"business_errors_by_code\":{{{}}},",
            "\"grpc_errors\":{{{}}},\"grpc_errors_total\":{},\"unfinished_workers\":{},",
            "\"all_calls\":{},\"all_ok\":{},",
            "\"rps\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}"
        ),
        cli.rpc.name(),
        cli.addr.replace(['"', '\\'], ""),
        cli.connections,
        cli.concurrency,
        cli.connections * cli.concurrency,
        measured_secs,
        total.requests,
        total.ok,
        business,
        by_code,
        grpc_by_code,
        grpc,
        unfinished,
        total.all_calls,
        total.all_ok,
        rps,
        p50,
        p99,
        p999,
        max
    )
}
