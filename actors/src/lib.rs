//! The actors of status-server and the pure rules they apply.
//!
//! - [`ServerRegistry`](server_registry::ServerRegistry) owns the ChatServer
//!   map ([`server_table`]) and chooses where each user goes: which servers
//!   may take one ([`balance`]), then which of them ([`strategy`]).
//! - [`TokenActor`](token_actor::TokenActor) owns the token side of Redis:
//!   mints, stores and checks login tokens ([`token`]).
//! - [`LoadPoller`](load_poller::LoadPoller) reads the ChatServers' load hash
//!   and probes them, and tells the registry.
//!
//! The token store and the polls each notice Redis outages the same way
//! ([`outage`]).
//!
//! All balancing state lives inside these actors; nothing is shared behind a
//! lock. Each actor stops on [`Shutdown`].

pub mod balance;
pub mod chat_server;
pub mod cluster_link;
pub mod load_poller;
pub mod outage;
pub mod redis_link;
pub mod sentinel_link;
pub mod server_registry;
pub mod server_table;
pub mod strategy;
pub mod token;
pub mod token_actor;

pub use chat_server::{ChatServer, ServerPolicy};

/// Asks an actor to stop; sent in order by `main` once the gRPC server drained.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct Shutdown;
