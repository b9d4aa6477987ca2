//! One benchmark worker: a closed loop of calls, one in flight at a time, on a shared
//! HTTP/2 connection.
//!
//! A call that completes inside the measured window (after the warm-up, before the end) is
//! recorded in the tally of the worker's connection; others only count in its `all_calls`
//! / `all_ok`. Workers never stop by themselves at the end: the run aborts them, abandoning
//! calls still in flight (they would not be counted anyway).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use status_server::contract::error_code;
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use tokio::time::Interval;
use tonic::transport::Channel;

use super::seed::bench_token;
use super::tally::{Outcome, Tally};
use super::{Rpc, UID_COUNT};

/// Live counts for the progress bar (only kept when it is shown).
#[derive(Default)]
pub struct Live {
    pub calls: AtomicU64,
    pub failed: AtomicU64,
}

pub struct Worker {
    pub client: StatusServiceClient<Channel>,
    pub rpc: Rpc,
    pub uid_base: i32,
    /// Position in the uid cycle (workers start at different places).
    pub next: i32,
    pub tally: Arc<Mutex<Tally>>,
    pub live: Option<Arc<Live>>,
    pub measure_from: Instant,
    pub stop_at: Instant,
    /// Paces the calls when `--rate` is set.
    pub pace: Option<Interval>,
}

impl Worker {
    async fn call(&mut self) -> Outcome {
        let uid = self.uid_base + self.next;
        self.next = (self.next + 1) % UID_COUNT;
        let reply = match self.rpc {
            Rpc::GetChatServer => self
                .client
                .get_chat_server(GetChatServerReq { uid })
                .await
                .map(|rsp| {
                    let rsp = rsp.into_inner();
                    match rsp.error {
                        error_code::SUCCESS if !rsp.host.is_empty() && rsp.token.len() == 36 => {
                            Outcome::Ok
                        }
                        error_code::SUCCESS => Outcome::Business(-1),
                        code => Outcome::Business(code),
                    }
                }),
            Rpc::Login => self
                .client
                .login(LoginReq {
                    uid,
                    token: bench_token(uid),
                })
                .await
                .map(|rsp| match rsp.into_inner().error {
                    error_code::SUCCESS => Outcome::Ok,
                    code => Outcome::Business(code),
                }),
        };
        reply.unwrap_or_else(|status| Outcome::Grpc(status.code()))
    }

    pub async fn run(mut self) {
        loop {
            if let Some(pace) = self.pace.as_mut() {
                pace.tick().await;
            }
            let started = Instant::now();
            if started >= self.stop_at {
                return;
            }
            let outcome = self.call().await;
            let done = Instant::now();
            {
                let mut tally = self
                    .tally
                    .lock()
                    .expect("no worker panics while holding a tally");
                tally.count(outcome);
                if done < self.measure_from || done > self.stop_at {
                    continue;
                }
                tally.record(outcome, done - started);
            }
            if let Some(live) = &self.live {
                live.calls.fetch_add(1, Ordering::Relaxed);
                if outcome != Outcome::Ok {
                    live.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
