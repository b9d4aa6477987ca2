//! `chaos-load`: steady GetChatServer + Login load over several status-server instances
//! while something else (bench/chaos) breaks Redis, chat servers and the instances; checks
//! from the client side that no token the server handed out was lost.
//!
//! - Every call uses a fresh uid (`uid-base`, `uid-base + 1`, ...), so no later
//!   GetChatServer replaces a token before it is checked.
//! - Call `n` sends GetChatServer to instance `n mod k` and, when it answers `error = 0`,
//!   Login with that token to instance `n + 1 mod k`: tokens cross instances.
//! - After `--duration`, every token that came back with `error = 0` is checked again with
//!   Login (round-robin over the instances); a gRPC failure is retried every 200 ms until
//!   `--verify-for` runs out. A token rejected (`1010`/`1011`), or never checked because
//!   every try failed, breaks the invariant: with `min_replicas_ack >= 1` a token returned
//!   must survive a failover.
//! - gRPC outcomes are counted per RPC by code; anything other than OK, UNAVAILABLE and
//!   RESOURCE_EXHAUSTED is unexpected, as is a GetChatServer reply with `error != 0`.
//!
//! Exit status: 0 when every invariant held, 1 when one broke (the report says which).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use status_server::contract::error_code;
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use tonic::transport::Channel;

use crate::failure::{Failure, code_name, one_line};
use crate::output;
use crate::target::{Target, parse_addr, parse_positive_secs};

/// gRPC outcomes the contract allows under failures (§3, §5, §7).
const EXPECTED_CODES: [&str; 3] = ["OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED"];
/// Pause between two tries of a token whose check failed with a gRPC status.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Rejected uids kept in the report, to look up in the logs.
const SAMPLE: usize = 10;

#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// The status-server instances, comma-separated (calls go round-robin).
    #[arg(long, value_delimiter = ',', required = true, value_parser = parse_addr)]
    pub instances: Vec<String>,
    /// Seconds of load.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_positive_secs)]
    pub duration: Duration,
    /// GetChatServer calls per second in total (each success adds a Login).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// Calls in flight at most.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// First uid; every call takes the next one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub uid_base: i32,
    /// Seconds the final check may retry tokens whose Login failed with a gRPC status.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_positive_secs)]
    pub verify_for: Duration,
}

/// A token GetChatServer returned with `error = 0`.
struct Minted {
    uid: i32,
    token: String,
}

/// What the load phase saw.
#[derive(Default)]
struct Seen {
    get_chat_server: BTreeMap<&'static str, u64>,
    /// GetChatServer replies with gRPC OK but `error != 0` (or no host / token): by code.
    get_chat_server_bad: BTreeMap<i32, u64>,
    login: BTreeMap<&'static str, u64>,
    /// Login right after GetChatServer, answered with `error != 0`: by code.
    login_rejected: BTreeMap<i32, u64>,
    minted: Vec<Minted>,
    /// The first unexpected gRPC statuses, with when and where, to look up in the logs.
    unexpected: Vec<String>,
}

impl Seen {
    /// Counts a gRPC failure of `rpc` on instance `addr`, `at` seconds into the run.
    fn failed(&mut self, rpc: &'static str, addr: &str, at: f64, status: &tonic::Status) {
        let code = code_name(status.code());
        let counts = match rpc {
            "GetChatServer" => &mut self.get_chat_server,
            _ => &mut self.login,
        };
        *counts.entry(code).or_default() += 1;
        if !EXPECTED_CODES.contains(&code) && self.unexpected.len() < SAMPLE {
            self.unexpected.push(format!(
                "{at:.1}s {rpc} on {addr}: {code}: {}",
                one_line(status.message())
            ));
        }
    }
}

#[derive(Serialize)]
struct Verify {
    tokens: u64,
    passed: u64,
    rejected: BTreeMap<i32, u64>,
    rejected_uids: Vec<i32>,
    /// Tokens every try of which failed with a gRPC status until `--verify-for` ran out.
    unresolved: u64,
    tries_failed: BTreeMap<&'static str, u64>,
    seconds: f64,
}

#[derive(Serialize)]
struct ChaosReport {
    instances: Vec<String>,
    duration_s: f64,
    get_chat_server: BTreeMap<&'static str, u64>,
    get_chat_server_bad: BTreeMap<i32, u64>,
    login: BTreeMap<&'static str, u64>,
    login_rejected: BTreeMap<i32, u64>,
    unexpected: Vec<String>,
    verify: Verify,
    /// Each broken invariant, in words; empty when all held.
    broken: Vec<String>,
}

struct Load {
    clients: Vec<StatusServiceClient<Channel>>,
    next_uid: AtomicI64,
    uid_base: i32,
    seen: Mutex<Seen>,
    addrs: Vec<String>,
    start: Instant,
    stop_at: Instant,
}

