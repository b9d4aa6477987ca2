//! `bench`: drives the server with `--concurrency` calls in flight for `--duration` seconds
//! and reports requests/s, outcomes and latency percentiles.
//!
//! - Closed loop: each of the `--concurrency` workers keeps one call in flight; workers
//!   share `--connections` HTTP/2 connections (default: one per 64 calls in flight), since
//!   one connection's streams are served by one server task.
//! - `get-chat-server` cycles through the uids `uid-base .. uid-base+9999`; a reply counts
//!   as ok only with `error = 0`, a host and a 36-character token.
//! - `login` sends `(uid, "bench-token-<uid>")` for the same uids; those tokens must be in
//!   Redis first: `--seed-redis URL` stores them with one MSET, or do it yourself
//!   (`SET utoken_<uid> bench-token-<uid>` for each uid). Use a `--uid-base` apart from the
//!   get-chat-server run's, which replaces the tokens of the uids it places.
//! - Calls completing during `--warmup` are not counted; at the end, calls still in flight
//!   are abandoned and not counted. Every call has the `--timeout` deadline. The JSON's
//!   `all_calls`, `all_ok` and `all_failures` (by kind) cover every call that returned,
//!   warm-up included, to compare with the server's own counts.
//! - `--rate R` caps the total at about R calls/s (soak runs, and latency at a fixed load).
//!
//! Exit status: 0 when every counted call was ok; 1 when some got a business error; 3 when
//! the server could not be reached, some call failed with a gRPC status, or no call
//! completed. The report is printed in every case but the first of those.

pub mod chaos;
mod progress;
mod report;
pub mod seed;
mod tally;
mod worker;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use status_server::proto::status_service_client::StatusServiceClient;

use crate::failure::Failure;
use crate::output;
use crate::target::{Target, parse_positive_secs, parse_secs};
use progress::Progress;
use report::{Report, Setup};
use tally::Tally;
use worker::{Live, Worker};

/// Number of distinct uids a run cycles through.
pub const UID_COUNT: i32 = 10_000;
/// Calls in flight per connection when `--connections` is not given.
const IN_FLIGHT_PER_CONNECTION: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Rpc {
    /// message.StatusService/GetChatServer
    GetChatServer,
    /// message.StatusService/Login (needs the bench tokens in Redis)
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

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which RPC to call.
    #[arg(long, value_enum, default_value_t = Rpc::GetChatServer)]
    pub rpc: Rpc,
    /// Calls in flight at any time (in total, over all connections).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Measured seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub duration: Duration,
    /// HTTP/2 connections the calls are spread over [default: one per 64 in flight].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: Option<u32>,
    /// Seconds of load before measuring starts.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs)]
    pub warmup: Duration,
    /// First uid; uids uid-base .. uid-base+9999 are used in turn.
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=i64::from(i32::MAX - UID_COUNT)))]
    pub uid_base: i32,
    /// Total calls per second to aim at (0: as fast as the server answers).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Client worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// First store `<token-prefix><uid> = bench-token-<uid>` for the run's uids in this
    /// Redis (one MSET, no expiry), so `--rpc login` succeeds.
    #[arg(long, value_name = "URL", value_parser = seed::parse_redis_url)]
    pub seed_redis: Option<String>,
    /// Key prefix of the tokens `--seed-redis` stores (the server's redis.token_prefix).
    #[arg(long, default_value = "utoken_", requires = "seed_redis")]
    pub token_prefix: String,
    /// No progress bar (it is only drawn when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

impl BenchArgs {
    /// The number of connections, or why the combination makes no sense.
    pub fn connections(&self) -> Result<u32, String> {
        match self.connections {
            Some(c) if c > self.concurrency => Err(format!(
                "--connections {c} is more than --concurrency {}: a connection would carry no call",
                self.concurrency
            )),
            Some(c) => Ok(c),
            None => Ok(self.concurrency.div_ceil(IN_FLIGHT_PER_CONNECTION)),
        }
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate >= 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!("{text:?} is not a rate >= 0")),
    }
}

