//! The two calls of `message.StatusService`, independent of the port that carries them.
//!
//! One function per call holds what both gRPC (`grpc::status`) and HTTP/JSON (`http_api`,
//! docs/contract.md §9) must do alike: the actor message the call sends, how its answer
//! becomes a reply with a business error code (§1) or a [`Refusal`] (§3, §7), and the
//! call's metrics, labelled by protocol. The ports only translate their wire to these and
//! back, so the two cannot drift apart.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use status_actors::redis_link::RedisFailure;
use status_actors::server_registry::{PlaceUser, Placement, PlacementError, ServerRegistry};
use status_actors::token::LoginCheck;
use status_actors::token_actor::{CheckToken, TokenActor};

use crate::contract::error_code;
use crate::metrics::{CallMetrics, Metrics, Outcome, Protocol, RpcMetrics};
use crate::proto::{GetChatServerRsp, LoginRsp};

/// Why the answer is a refusal rather than a reply: a failure of the infrastructure,
/// never a business error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No chat server alive, Redis down or too slow, or shutting down (gRPC UNAVAILABLE).
    Unavailable(String),
    /// Every alive chat server is full or draining (gRPC RESOURCE_EXHAUSTED).
    Exhausted(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unavailable(message) | Refusal::Exhausted(message) => f.write_str(message),
        }
    }
}

/// What a refusal says when an actor is gone: only happens while shutting down.
pub const SHUTTING_DOWN: &str = "the server is shutting down";

/// Both calls, as one port carries them.
#[derive(Clone)]
pub struct StatusCalls {
    registry: Addr<ServerRegistry>,
    tokens: Addr<TokenActor>,
    /// `None` when metrics are off (no `metrics_listen`).
    metrics: Option<Arc<Metrics>>,
    protocol: Protocol,
}

impl StatusCalls {
    pub fn new(
        registry: Addr<ServerRegistry>,
        tokens: Addr<TokenActor>,
        metrics: Option<Arc<Metrics>>,
        protocol: Protocol,
    ) -> Self {
        StatusCalls {
            registry,
            tokens,
            metrics,
            protocol,
        }
    }

    /// Records one finished call with the RPC metrics `pick` selects.
    fn observe(&self, pick: fn(&CallMetrics) -> &RpcMetrics, outcome: Outcome, started: Instant) {
        if let Some(metrics) = &self.metrics {
            pick(metrics.calls(self.protocol)).observe(outcome, started);
        }
    }

    /// GetChatServer(uid): a placement and its token, or why none.
    pub async fn get_chat_server(&self, uid: i32) -> Result<GetChatServerRsp, Refusal> {
        let started = Instant::now();
        let (place, placed) = PlaceUser::new(uid);
        self.registry.do_send(place);
        // The token write is awaited here, on the caller's task.
        let (outcome, reply) = placement_reply(placed.await);
        if outcome == Outcome::ResourceExhausted
            && let Some(metrics) = &self.metrics
        {
            metrics.placements_refused.inc();
        }
        self.observe(|m| &m.get_chat_server, outcome, started);
        reply
    }

    /// Login(uid, token): whether the token is the one stored for the uid.
    pub async fn login(&self, uid: i32, token: String) -> Result<LoginRsp, Refusal> {
        let started = Instant::now();
        let (check, checked) = CheckToken::new(uid, token.clone());
        self.tokens.do_send(check);
        let (outcome, reply) = login_reply(checked.await, uid, token);
        self.observe(|m| &m.login, outcome, started);
        reply
    }
}

/// The reply to one GetChatServer, or its refusal, and how it ended. Shared
/// with the batch service, whose items answer exactly the same.
pub fn placement_reply(
    placed: Result<Placement, PlacementError>,
) -> (Outcome, Result<GetChatServerRsp, Refusal>) {
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
            Err(Refusal::Exhausted(err.to_string())),
        ),
        Err(err) => (
            Outcome::Unavailable,
            Err(Refusal::Unavailable(err.to_string())),
        ),
    }
}

/// The GetChatServer reply for `uid <= 0`: 1011, every other field empty.
pub fn uid_invalid() -> GetChatServerRsp {
    GetChatServerRsp {
        error: error_code::UID_INVALID,
        ..GetChatServerRsp::default()
    }
}

/// The reply to one Login of `uid` with `token`, or its refusal, and how it
/// ended. Shared with the batch service.
pub fn login_reply(
    checked: Result<LoginCheck, RedisFailure>,
    uid: i32,
    token: String,
) -> (Outcome, Result<LoginRsp, Refusal>) {
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
            Err(Refusal::Unavailable(failure.to_string())),
        ),
    }
}
