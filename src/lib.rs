//! status-server: the StatusServer of the chat system.
//!
//! `server` wires everything; `status_service` is the gRPC front end; the
//! actors and balancing rules live in the `status-actors` crate (`actors/`);
//! `contract` holds the facts clients share (error codes, health names, exit
//! codes).

pub mod admin_service;
pub mod config;
pub mod contract;
pub mod drain;
pub mod health;
pub mod http_endpoints;
pub mod in_flight_limit;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod signals;
pub mod silent_connections;
pub mod status_service;

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

/// Descriptors of both protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptors");
