//! The `message.StatusService` gRPC service: wire <-> actor messages, nothing more.
//!
//! Each RPC becomes one message to an actor; the answer becomes a reply with a
//! business error code (docs/contract.md §1) or a gRPC status for infrastructure
//! failures: UNAVAILABLE, or RESOURCE_EXHAUSTED when every alive chat server is
//! full or draining (§7). Decisions (validation, choice, token checks) live in the actors.
//! Each call's outcome and latency are recorded when metrics are on.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use status_actors::redis_link::RedisFailure;
use status_actors::server_registry::{PlaceUser, Placement, PlacementError, ServerRegistry};
use status_actors::token::LoginCheck;
use status_actors::token_actor::{CheckToken, TokenActor};
use tonic::{Request, Response, Status};

use super::shutting_down;
use crate::contract::error_code;
use crate::metrics::{Metrics, Outcome, RpcMetrics};
use crate::proto::status_service_server::StatusService as StatusServiceRpc;
use crate::proto::{GetChatServerReq, GetChatServerRsp, LoginReq, LoginRsp};

/// Forwards both RPCs to the actors that own the state.
#[derive(Clone)]
pub struct StatusService {
    registry: Addr<ServerRegistry>,
    tokens: Addr<TokenActor>,
    /// `None` when metrics are off (no `metrics_listen`).
    metrics: Option<Arc<Metrics>>,
}

impl StatusService {
    pub fn new(
        registry: Addr<ServerRegistry>,
        tokens: Addr<TokenActor>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        StatusService {
            registry,
            tokens,
            metrics,
        }
    }

    /// Records one finished call with the RPC metrics `pick` selects.
    fn observe(&self, pick: fn(&Metrics) -> &RpcMetrics, outcome: Outcome, started: Instant) {
        if let Some(metrics) = &self.metrics {
            pick(metrics).observe(outcome, started);
        }
    }
}

/// The reply to one GetChatServer, or its gRPC status, and how it ended.
/// Shared with the batch service, whose items answer exactly the same.
pub(super) fn placement_reply(
    placed: Result<Placement, PlacementError>,
) -> (Outcome, Result<GetChatServerRsp, Status>) {
    match placed {
        Ok(placement) => (
            Outcome::Ok,
            Ok(GetChatServerRsp {
                error: error_code::SUCCESS,
                host: placement.server.host.clone(),
                port: placement.server.port.to_string(),
                token: placement.token,
            }),
        ),
        Err(PlacementError::InvalidUid) => (Outcome::UidInvalid, Ok(uid_invalid())),
        Err(err @ PlacementError::NoServerChoosable(_)) => (
            Outcome::ResourceExhausted,
            Err(Status::resource_exhausted(err.to_string())),
        ),
        Err(err) => (
            Outcome::Unavailable,
            Err(Status::unavailable(err.to_string())),
        ),
    }
}

/// The GetChatServer reply for `uid <= 0`: 1011, every other field empty.
pub(super) fn uid_invalid() -> GetChatServerRsp {
    GetChatServerRsp {
        error: error_code::UID_INVALID,
        ..GetChatServerRsp::default()
    }
}

/// The reply to one Login of `uid` with `token`, or its gRPC status, and
/// how it ended. Shared with the batch service.
pub(super) fn login_reply(
    checked: Result<LoginCheck, RedisFailure>,
    uid: i32,
    token: String,
) -> (Outcome, Result<LoginRsp, Status>) {
    match checked {
        Ok(LoginCheck::Valid) => (
            Outcome::Ok,
            Ok(LoginRsp {
                error: error_code::SUCCESS,
                uid,
                token,
            }),
        ),
        Ok(LoginCheck::UidInvalid) => (
            Outcome::UidInvalid,
            Ok(LoginRsp {
                error: error_code::UID_INVALID,
                ..LoginRsp::default()
            }),
        ),
        Ok(LoginCheck::TokenInvalid) => (
            Outcome::TokenInvalid,
            Ok(LoginRsp {
                error: error_code::TOKEN_INVALID,
                ..LoginRsp::default()
            }),
        ),
        Err(failure) => (
            Outcome::Unavailable,
            Err(Status::unavailable(failure.to_string())),
        ),
    }
}

#[tonic::async_trait]
impl StatusServiceRpc for StatusService {
    async fn get_chat_server(
        &self,
        request: Request<GetChatServerReq>,
    ) -> Result<Response<GetChatServerRsp>, Status> {
        let started = Instant::now();
        let uid = request.into_inner().uid;
        let placed = match self.registry.send(PlaceUser { uid }).await {
            // The token write is awaited here, on this task.
            Ok(Ok(pending)) => Ok(pending.finish().await),
            Ok(Err(err)) => Ok(Err(err)),
            Err(mailbox) => Err(mailbox),
        };
        let (outcome, reply) = match placed {
            Ok(placed) => placement_reply(placed),
            Err(mailbox) => (Outcome::Unavailable, Err(shutting_down(mailbox))),
        };
        if outcome == Outcome::ResourceExhausted
            && let Some(metrics) = &self.metrics
        {
            metrics.placements_refused.inc();
        }
        self.observe(|m| &m.get_chat_server, outcome, started);
        reply.map(Response::new)
    }

    async fn login(&self, request: Request<LoginReq>) -> Result<Response<LoginRsp>, Status> {
        let started = Instant::now();
        let LoginReq { uid, token } = request.into_inner();
        let (check, checked) = CheckToken::new(uid, token.clone());
        self.tokens.do_send(check);
        let (outcome, reply) = login_reply(checked.await, uid, token);
        self.observe(|m| &m.login, outcome, started);
        reply.map(Response::new)
    }
}
