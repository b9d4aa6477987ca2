//! A configured ChatServer: where the StatusServer may send users, and how
//! the operator steers the balancer's use of it.
//!
//! The `name` is the field of the load hash the ChatServer publishes its
//! connection count under (docs/contract.md §2), so it is also the server's identity.

use std::num::NonZeroU64;

/// One ChatServer from the config, as clients are told to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChatServer {
    /// Field of the load hash; unique among the configured servers.
    pub name: String,
    /// Returned verbatim to clients in `GetChatServerRsp.host`.
    pub host: String,
    pub port: u16,
    /// How the balancer may use it (docs/contract.md §7).
    pub policy: ServerPolicy,
}

/// What the config says about placing users on one server: its share, its
/// capacity, and whether it takes new users at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerPolicy {
    /// Its share relative to the other servers' weights (`weighted` strategy).
    pub weight: NonZeroU64,
    /// Most users it may have by this instance's count; 0: no limit.
    pub max_connections: u64,
    /// Set in the config: place no new users here. An Admin call can drain
    /// it too; the table keeps that apart, so a reload does not undo it.
    pub draining: bool,
}

impl Default for ServerPolicy {
    /// As the config's defaults: weight 1, no limit, not draining.
    fn default() -> Self {
        ServerPolicy {
            weight: NonZeroU64::MIN,
            max_connections: 0,
            draining: false,
        }
    }
}
