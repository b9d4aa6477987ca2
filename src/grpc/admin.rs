//! The `statusadmin.v1.Admin` gRPC service: the balancer's state for
//! operators, and a reload trigger (the same as SIGHUP).
//!
//! Like the public service it only translates: state comes from the
//! registry's snapshot, and a reload is a request to the server loop, which
//! owns the running config.

use std::time::{SystemTime, UNIX_EPOCH};

use actix::Addr;
use status_actors::balance::LoadField;
use status_actors::server_registry::{ServerRegistry, Snapshot};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use super::shutting_down;
use crate::admin_proto::admin_server::Admin;
use crate::admin_proto::{ChatServerState, ListServersReq, ListServersRsp, ReloadReq, ReloadRsp};
use crate::reload::ReloadOutcome;

/// A reload asked for over gRPC; the server loop answers on the sender.
pub type ReloadRequest = oneshot::Sender<ReloadOutcome>;

pub struct AdminService {
    registry: Addr<ServerRegistry>,
    reloads: mpsc::Sender<ReloadRequest>,
}

impl AdminService {
    pub fn new(registry: Addr<ServerRegistry>, reloads: mpsc::Sender<ReloadRequest>) -> Self {
        AdminService { registry, reloads }
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
            })
            .collect();
        Ok(Response::new(ListServersRsp {
            servers,
            probing: snapshot.probing,
            redis_ok: snapshot.redis_ok,
            load_hash_present: snapshot.load_hash_present,
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
}
