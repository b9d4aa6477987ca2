//! The gRPC port, wired in one place: which services it carries, the layers
//! in front of them, and how accepted connections are wrapped.
//!
//! One service per file, each translating wire <-> actor messages and
//! nothing more: [`status`] (`message.StatusService`, the deployed contract),
//! [`batch`] (`statusbatch.v1.Batch`), [`admin`] (`statusadmin.v1.Admin`). Beside them tonic's
//! `grpc.health.v1.Health` and server reflection. The Admin service has a port of its own,
//! `server.admin_listen`, and is not served on `listen` (docs/contract.md §6): who can reach
//! the public port cannot read the topology, drain servers or trigger reloads. Each port's
//! reflection describes its own services only, so `listen` does not even name Admin's.
//! Cross-cutting concerns are small layers of their own: [`in_flight_limit`] sheds requests
//! past a bound, [`direct_route`] takes the deployed contract's calls past tonic's router,
//! [`connection_cap`] bounds the connections open at once and finds dead peers with TCP
//! keepalive, [`silent_connections`] ends connections that never spoke once draining
//! starts or their handshake deadline passes. One connection has at most
//! [`MAX_STREAMS_PER_CONNECTION`] streams open, and a request must be done
//! within [`REQUEST_DEADLINE`].
//! [`connections`] puts TLS in front when `[server.tls]` is set.
//!
//! Every service accepts requests compressed with gzip, deflate or zstd
//! (docs/contract.md §9), and compresses its replies as `server.compression`
//! says when the client accepts that encoding. tonic fixes both when a
//! service is built, so the key needs a restart. Accepting costs
//! uncompressed traffic nothing: tonic only looks at a message's
//! compressed flag, and reads `grpc-encoding` only when it is set.

pub mod admin;
pub mod batch;
pub mod connection_cap;
pub mod connections;
pub mod direct_route;
pub mod in_flight_limit;
pub mod silent_connections;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use status_actors::server_registry::ServerRegistry;
use status_actors::token_actor::TokenActor;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::codec::CompressionEncoding;
use tonic_health::pb::health_server::{Health, HealthServer};

use crate::admin_proto::admin_server::AdminServer;
use crate::batch_proto::batch_server::BatchServer;
use crate::calls::StatusCalls;
use crate::config::ReplyCompression;
use crate::drain::DrainSignal;
use crate::fd_budget::Caps;
use crate::metrics::{Metrics, Protocol};
use crate::proto::status_service_server::StatusServiceServer;
use crate::tls::TlsAcceptor;
use admin::{AdminService, ReloadRequest};
use batch::BatchService;
use direct_route::DirectRouteLayer;
use in_flight_limit::InFlightLimitLayer;
use status::StatusService;

/// Largest request accepted; real requests are a few dozen bytes. The HTTP/JSON port
/// takes the same bound.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Requests in flight beyond which new ones are shed with RESOURCE_EXHAUSTED.
/// Far above what 2 cores serve well (about 512 in flight) and far below
/// what would strain memory (a request in flight costs a few KiB).
pub const MAX_IN_FLIGHT: usize = 8192;

/// Streams one connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`),
/// so that no single connection can take the whole [`MAX_IN_FLIGHT`] budget.
/// Health `Watch` streams count against it too, which bounds what one
/// connection can make the server hold.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Longest a request may take, from its headers to its reply, arrival of the
/// whole body included: a request left one byte short is cut off (CANCELLED)
/// and gives its in-flight permit back. Far above any legitimate call (Redis
/// answers or fails within `command_timeout_ms` + 500 ms); streamed replies
/// (health `Watch`) are not bounded by it once their headers are sent.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Connections `admin_listen` holds at once: operators' statusctl and scripts, never the
/// clients' many; a fixed cap keeps the port from costing a share of `max_connections`'
/// file descriptors.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

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
/// With `tls`, both ports speak only TLS. At most `caps.listen` and `caps.admin`
/// connections are open at once on each. The future ends with the first port that fails,
/// or once both drained.
pub fn serve<H: Health>(
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    backends: Backends<H>,
    compression: ReplyCompression,
    caps: Caps,
    drain: DrainSignal,
) -> Result<
    impl Future<Output = Result<(), tonic::transport::Error>>,
    tonic_reflection::server::Error,
> {
    // Each port describes what it serves, and nothing else: the Admin API is neither
    // listed nor described on `listen`.
    let public_reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let admin_reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::ADMIN_FILE_DESCRIPTOR_SET)
    };
    let shed = backends.metrics.as_ref().map(|m| m.shed.clone());
    let reply = reply_encoding(compression);
    // Both reflection versions: grpcurl and older tools still ask v1alpha.
    let reflection_v1 = compressed!(public_reflection().build_v1()?, reply);
    let reflection_v1alpha = compressed!(public_reflection().build_v1alpha()?, reply);
    let admin_reflection_v1 = compressed!(admin_reflection().build_v1()?, reply);
    let admin_reflection_v1alpha = compressed!(admin_reflection().build_v1alpha()?, reply);
    let status_service = compressed!(
        StatusServiceServer::new(StatusService::new(StatusCalls::new(
            backends.registry.clone(),
            backends.tokens.clone(),
            backends.metrics.clone(),
            Protocol::Grpc,
        )))
        .max_decoding_message_size(MAX_REQUEST_BYTES),
        reply
    );
    let batch_service = compressed!(
        BatchServer::new(BatchService::new(
            backends.registry.clone(),
            backends.tokens.clone(),
            backends.metrics,
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
        limited(tonic::transport::Server::builder())
            .layer(InFlightLimitLayer::new(MAX_IN_FLIGHT, shed.clone()))
            .add_service(admin_service)
            .add_service(admin_reflection_v1)
            .add_service(admin_reflection_v1alpha)
            .serve_with_incoming_shutdown(
                connections::incoming(admin_listener, caps.admin, tls.clone(), drain.clone()),
                drain.clone().started(),
            )
    });
    let health = compressed!(backends.health, reply);
    let public = limited(tonic::transport::Server::builder())
        .layer(InFlightLimitLayer::new(MAX_IN_FLIGHT, shed))
        .layer(DirectRouteLayer::new(status_service))
        .add_service(batch_service)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            connections::incoming(listener, caps.listen, tls, drain.clone()),
            drain.started(),
        );
    Ok(async move {
        match admin {
            Some(admin) => tokio::try_join!(public, admin).map(|((), ())| ()),
            None => public.await,
        }
    })
}

/// The per-connection limits both ports share: streams per connection and the request
/// deadline (tonic's timeout sits outside the layers: when it fires, the call and its
/// permit are dropped). Dead peers are found by TCP keepalive on each accepted socket
/// ([`connection_cap`]), not by HTTP/2 PINGs: hyper's PING bookkeeping locks a mutex and
/// reads the clock on every frame, about 1.5 % of a call at 1 in flight.
fn limited(builder: tonic::transport::Server) -> tonic::transport::Server {
    builder
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .timeout(REQUEST_DEADLINE)
}
