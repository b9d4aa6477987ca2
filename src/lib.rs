//! status-server: the StatusServer of the chat system.
//!
//! `server` wires everything; `status_service` is the gRPC front end; the
//! actors and balancing rules live in the `status-actors` crate (`actors/`).

pub mod config;
pub mod in_flight_limit;
pub mod reload;
pub mod server;
pub mod signals;
pub mod status_service;

/// Code generated from `proto/message.proto` (package `message`).
pub mod proto {
    tonic::include_proto!("message");
}
