//! The `message.StatusService` gRPC service: wire <-> actor messages, nothing more.
//!
//! Each RPC becomes one message to an actor; the answer becomes a reply with a
//! business error code (CONTRACT §1) or a gRPC status for infrastructure
//! failures. Decisions (validation, choice, token checks) live in the actors.

use actix::{Addr, MailboxError};
use status_actors::server_registry::{PlaceUser, PlacementError, ServerRegistry};
use status_actors::token::LoginCheck;
use status_actors::token_actor::{CheckToken, TokenActor};
use tonic::{Request, Response, Status};

use crate::proto::status_service_server::StatusService as StatusServiceRpc;
use crate::proto::{GetChatServerReq, GetChatServerRsp, LoginReq, LoginRsp};

/// Business error codes carried in the replies' `error` field.
pub mod error_code {
    pub const SUCCESS: i32 = 0;
    pub const TOKEN_INVALID: i32 = 1010;
    pub const UID_INVALID: i32 = 1011;
}

/// Forwards both RPCs to the actors that own the state.
#[derive(Clone)]
pub struct StatusService {
    registry: Addr<ServerRegistry>,
    tokens: Addr<TokenActor>,
}

impl StatusService {
    pub fn new(registry: Addr<ServerRegistry>, tokens: Addr<TokenActor>) -> Self {
        StatusService { registry, tokens }
    }
}

/// An actor's mailbox closed: only happens while shutting down.
fn actor_gone(_: MailboxError) -> Status {
    Status::unavailable("the server is shutting down")
}

#[tonic::async_trait]
impl StatusServiceRpc for StatusService {
    async fn get_chat_server(
        &self,
        request: Request<GetChatServerReq>,
    ) -> Result<Response<GetChatServerRsp>, Status> {
        let uid = request.into_inner().uid;
        let placed = self
            .registry
            .send(PlaceUser { uid })
            .await
            .map_err(actor_gone)?;
        let reply = match placed {
            Ok(placement) => GetChatServerRsp {
                error: error_code::SUCCESS,
                host: placement.server.host.clone(),
                port: placement.server.port.to_string(),
                token: placement.token,
            },
            Err(PlacementError::InvalidUid) => GetChatServerRsp {
                error: error_code::UID_INVALID,
                ..GetChatServerRsp::default()
            },
            Err(err) => return Err(Status::unavailable(err.to_string())),
        };
        Ok(Response::new(reply))
    }

    async fn login(&self, request: Request<LoginReq>) -> Result<Response<LoginRsp>, Status> {
        let LoginReq { uid, token } = request.into_inner();
        let check = self
            .tokens
            .send(CheckToken {
                uid,
                token: token.clone(),
            })
            .await
            .map_err(actor_gone)?
            .map_err(|failure| Status::unavailable(failure.to_string()))?;
        let reply = match check {
            LoginCheck::Valid => LoginRsp {
                error: error_code::SUCCESS,
                uid,
                token,
            },
            LoginCheck::UidInvalid => LoginRsp {
                error: error_code::UID_INVALID,
                ..LoginRsp::default()
            },
            LoginCheck::TokenInvalid => LoginRsp {
                error: error_code::TOKEN_INVALID,
                ..LoginRsp::default()
            },
        };
        Ok(Response::new(reply))
    }
}
