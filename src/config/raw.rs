//! Stage 1 of reading the config: the file exactly as written, as serde reads it.
//!
//! Every key is optional here (stage 2 applies the defaults) and unknown keys are rejected.
//! The values stage 2 checks are wrapped in [`toml::Spanned`], so that a rejected value can
//! still be reported with its line.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of [server], [redis], [balancer] and [[chat_servers]]"
)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) redis: RawRedis,
    #[serde(default)]
    pub(super) balancer: RawBalancer,
    pub(super) chat_servers: Option<Spanned<Vec<Spanned<RawChatServer>>>>,
}

// Integers are read as `Int` rather than as the target type, so that negative or oversized
// values reach `validate` and get our message, with the value in it, instead of serde's.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [server] table")]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) metrics_listen: Option<Spanned<String>>,
    pub(super) http_listen: Option<Spanned<String>>,
    pub(super) admin_listen: Option<Spanned<String>>,
    pub(super) shutdown_grace_ms: Option<Spanned<Int>>,
    pub(super) compression: Option<Spanned<String>>,
    pub(super) max_connections: Option<Spanned<Int>>,
    pub(super) threads: Option<Spanned<Int>>,
    pub(super) tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [server.tls] table with cert, key and optionally client_ca"
)]
pub(super) struct RawTls {
    pub(super) cert: Spanned<String>,
    pub(super) key: Spanned<String>,
    pub(super) client_ca: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [redis] table")]
pub(super) struct RawRedis {
    pub(super) mode: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) sentinels: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) master_name: Option<Spanned<String>>,
    pub(super) nodes: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) min_replicas_ack: Option<Spanned<Int>>,
    pub(super) token_ttl_secs: Option<Spanned<Int>>,
    pub(super) command_timeout_ms: Option<Spanned<Int>>,
    // Any string is a valid prefix (even ""), so there is nothing to point at.
    pub(super) token_prefix: Option<String>,
    pub(super) login_count_key: Option<Spanned<String>>,
    pub(super) tls_ca: Option<Spanned<String>>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [balancer] table")]
pub(super) struct RawBalancer {
    pub(super) poll_interval_ms: Option<Spanned<Int>>,
    pub(super) probe_interval_ms: Option<Spanned<Int>>,
    pub(super) strategy: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [[chat_servers]] table with name, host and port"
)]
pub(super) struct RawChatServer {
    pub(super) name: Spanned<String>,
    pub(super) host: Spanned<String>,
    pub(super) port: Spanned<Int>,
    pub(super) weight: Option<Spanned<Int>>,
    pub(super) max_connections: Option<Spanned<Int>>,
    // Any bool is valid, and serde names the line of a value of another type.
    pub(super) draining: Option<bool>,
}

/// Any TOML integer, even beyond i64 (toml hands those over as i128/u128), so that a huge
/// value is reported with our message and the value rather than as a type mismatch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Int(pub(super) i128);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;

        impl serde::de::Visitor<'_> for IntVisitor {
            type Value = Int;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v.into()))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(v.into()))
            }

            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Int, E> {
                Ok(Int(v))
            }

            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Int, E> {
                i128::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom(format!("integer {v} is too large")))
            }
        }

        deserializer.deserialize_i128(IntVisitor)
    }
}

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{ONE_SERVER, assert_mentions, error};

    #[test]
    fn unknown_top_level_key() {
        let message = error(&format!("{ONE_SERVER}\nverbose = true\n"));
        // The key lands after [[chat_servers]], so TOML puts it inside that table.
        assert_mentions(&message, &["line 6: ", "unknown key `verbose`"]);
        let message = error(&format!("verbose = true\n{ONE_SERVER}"));
        assert_mentions(&message, &["line 1: ", "unknown key `verbose`", "`server`"]);
    }

    #[test]
    fn unknown_key_in_section() {
        let message = error(&format!(
            "[redis]\nurl = \"redis://x\"\npassword = \"pw\"\n{ONE_SERVER}"
        ));
        assert_mentions(
            &message,
            &["line 3: ", "unknown key `password`", "`login_count_key`"],
        );
    }

    #[test]
    fn unknown_key_in_chat_server() {
        let message = error(&format!("{ONE_SERVER}priority = 3\n"));
        assert_mentions(&message, &["line 5: ", "unknown key `priority`", "`port`"]);
    }

    #[test]
    fn unknown_section() {
        let message = error(&format!("[metrics]\nlisten = \"0.0.0.0:1\"\n{ONE_SERVER}"));
        assert_mentions(&message, &["line 1: ", "unknown key `metrics`"]);
    }

    #[test]
    fn wrong_type_names_key_value_and_line() {
        let message = error("[[chat_servers]]\nname = \"chat1\"\nhost = \"h\"\nport = \"8090\"\n");
        assert_mentions(
            &message,
            &["line 4: ", "port", "\"8090\"", "expected an integer"],
        );

        let message = error(&format!("[server]\nlisten = 50052\n{ONE_SERVER}"));
        assert_mentions(
            &message,
            &["line 2: ", "listen", "50052", "expected a string"],
        );

        let message = error(&format!("[balancer]\npoll_interval_ms = 1.5\n{ONE_SERVER}"));
        assert_mentions(&message, &["line 2: ", "poll_interval_ms", "1.5"]);

        let message = error(&format!("server = 3\n{ONE_SERVER}"));
        assert_mentions(&message, &["line 1: ", "server", "`3`", "[server] table"]);
    }

    #[test]
    fn missing_key_in_chat_server() {
        let message = error("[[chat_servers]]\nname = \"chat1\"\nport = 8090\n");
        assert_mentions(
            &message,
            &["line 1: ", "[[chat_servers]]", "missing key `host`"],
        );
    }

    #[test]
    fn table_where_a_value_belongs() {
        let message = error(&format!(
            "{ONE_SERVER}[server.listen] # oops\nip = \"0.0.0.0\"\n"
        ));
        assert_mentions(
            &message,
            &["line 5: ", "[server.listen]: ", "expected a string"],
        );
    }

    #[test]
    fn port_beyond_any_integer_type() {
        let message = error(&format!(
            "[[chat_servers]]\nname = \"c\"\nhost = \"h\"\nport = 1{}\n",
            "0".repeat(60)
        ));
        assert_mentions(&message, &["line 4: ", "port"]);
    }
}
