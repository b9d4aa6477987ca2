//! What the config's unit tests share: sample configs, and parsing a text as if it were a
//! file whose every error is checked for the properties all errors must have.

use std::path::Path;

use super::{ConfigError, Settings};

pub(super) const PATH: &str = "config/status.toml";

/// docs/contract.md §4, verbatim.
pub(super) const EXAMPLE: &str = r#"[server]
listen = "0.0.0.0:50052"          # gRPC address
metrics_listen = "127.0.0.1:9464" # optional HTTP: /metrics (Prometheus text) and /healthz
shutdown_grace_ms = 10000

[redis]
url = "redis://127.0.0.1:6379"    # env STATUS_REDIS_URL overrides (for passwords)
token_ttl_secs = 86400            # 0: tokens never expire
command_timeout_ms = 1000
token_prefix = "utoken_"
login_count_key = "logincount"

[balancer]
poll_interval_ms = 1000           # how often the load hash is read
probe_interval_ms = 2000          # TCP probe of each chat server; 0 turns probing off

[[chat_servers]]                  # one table per chat server; names unique
name = "chatserver1"
host = "127.0.0.1"
port = 8090
"#;

/// docs/contract.md §7's example, verbatim.
pub(super) const STEERING_EXAMPLE: &str = r#"[balancer]
strategy = "least_loaded"     # "least_loaded" | "weighted" | "p2c"

[[chat_servers]]
name = "chatserver1"
host = "127.0.0.1"
port = 8090
weight = 1                    # an integer >= 1
max_connections = 0           # 0: unlimited
draining = false              # true: place no new users here
"#;

/// The smallest valid config; appended to configs that test one other key.
pub(super) const ONE_SERVER: &str =
    "[[chat_servers]]\nname = \"chat1\"\nhost = \"10.0.0.5\"\nport = 8090\n";

pub(super) fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(text, Path::new(PATH), None)
}

/// The error line for `text`, checked for the properties every error must have.
pub(super) fn error(text: &str) -> String {
    let message = parse(text)
        .expect_err("config should be rejected")
        .to_string();
    assert!(!message.contains('\n'), "not one line: {message:?}");
    assert!(
        message.starts_with(&format!("{PATH}: ")),
        "does not name the file: {message}"
    );
    message
}

pub(super) fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}
