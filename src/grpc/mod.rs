//! The gRPC port, wired in one place: which services it carries, the layers
//! in front of them, and how accepted connections are wrapped.
//!
//! One service per file, each translating wire <-> actor messages and
//! nothing more: [`status`] (`message.StatusService`, the deployed contract),
//! [`batch`] (`statusbatch.v1.Batch`), [`admin`] (`statusadmin.v1.Admin`). Beside them tonic's
//! `grpc.health.v1.Health` and server reflection. The Admin service has a port of its own,
//! `server.admin_listen`, and is not served on `listen` (docs/contract.md §6): who can reach
//! the public port cannot read the topology, drain servers or trigger reloads. Cross-cutting concerns are
//! small layers of their own: [`in_flight_limit`] sheds requests past a bound,
//! [`silent_connections`] ends connections that never spoke once draining
//! starts.
//!
//! Every service accepts requests compressed with gzip, deflate or zstd
//! (docs/contract.md §9), and compresses its replies as `server.compression`
//! says when the client accepts that encoding. tonic fixes both when a
//! service is built, so the key needs a restart. Accepting costs
//! uncompressed traffic nothing: tonic only looks at a message's
//! compressed flag, and reads `grpc-encoding` only when it is set.

pub mod admin;
pub mod batch;
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
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_server::{Health, HealthServer};

use crate::admin_proto::admin_server::AdminServer;
use crate::batch_proto::batch_server::BatchServer;
use crate::calls::StatusCalls;
use crate::config::ReplyCompression;
use crate::drain::DrainSignal;
use crate::metrics::{Metrics, Protocol};
use crate::proto::status_service_server::StatusServiceServer;
use admin::{AdminService, ReloadRequest};
use batch::BatchService;
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

/// Request encodings every service accepts.
const ACCEPTED_ENCODINGS: [CompressionEncoding; 3] = [
    CompressionEncoding::Gzip,
    CompressionEncoding::Deflate,
    CompressionEncoding::Zstd,
];

/// Applies the compression settings to a generated tonic server: every
/// accepted request encoding, and the reply encoding when one is set. A
/// macro: each generated server has these builders, but no trait shares them.
macro_rules! compressed {
    ($service:expr, $reply:expr) => {{
        let mut service = $service;
        for encoding in ACCEPTED_ENCODINGS {
            service = service.accept_compressed(encoding);
        }
        match $reply {
            Some(encoding) => service.send_compressed(encoding),
            None => service,
        }
    }};
}

/// tonic's encoding for replies, `None` for uncompressed ones.
fn reply_encoding(compression: ReplyCompression) -> Option<CompressionEncoding> {
    match compression {
        ReplyCompression::None => None,
        ReplyCompression::Gzip => Some(CompressionEncoding::Gzip),
        ReplyCompression::Zstd => Some(CompressionEncoding::Zstd),
    }
}

/// Serves the public services on `listener` and the Admin service on
/// `admin_listener` (when on) until `drain` starts, then lets accepted
/// requests finish (tonic's graceful shutdown; the caller bounds it).
/// Replies are compressed as `compression` says, to clients that accept it.
/// The future ends with the first port that fails, or once both drained.
pub fn serve<H: Health>(
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    backends: Backends<H>,
    compression: ReplyCompression,
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
    let shed = backends.metrics.as_ref().map(|m| m.shed.clone());
    let reply = reply_encoding(compression);
    let reflection_v1 = compressed!(reflection().build_v1()?, reply);
    let reflection_v1alpha = compressed!(reflection().build_v1alpha()?, reply);
    let status_service = compressed!(
        StatusServiceServer::new(StatusService::new(StatusCalls::new(
            backends.registry.clone(),
            backends.tokens.clone(),
            backends.metrics,
            Protocol::Grpc,
        )))
        .max_decoding_message_size(MAX_REQUEST_BYTES),
        reply
    );
    let batch_service = compressed!(
        BatchServer::new(BatchService::new(
            backends.registry.clone(),
            backends.tokens.clone(),
        ))
        .max_decoding_message_size(MAX_REQUEST_BYTES),
        reply
    );
    let admin = admin_listener.map(|admin_listener| {
        let admin_service = compressed!(
            AdminServer::new(AdminService::new(
                backends.registry,
                backends.tokens,
                backends.reloads,
            ))
            .max_decoding_message_size(MAX_REQUEST_BYTES),
            reply
        );
        // A budget of its own: a flood on the public port cannot lock the operator out.
        tonic::transport::Server::builder()
            .layer(InFlightLimitLayer::new(MAX_IN_FLIGHT, shed.clone()))
            .add_service(admin_service)
            .serve_with_incoming_shutdown(incoming(admin_listener, &drain), drain.clone().started())
    });
    let health = compressed!(backends.health, reply);
    let public = tonic::transport::Server::builder()
        .layer(InFlightLimitLayer::new(MAX_IN_FLIGHT, shed))
        .add_service(status_service)
        .add_service(batch_service)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming(listener, &drain), drain.started());
    Ok(async move {
        match admin {
            Some(admin) => tokio::try_join!(public, admin).map(|((), ())| ()),
            None => public.await,
        }
    })
}

/// The accepted connections of `listener`, each ended once draining starts if it never spoke.
fn incoming(
    listener: TcpListener,
    drain: &DrainSignal,
) -> impl futures_util::Stream<Item = Result<SilentUntilDrain, std::io::Error>> + use<> {
    let drain = drain.clone();
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map_ok(move |stream| SilentUntilDrain::new(stream, drain.clone()))
}
