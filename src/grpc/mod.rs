//! The gRPC port, wired in one place: which services it carries, the layers
//! in front of them, and how accepted connections are wrapped.
//!
//! One service per file, each translating wire <-> actor messages and
//! nothing more: [`status`] (`message.StatusService`, the deployed contract),
//! [`admin`] (`statusadmin.v1.Admin`). Beside them tonic's
//! `grpc.health.v1.Health` and server reflection. Cross-cutting concerns are
//! small layers of their own: [`in_flight_limit`] sheds requests past a bound,
//! [`silent_connections`] ends connections that never spoke once draining
//! starts.

pub mod admin;
pub mod in_flight_limit;
pub mod silent_connections;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use actix::Addr;
use futures_util::TryStreamExt;
use status_actors::server_registry::ServerRegistry;
use status_actors::token_actor::TokenActor;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_server::{Health, HealthServer};

use crate::admin_proto::admin_server::AdminServer;
use crate::calls::StatusCalls;
use crate::drain::DrainSignal;
use crate::metrics::{Metrics, Protocol};
use crate::proto::status_service_server::StatusServiceServer;
use admin::{AdminService, ReloadRequest};
use in_flight_limit::InFlightLimitLayer;
use silent_connections::SilentUntilDrain;
use status::StatusService;

/// Largest request accepted; real requests are a few dozen bytes. The HTTP/JSON port
/// takes the same bound.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Requests in flight beyond which new ones are shed with RESOURCE_EXHAUSTED.
/// Far above what 2 cores serve well (about 512 in flight) and far below
/// what would strain memory (a request in flight costs a few KiB).
pub const MAX_IN_FLIGHT: usize = 8192;

/// An actor or the server loop is gone: only happens while shutting down.
/// Shared by the gRPC services.
fn shutting_down<E>(_: E) -> Status {
    Status::unavailable(crate::calls::SHUTTING_DOWN)
}

/// What the gRPC services talk to.
pub struct Backends<H> {
    pub registry: Addr<ServerRegistry>,
    pub tokens: Addr<TokenActor>,
    /// `None` when metrics are off.
    pub metrics: Option<Arc<Metrics>>,
    /// Where the Admin API's Reload goes (the server loop owns the config).
    pub reloads: mpsc::Sender<ReloadRequest>,
    /// tonic-health's service; its reporter is kept current elsewhere.
    pub health: HealthServer<H>,
}

/// Serves every gRPC service on `listener` until `drain` starts, then lets
/// accepted requests finish (tonic's graceful shutdown; the caller bounds it).
pub fn serve<H: Health>(
    listener: TcpListener,
    backends: Backends<H>,
    drain: DrainSignal,
) -> Result<
    impl Future<Output = Result<(), tonic::transport::Error>>,
    tonic_reflection::server::Error,
> {
    // Both reflection versions: grpcurl and older tools still ask v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let shed = backends.metrics.as_ref().map(|m| m.shed.clone());
    let status_service = StatusServiceServer::new(StatusService::new(StatusCalls::new(
        backends.registry.clone(),
        backends.tokens.clone(),
        backends.metrics,
        Protocol::Grpc,
    )))
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let admin_service = AdminServer::new(AdminService::new(
        backends.registry,
        backends.tokens,
        backends.reloads,
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map_ok({
            let drain = drain.clone();
            move |stream| SilentUntilDrain::new(stream, drain.clone())
        });
    Ok(tonic::transport::Server::builder()
        .layer(InFlightLimitLayer::new(MAX_IN_FLIGHT, shed))
        .add_service(status_service)
        .add_service(admin_service)
        .add_service(backends.health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, drain.started()))
}