impl Load {
    /// One call: GetChatServer on one instance, then Login with its token on the next.
    async fn call(&self) {
        let n = self.next_uid.fetch_add(1, Ordering::Relaxed);
        let Ok(uid) = i32::try_from(i64::from(self.uid_base) + n) else {
            return; // out of fresh uids: the run ends without more calls
        };
        let k = self.clients.len();
        let index = usize::try_from(n).unwrap_or(0) % k;
        let mut client = self.clients[index].clone();
        let reply = client.get_chat_server(GetChatServerReq { uid }).await;
        let token = {
            let mut seen = self.lock();
            match reply {
                Err(status) => {
                    seen.failed("GetChatServer", &self.addrs[index], self.at(), &status);
                    return;
                }
                Ok(rsp) => {
                    *seen.get_chat_server.entry("OK").or_default() += 1;
                    let rsp = rsp.into_inner();
                    if rsp.error != error_code::SUCCESS
                        || rsp.host.is_empty()
                        || rsp.token.len() != 36
                    {
                        let code = if rsp.error == error_code::SUCCESS {
                            -1
                        } else {
                            rsp.error
                        };
                        *seen.get_chat_server_bad.entry(code).or_default() += 1;
                        return;
                    }
                    seen.minted.push(Minted {
                        uid,
                        token: rsp.token.clone(),
                    });
                    rsp.token
                }
            }
        };
        let login_on = (index + 1) % k;
        let mut client = self.clients[login_on].clone();
        let reply = client.login(LoginReq { uid, token }).await;
        let mut seen = self.lock();
        match reply {
            Err(status) => seen.failed("Login", &self.addrs[login_on], self.at(), &status),
            Ok(rsp) => {
                *seen.login.entry("OK").or_default() += 1;
                let error = rsp.into_inner().error;
                if error != error_code::SUCCESS {
                    *seen.login_rejected.entry(error).or_default() += 1;
                }
            }
        }
    }

    fn at(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .expect("no call panics while holding the tally")
    }

    /// A closed loop paced at `period`, until the load phase ends.
    async fn worker(self: Arc<Load>, mut pace: tokio::time::Interval) {
        loop {
            pace.tick().await;
            if Instant::now() >= self.stop_at {
                return;
            }
            self.call().await;
        }
    }
}

