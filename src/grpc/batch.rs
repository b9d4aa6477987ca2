//! The `statusbatch.v1.Batch` gRPC service (docs/contract.md §9): wire <->
//! actor messages, nothing more.
//!
//! A batch is checked first ([`crate::batch`]: size, repeated uids), else
//! `INVALID_ARGUMENT`. Its items then go to the actors in one message
//! (`PlaceUsers`, `CheckTokens`), so they are placed as that many unary calls
//! would be and their Redis commands travel as one pipeline. Each item
//! answers exactly as its unary call would, business errors (1010, 1011)
//! included; what the unary call answers with a gRPC status is the whole
//! batch's: Redis failing (any item's command) is `UNAVAILABLE` with no
//! token returned, no server alive `UNAVAILABLE`, every server full or
//! draining `RESOURCE_EXHAUSTED`, with none of the batch placed.
//!
//! Each batch counts once in `status_requests_total` (rpc `GetChatServers` or `Logins`):
//! `ok` when answered, whatever its items' codes, else the status that refused it whole.
//! A batch refused `INVALID_ARGUMENT` never reached the actors and is not counted, as an
//! HTTP request refused 400 is not.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use futures_util::future::join_all;
use status_actors::server_registry::{PlaceUsers, ServerRegistry};
use status_actors::token_actor::{CheckToken, CheckTokens, TokenActor};
use tonic::{Code, Request, Response, Status};

use super::shutting_down;
use super::status::status_of;
use crate::batch::{check_get_chat_servers, check_logins};
use crate::batch_proto::batch_server::Batch;
use crate::batch_proto::{GetChatServersReq, GetChatServersRsp, LoginsReq, LoginsRsp};
use crate::calls::{login_reply, placement_reply, uid_invalid};
use crate::metrics::{BatchMetrics, Metrics, Outcome, RpcMetrics};
use crate::proto::LoginReq;

/// Forwards both batch RPCs to the actors that own the state.
pub struct BatchService {
    registry: Addr<ServerRegistry>,
    tokens: Addr<TokenActor>,
    /// `None` when metrics are off (no `metrics_listen`).
    metrics: Option<Arc<Metrics>>,
}

impl BatchService {
    pub fn new(
        registry: Addr<ServerRegistry>,
        tokens: Addr<TokenActor>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        BatchService {
            registry,
            tokens,
            metrics,
        }
    }

    /// Records one batch that started at `started` and ended as `answer`.
    fn observe<T>(
        &self,
        pick: fn(&BatchMetrics) -> &RpcMetrics,
        answer: &Result<T, Status>,
        started: Instant,
    ) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let outcome = outcome_of(answer);
        if outcome == Outcome::ResourceExhausted {
            metrics.placements_refused.inc();
        }
        pick(&metrics.batch).observe(outcome, started);
    }

    /// Places every uid of a checked batch, one message to the registry.
    async fn place(&self, uids: Vec<i32>) -> Result<GetChatServersRsp, Status> {
        let pending = match self.registry.send(PlaceUsers { uids }).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(refusal)) => return Err(whole_batch(placement_reply(Err(refusal)).1)),
            Err(mailbox) => return Err(shutting_down(mailbox)),
        };
        // Every token write is awaited here, on this task.
        let finished = join_all(pending.into_iter().map(|item| async move {
            match item {
                Some(placement) => Some(placement.await),
                None => None,
            }
        }))
        .await;
        let results = finished
            .into_iter()
            .map(|item| match item {
                None => Ok(uid_invalid()),
                Some(placed) => placement_reply(placed).1.map_err(status_of),
            })
            .collect::<Result<_, _>>()?;
        Ok(GetChatServersRsp { results })
    }

    /// Checks every login of a checked batch, one message to the token actor.
    async fn check(&self, requests: Vec<LoginReq>) -> Result<LoginsRsp, Status> {
        let (checks, checked): (Vec<_>, Vec<_>) = requests
            .iter()
            .map(|login| CheckToken::new(login.uid, login.token.clone()))
            .unzip();
        self.tokens.do_send(CheckTokens(checks));
        let results = join_all(checked)
            .await
            .into_iter()
            .zip(requests)
            .map(|(checked, login)| {
                login_reply(checked, login.uid, login.token)
                    .1
                    .map_err(status_of)
            })
            .collect::<Result<_, _>>()?;
        Ok(LoginsRsp { results })
    }
}

#[tonic::async_trait]
impl Batch for BatchService {
    async fn get_chat_servers(
        &self,
        request: Request<GetChatServersReq>,
    ) -> Result<Response<GetChatServersRsp>, Status> {
        let uids = request.into_inner().uids;
        check_get_chat_servers(&uids).map_err(|err| Status::invalid_argument(err.to_string()))?;
        let started = Instant::now();
        let answer = self.place(uids).await;
        self.observe(|m| &m.get_chat_servers, &answer, started);
        answer.map(Response::new)
    }

    async fn logins(&self, request: Request<LoginsReq>) -> Result<Response<LoginsRsp>, Status> {
        let requests = request.into_inner().requests;
        check_logins(requests.len()).map_err(|err| Status::invalid_argument(err.to_string()))?;
        let started = Instant::now();
        let answer = self.check(requests).await;
        self.observe(|m| &m.logins, &answer, started);
        answer.map(Response::new)
    }
}

/// How a batch ended, for its metrics: answered, or refused whole by the status a unary
/// call would have been refused with.
fn outcome_of<T>(answer: &Result<T, Status>) -> Outcome {
    match answer {
        Ok(_) => Outcome::Ok,
        Err(status) if status.code() == Code::ResourceExhausted => Outcome::ResourceExhausted,
        // UNAVAILABLE: Redis failing, no chat server alive, shutting down.
        Err(_) => Outcome::Unavailable,
    }
}

/// A refusal answered for the whole batch: only ever a gRPC status (an
/// invalid uid is an item's, and never refuses a batch).
fn whole_batch(reply: Result<impl Sized, crate::calls::Refusal>) -> Status {
    match reply {
        Err(refusal) => status_of(refusal),
        Ok(_) => Status::internal("a batch refusal without a status"),
    }
}