pub async fn run(target: &Target, json: bool, args: &BenchArgs) -> Result<(), Failure> {
    let connections = args
        .connections()
        .expect("main checked --connections against --concurrency");
    let uids = args.uid_base..args.uid_base + UID_COUNT;
    let seeded_tokens = match &args.seed_redis {
        Some(url) => Some(seed::store_tokens(url, &args.token_prefix, uids, target.timeout).await?),
        None => None,
    };

    // One Channel per connection: each `connect` opens its own HTTP/2 connection.
    let endpoint = target.endpoint()?;
    let mut channels = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        channels.push(target.connect_endpoint(&endpoint).await?);
    }
    let tallies: Vec<Arc<Mutex<Tally>>> = channels
        .iter()
        .map(|_| Arc::new(Mutex::new(Tally::new())))
        .collect();

    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let live = show_progress.then(|| Arc::new(Live::default()));
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let stop_at = measure_from + args.duration;
    // With a rate, each worker calls once per `period`; their first calls are staggered.
    let period =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(f64::from(args.concurrency) / args.rate));

    let mut workers = tokio::task::JoinSet::new();
    for index in 0..args.concurrency {
        let connection = (index % connections) as usize;
        let pace = period.map(|period| {
            let offset = period.mul_f64(f64::from(index) / f64::from(args.concurrency));
            let mut pace =
                tokio::time::interval_at(tokio::time::Instant::from_std(start + offset), period);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            pace
        });
        let worker = Worker {
            client: crate::client!(target, StatusServiceClient, channels[connection].clone()),
            rpc: args.rpc,
            uid_base: args.uid_base,
            // A prime stride, so workers do not send the same uids at the same time.
            next: ((u64::from(index) * 7919) % UID_COUNT as u64) as i32,
            tally: Arc::clone(&tallies[connection]),
            live: live.clone(),
            measure_from,
            stop_at,
            pace,
        };
        workers.spawn(worker.run());
    }
    let progress = live.map(|live| Progress::start(live, start, measure_from, stop_at));

    tokio::time::sleep_until(tokio::time::Instant::from_std(stop_at)).await;
    // Calls still in flight would complete after `stop_at` and not count: abandon them.
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    if let Some(progress) = progress {
        progress.finish();
    }

    let mut total = Tally::new();
    for tally in &tallies {
        total.merge(&tally.lock().expect("workers are done"));
    }
    let report = Report::new(
        Setup {
            rpc: args.rpc.name(),
            addr: target.addr.clone(),
            connections,
            concurrency: args.concurrency,
            warmup_s: args.warmup.as_secs_f64(),
            duration_s: args.duration.as_secs_f64(),
            seeded_tokens,
        },
        &total,
    );
    if json {
        output::json(&report);
    } else {
        output::emit(&report.text());
    }

    if report.requests == 0 {
        Err(Failure::Unreachable(format!(
            "no call completed within {:.1}s",
            report.duration_s
        )))
    } else if report.grpc_errors_total > 0 {
        Err(Failure::Unreachable(format!(
            "{} of {} calls failed with a gRPC status",
            report.grpc_errors_total, report.requests
        )))
    } else if report.business_errors > 0 {
        Err(Failure::Refused(format!(
            "{} of {} calls got a business error",
            report.business_errors, report.requests
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Wrap::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .unwrap()
            .bench
    }

    #[test]
    fn connections_default_to_one_per_64_in_flight() {
        assert_eq!(parse(&[]).connections(), Ok(1));
        assert_eq!(parse(&["--concurrency", "64"]).connections(), Ok(1));
        assert_eq!(parse(&["--concurrency", "65"]).connections(), Ok(2));
        assert_eq!(parse(&["--concurrency", "512"]).connections(), Ok(8));
        assert_eq!(
            parse(&["--concurrency", "8", "--connections", "3"]).connections(),
            Ok(3)
        );
        assert!(
            parse(&["--concurrency", "2", "--connections", "3"])
                .connections()
                .is_err()
        );
    }

    #[test]
    fn rates_and_durations_are_checked() {
        assert!(Wrap::try_parse_from(["bench", "--rate", "-1"]).is_err());
        assert!(Wrap::try_parse_from(["bench", "--duration", "0"]).is_err());
        assert!(Wrap::try_parse_from(["bench", "--token-prefix", "x"]).is_err());
        let args = parse(&["--rpc", "login", "--duration", "1.5", "--rate", "100"]);
        assert_eq!(args.rpc, Rpc::Login);
        assert_eq!(args.duration, Duration::from_millis(1500));
    }
}
