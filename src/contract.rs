//! The facts of the contract that the server and its clients (statusctl) must agree on,
//! each defined once: the business error codes (docs/contract.md §1), the services gRPC
//! health reports, how much of a token logs may show (§3), and the exit codes of the
//! `status-server` process (§3).
//!
//! Clients read them from here instead of repeating the numbers, so a code the server
//! answers and the meaning a client prints for it cannot drift apart.

use crate::proto::status_service_server::SERVICE_NAME as STATUS_SERVICE;

/// Business error codes carried in the `error` field of the `message.StatusService`
/// replies: a refusal the server answers with, unlike gRPC statuses (infrastructure).
pub mod error_code {
    pub const SUCCESS: i32 = 0;
    pub const TOKEN_INVALID: i32 = 1010;
    pub const UID_INVALID: i32 = 1011;

    /// What `code` means, for people: `Some("uid invalid")`; `None` for a code the
    /// contract does not define.
    pub fn meaning(code: i32) -> Option<&'static str> {
        match code {
            SUCCESS => Some("success"),
            TOKEN_INVALID => Some("token invalid"),
            UID_INVALID => Some("uid invalid"),
            _ => None,
        }
    }
}

/// The services `grpc.health.v1.Health` reports: `""` (the whole server) and
/// `message.StatusService` (the name the generated code registers).
pub const HEALTH_SERVICES: [&str; 2] = ["", STATUS_SERVICE];

/// The characters of a token logs may show (never the whole token), and that excerpt of
/// a token: defined with the token rules in the actors crate.
pub use status_actors::token::{LOGGED_TOKEN_PREFIX, token_prefix_for_log};

/// Exit codes of the `status-server` process.
pub mod server_exit {
    /// Graceful shutdown: every accepted request finished within the grace period.
    pub const DRAINED: u8 = 0;
    /// A bad config, a failure to start, or a shutdown that had to cut requests off.
    pub const FAILURE: u8 = 1;
    /// A bad command line (the code clap exits with for usage errors).
    pub const USAGE: u8 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_business_code_has_a_meaning() {
        assert_eq!(error_code::meaning(error_code::SUCCESS), Some("success"));
        assert_eq!(error_code::meaning(1010), Some("token invalid"));
        assert_eq!(error_code::meaning(1011), Some("uid invalid"));
        assert_eq!(error_code::meaning(7), None);
    }

    #[test]
    fn health_names_the_deployed_service() {
        assert_eq!(HEALTH_SERVICES, ["", "message.StatusService"]);
    }
}
