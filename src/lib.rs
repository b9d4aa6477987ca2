//! status-server: the StatusServer of the chat system.
//!
//! [`server`] runs it (start, serve bound listeners under control events,
//! drain, stop); [`config`] turns the TOML file into validated settings.
//! Inside: `actors` starts, reloads and stops the actors, `grpc` is the gRPC
//! front end (one service per file), `http_api` the HTTP/JSON one (docs/contract.md §9),
//! both carrying the same `calls`; `http_endpoints` serves `/metrics` and `/healthz`; `tls`
//! loads `[server.tls]`, `redis_tls` the `[redis]` TLS files; `fd_budget` fits the connection
//! caps to the open-file limit. The actors and balancing rules live in the `status-actors`
//! crate (`actors/`). `contract` holds the facts clients share (error codes, health names, exit
//! codes). The specification is `docs/contract.md`.

mod accept_errors;
mod actors;
pub mod batch;
mod calls;
pub mod config;
pub mod contract;
mod drain;
mod fd_budget;
mod grpc;
mod health;
mod http_api;
mod http_endpoints;
pub mod log_writer;
mod metrics;
mod off_thread;
pub mod redact;
pub mod redis_tls;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod tls;

/// The gRPC port's limits on what one client can hold.
pub use grpc::{MAX_IN_FLIGHT, MAX_STREAMS_PER_CONNECTION, REQUEST_DEADLINE};

/// Code generated from `proto/message.proto` (package `message`): the
/// deployed wire contract.
pub mod proto {
    tonic::include_proto!("message");
}

/// Code generated from `proto/admin.proto` (package `statusadmin.v1`): the
/// operator API.
pub mod admin_proto {
    tonic::include_proto!("statusadmin.v1");
}

/// Code generated from `proto/batch.proto` (package `statusbatch.v1`): batches
/// of the StatusService calls (docs/contract.md §9), reusing `message`'s types.
pub mod batch_proto {
    // prost names `message`'s types by package, as `super::super::message`
    // from the module of `statusbatch.v1`: these two lines give them that path.
    use crate::proto as message;
    mod statusbatch {
        pub mod v1 {
            tonic::include_proto!("statusbatch.v1");
        }
    }
    pub use statusbatch::v1::*;
}

/// Descriptors of the protos served on `listen` (`message`, `statusbatch.v1`), for gRPC
/// server reflection there.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("public_descriptors");

/// Descriptors of `proto/admin.proto`, for gRPC server reflection on `admin_listen` only.
pub const ADMIN_FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("admin_descriptors");