/// Checks every minted token with Login, retrying gRPC failures until `deadline`.
async fn verify(
    clients: &[StatusServiceClient<Channel>],
    minted: Vec<Minted>,
    concurrency: usize,
    deadline: Instant,
) -> Verify {
    let started = Instant::now();
    let result = Arc::new(Mutex::new(Verify {
        tokens: minted.len() as u64,
        passed: 0,
        rejected: BTreeMap::new(),
        rejected_uids: Vec::new(),
        unresolved: 0,
        tries_failed: BTreeMap::new(),
        seconds: 0.0,
    }));
    let queue = Arc::new(Mutex::new(minted));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let clients = clients.to_vec();
        let queue = Arc::clone(&queue);
        let result = Arc::clone(&result);
        tasks.spawn(async move {
            let mut turn = worker;
            loop {
                let next = queue
                    .lock()
                    .expect("no check panics while holding the queue")
                    .pop();
                let Some(Minted { uid, token }) = next else {
                    return;
                };
                loop {
                    turn += 1;
                    let mut client = clients[turn % clients.len()].clone();
                    let reply = client
                        .login(LoginReq {
                            uid,
                            token: token.clone(),
                        })
                        .await;
                    let retry = {
                        let mut result = result.lock().expect("no check panics while holding it");
                        record_check(&mut result, uid, reply, deadline)
                    };
                    if !retry {
                        break;
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut result = Arc::try_unwrap(result)
        .ok()
        .expect("every check task is done")
        .into_inner()
        .expect("no check panicked");
    result.seconds = started.elapsed().as_secs_f64();
    result
}

/// Counts one Login of the final check; true when it failed with a gRPC status and there is
/// time to try again.
fn record_check(
    result: &mut Verify,
    uid: i32,
    reply: Result<tonic::Response<status_server::proto::LoginRsp>, tonic::Status>,
    deadline: Instant,
) -> bool {
    match reply {
        Ok(rsp) if rsp.get_ref().error == error_code::SUCCESS => result.passed += 1,
        Ok(rsp) => {
            *result.rejected.entry(rsp.get_ref().error).or_default() += 1;
            if result.rejected_uids.len() < SAMPLE {
                result.rejected_uids.push(uid);
            }
        }
        Err(status) => {
            *result
                .tries_failed
                .entry(code_name(status.code()))
                .or_default() += 1;
            if Instant::now() + RETRY_PAUSE < deadline {
                return true;
            }
            result.unresolved += 1;
        }
    }
    false
}

fn unexpected_codes(counts: &BTreeMap<&'static str, u64>) -> Vec<String> {
    counts
        .iter()
        .filter(|(code, _)| !EXPECTED_CODES.contains(code))
        .map(|(code, n)| format!("{n} x {code}"))
        .collect()
}

pub async fn run(timeout: Duration, json: bool, args: &ChaosArgs) -> Result<(), Failure> {
    // Lazy channels: an instance that is down now (or later) costs UNAVAILABLE, not the run.
    let clients: Vec<_> = args
        .instances
        .iter()
        .map(|addr| {
            let target = Target {
                addr: addr.clone(),
                timeout,
                compress: None,
                tls: None,
            };
            target
                .endpoint()
                .map(|endpoint| StatusServiceClient::new(endpoint.connect_lazy()))
        })
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let load = Arc::new(Load {
        clients: clients.clone(),
        next_uid: AtomicI64::new(0),
        uid_base: args.uid_base,
        seen: Mutex::new(Seen::default()),
        addrs: args.instances.clone(),
        start,
        stop_at: start + args.duration,
    });
    let period = Duration::from_secs_f64(f64::from(args.concurrency) / f64::from(args.rate));
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..args.concurrency {
        let offset = period.mul_f64(f64::from(index) / f64::from(args.concurrency));
        let mut pace =
            tokio::time::interval_at(tokio::time::Instant::from_std(start + offset), period);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        workers.spawn(Arc::clone(&load).worker(pace));
    }
    // Workers finish their last call: a token handed out then is still checked.
    while workers.join_next().await.is_some() {}
    let duration_s = start.elapsed().as_secs_f64();
    let seen = std::mem::take(&mut *load.lock());

    let deadline = Instant::now() + args.verify_for;
    let verify = verify(&clients, seen.minted, args.concurrency as usize, deadline).await;

    let mut broken = Vec::new();
    for (rpc, counts) in [
        ("GetChatServer", &seen.get_chat_server),
        ("Login", &seen.login),
    ] {
        let codes = unexpected_codes(counts);
        if !codes.is_empty() {
            broken.push(format!("{rpc} answered {}", codes.join(", ")));
        }
    }
    if !seen.get_chat_server_bad.is_empty() {
        broken.push(format!(
            "GetChatServer answered OK without a placement: {:?}",
            seen.get_chat_server_bad
        ));
    }
    if !seen.login_rejected.is_empty() {
        broken.push(format!(
            "Login right after GetChatServer rejected a fresh token: {:?}",
            seen.login_rejected
        ));
    }
    if !verify.rejected.is_empty() {
        broken.push(format!(
            "the final check rejected {} tokens ({:?}; uids {:?})",
            verify.rejected.values().sum::<u64>(),
            verify.rejected,
            verify.rejected_uids
        ));
    }
    if verify.unresolved > 0 {
        broken.push(format!(
            "{} tokens could not be checked within {:?}",
            verify.unresolved, args.verify_for
        ));
    }
    if verify.tokens == 0 {
        broken.push("no GetChatServer call succeeded".to_string());
    }
    let report = ChaosReport {
        instances: args.instances.clone(),
        duration_s,
        get_chat_server: seen.get_chat_server,
        get_chat_server_bad: seen.get_chat_server_bad,
        login: seen.login,
        login_rejected: seen.login_rejected,
        unexpected: seen.unexpected,
        verify,
        broken,
    };
    if json {
        output::json(&report);
    } else {
        output::emit(&report.text());
    }
    if report.broken.is_empty() {
        Ok(())
    } else {
        Err(Failure::Refused(report.broken.join("; ")))
    }
}

impl ChaosReport {
    fn text(&self) -> String {
        let counts = |m: &BTreeMap<&'static str, u64>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let v = &self.verify;
        let mut rows = vec![
            ("instances", self.instances.join(", ")),
            ("load seconds", format!("{:.1}", self.duration_s)),
            ("GetChatServer", counts(&self.get_chat_server)),
            ("Login after it", counts(&self.login)),
            (
                "final check",
                format!(
                    "{} tokens: {} passed, {} rejected, {} unresolved ({:.1} s; failed tries: {})",
                    v.tokens,
                    v.passed,
                    v.rejected.values().sum::<u64>(),
                    v.unresolved,
                    v.seconds,
                    counts(&v.tries_failed)
                ),
            ),
        ];
        let verdict = if self.broken.is_empty() {
            "every invariant held".to_string()
        } else {
            self.broken.join("; ")
        };
        for sample in &self.unexpected {
            rows.push(("unexpected", sample.clone()));
        }
        rows.push(("verdict", verdict));
        output::fields(&rows)
    }
}
