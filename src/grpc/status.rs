//! The `message.StatusService` gRPC service: wire <-> calls, nothing more.
//!
//! Each RPC is the shared call of [`crate::calls`] (the actor message, the reply with its
//! business error code, docs/contract.md §1, and the metrics); a refusal becomes a gRPC
//! status: UNAVAILABLE, or RESOURCE_EXHAUSTED when every alive chat server is full or
//! draining (§7). Decisions (validation, choice, token checks) live in the actors.

use tonic::{Request, Response, Status};

use crate::calls::{Refusal, StatusCalls};
use crate::proto::status_service_server::StatusService as StatusServiceRpc;
use crate::proto::{GetChatServerReq, GetChatServerRsp, LoginReq, LoginRsp};

/// Carries both RPCs to the shared calls.
#[derive(Clone)]
pub struct StatusService {
    calls: StatusCalls,
}

impl StatusService {
    pub fn new(calls: StatusCalls) -> Self {
        StatusService { calls }
    }
}

/// The gRPC status of a refusal (shared with the batch service).
pub(super) fn status_of(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Unavailable(message) => Status::unavailable(message),
        Refusal::Exhausted(message) => Status::resource_exhausted(message),
    }
}

#[tonic::async_trait]
impl StatusServiceRpc for StatusService {
    async fn get_chat_server(
        &self,
        request: Request<GetChatServerReq>,
    ) -> Result<Response<GetChatServerRsp>, Status> {
        let GetChatServerReq { uid } = request.into_inner();
        self.calls
            .get_chat_server(uid)
            .await
            .map(Response::new)
            .map_err(status_of)
    }

    async fn login(&self, request: Request<LoginReq>) -> Result<Response<LoginRsp>, Status> {
        let LoginReq { uid, token } = request.into_inner();
        self.calls
            .login(uid, token)
            .await
            .map(Response::new)
            .map_err(status_of)
    }
}
