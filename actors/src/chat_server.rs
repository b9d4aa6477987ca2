//! A configured ChatServer: where the StatusServer may send users.
//!
//! The `name` is the field of the load hash the ChatServer publishes its
//! connection count under (docs/contract.md §2), so it is also the server's identity.

/// One ChatServer from the config, as clients are told to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChatServer {
    /// Field of the load hash; unique among the configured servers.
    pub name: String,
    /// Returned verbatim to clients in `GetChatServerRsp.host`.
    pub host: String,
    pub port: u16,
}
