//! The `statusadmin.v1.Admin` gRPC service: the balancer's state for
//! operators, a reload trigger (the same as SIGHUP), drains set at run
//! time and token revocation (docs/contract.md §7).
//!
//! Like the public service it only translates: state and drains go to the
//! registry, revocations to the token actor, and a reload is a request to
//! the server loop, which owns the running config.

use std::time::{SystemTime, UNIX_EPOCH};

use actix::Addr;
use status_actors::balance::{Availability, LoadField};
use status_actors::server_registry::{ServerRegistry, SetDraining, Snapshot};
use status_actors::token_actor::{RevokeToken, TokenActor};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use super::shutting_down;
use crate::admin_proto::admin_server::Admin;
use crate::admin_proto::{
    ChatServerState, ListServersReq, ListServersRsp, ReloadReq, ReloadRsp, RevokeTokenReq,
    RevokeTokenRsp, SetDrainingReq, SetDrainingRsp,
};
use crate::reload::ReloadOutcome;

/// A reload asked for over gRPC; the server loop answers on the sender.
pub type ReloadRequest = oneshot::Sender<ReloadOutcome>;

pub struct AdminService {
    registry: Addr<ServerRegistry>,
    tokens: Addr<TokenActor>,
    reloads: mpsc::Sender<ReloadRequest>,
}

impl AdminService {
    pub fn new(
        registry: Addr<ServerRegistry>,
        tokens: Addr<TokenActor>,
        reloads: mpsc::Sender<ReloadRequest>,
    ) -> Self {
        AdminService {
            registry,
            tokens,
            reloads,
        }
    }
}

fn unix_ms(at: Option<SystemTime>) -> u64 {
    at.and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_servers(
        &self,
        _request: Request<ListServersReq>,
    ) -> Result<Response<ListServersRsp>, Status> {
        let snapshot = self.registry.send(Snapshot).await.map_err(shutting_down)?;
        let last_poll_unix_ms = unix_ms(snapshot.last_poll);
        let servers = snapshot
            .servers
            .into_iter()
            .map(|s| ChatServerState {
                name: s.server.name.clone(),
                host: s.server.host.clone(),
                port: u32::from(s.server.port),
                polled_count: s.load.polled,
                assigned_since_poll: s.load.assigned_since_poll,
                in_flight: s.load.in_flight,
                alive: s.alive,
                reachable: s.load.reachable,
                load_field: match s.field {
                    Some(LoadField::Count(_)) => "count",
                    Some(LoadField::Missing) => "missing",
                    Some(LoadField::Invalid(_)) => "invalid",
                    None => "unknown",
                }
                .to_string(),
                last_poll_unix_ms,
                last_probe_unix_ms: unix_ms(s.last_probe),
                weight: s.server.policy.weight.get(),
                max_connections: s.server.policy.max_connections,
                draining: s.drain.any(),
                drain_from_config: s.drain.by_config,
                drain_from_admin: s.drain.by_admin,
                choosable: matches!(s.availability, Availability::Choosable(_)),
            })
            .collect();
        Ok(Response::new(ListServersRsp {
            servers,
            probing: snapshot.probing,
            redis_ok: snapshot.redis_ok,
            load_hash_present: snapshot.load_hash_present,
            strategy: snapshot.strategy.name().to_string(),
        }))
    }

    async fn reload(&self, _request: Request<ReloadReq>) -> Result<Response<ReloadRsp>, Status> {
        let (reply, outcome) = oneshot::channel();
        self.reloads.send(reply).await.map_err(shutting_down)?;
        let outcome = outcome.await.map_err(shutting_down)?;
        Ok(Response::new(ReloadRsp {
            applied: outcome.applied,
            message: outcome.message,
            restart_needed: outcome.restart_needed,
        }))
    }

    async fn set_draining(
        &self,
        request: Request<SetDrainingReq>,
    ) -> Result<Response<SetDrainingRsp>, Status> {
        let SetDrainingReq { name, draining } = request.into_inner();
        let drain = self
            .registry
            .send(SetDraining { name, draining })
            .await
            .map_err(shutting_down)?
            .map_err(|unknown| Status::not_found(unknown.to_string()))?;
        Ok(Response::new(SetDrainingRsp {
            draining: drain.any(),
            drain_from_config: drain.by_config,
            drain_from_admin: drain.by_admin,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenReq>,
    ) -> Result<Response<RevokeTokenRsp>, Status> {
        let uid = request.into_inner().uid;
        // No such token can exist (GetChatServer places no uid <= 0).
        if uid <= 0 {
            return Err(Status::invalid_argument("uid must be positive"));
        }
        let (revoke, revoked) = RevokeToken::new(uid);
        self.tokens.do_send(revoke);
        let revoked = revoked
            .await
            .map_err(|failure| Status::unavailable(failure.to_string()))?;
        if revoked {
            log::info!("uid {uid}: token revoked (Admin)");
        }
        Ok(Response::new(RevokeTokenRsp { revoked }))
    }
}
