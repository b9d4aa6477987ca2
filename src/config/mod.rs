//! The config file (`status-server --config PATH`, docs/contract.md §4): the validated
//! [`Settings`] that the rest of the program sees, and [`Settings::load`] / [`Settings::parse`],
//! the only way to build them.
//!
//! Read in two stages, as in coreos/zincati: serde first reads the TOML into types that mirror
//! the file exactly (`raw`), then `validate` applies the defaults and checks every value,
//! producing `Settings`. The rest of the program only ever sees `Settings`, so it never starts
//! half-configured. A bad config stops start-up with one [`ConfigError`] line that names the
//! file and the problem (`errors`).
//!
//! A path ending in `.ini` is the C++ StatusServer's INI file instead (`ini`): it is turned
//! into the TOML document it stands for and goes through the same two stages. Either is read
//! bounded (`file`): a regular file of at most 1 MiB, and on a reload off the async threads
//! with a deadline ([`Settings::load_off_thread`]).

mod errors;
mod file;
pub mod ini;
mod raw;
#[cfg(test)]
mod testing;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::READ_DEADLINE;
use serde::Deserialize;
use status_actors::ChatServer;
pub use status_actors::redis_link::{LinkSettings, Password, TlsPem, Topology};

use crate::redis_tls::RedisTlsError;
use status_actors::strategy::StrategyKind;

pub use errors::{ConfigError, breaks_line};

use errors::Source;
use raw::RawConfig;

/// Environment variable that, when set and non-empty, replaces `redis.url`, so a password
/// need not be written into the config file.
pub const REDIS_URL_ENV: &str = "STATUS_REDIS_URL";

/// Environment variable that, when set and non-empty, is the password of every data-node
/// connection (the master, or every cluster node), in every mode.
pub const REDIS_PASSWORD_ENV: &str = "STATUS_REDIS_PASSWORD";

/// Everything the server needs, validated; built only by [`Settings::load`] / [`Settings::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub balancer: BalancerSettings,
    /// At least one, in file order; names unique and non-blank, hosts non-blank and free of
    /// whitespace, ports 1-65535. Both taken verbatim. Each with its policy (weight >= 1,
    /// `max_connections`, 0 = no limit, `draining`).
    pub chat_servers: Vec<ChatServer>,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// gRPC address.
    pub listen: SocketAddr,
    /// HTTP address for `/metrics` and `/healthz`.
    /// `None` when set to `""`: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// HTTP/JSON address (docs/contract.md §9); `None` (the default, or `""`): off.
    pub http_listen: Option<SocketAddr>,
    /// Where `statusadmin.v1.Admin` is served, and nowhere else (docs/contract.md §6);
    /// `None` when set to `""`: no Admin API.
    pub admin_listen: Option<SocketAddr>,
    /// How long in-flight requests may drain after SIGTERM/SIGINT; never zero.
    pub shutdown_grace: Duration,
    /// How gRPC replies are compressed, for clients that accept it
    /// (docs/contract.md §9); a restart key.
    pub compression: ReplyCompression,
    /// gRPC connections open at once; past it a new one is closed at once.
    /// A restart key.
    pub max_connections: usize,
    /// Threads that serve calls: 1 (the default) runs connections, actors and
    /// the Redis driver on one thread, so a call never changes thread; N > 1
    /// serves connections on N tokio workers beside the actors' thread
    /// (see `runtime`). A restart key.
    pub threads: usize,
    /// `[server.tls]`: the gRPC and HTTP/JSON ports speak only TLS; `None`: plaintext.
    /// Turning it on or off needs a restart; the files are re-read on reload.
    pub tls: Option<TlsFiles>,
}

/// `[server.tls]`: where the PEM files are, already resolved against the config file's
/// folder. Only the paths: the files are read when the server starts and on each reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, the server's own first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `Some`: only clients with a certificate signed by one of these CAs (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// `server.compression`: the encoding of gRPC replies. Requests may come
/// compressed with gzip, deflate or zstd whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplyCompression {
    /// Replies go uncompressed (the default).
    #[default]
    None,
    Gzip,
    Zstd,
}

impl ReplyCompression {
    /// Its config value.
    pub fn name(self) -> &'static str {
        match self {
            ReplyCompression::None => "none",
            ReplyCompression::Gzip => "gzip",
            ReplyCompression::Zstd => "zstd",
        }
    }
}

/// `[redis]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Where Redis is (`mode` and its keys). A standalone `url` is accepted by
    /// `redis::Client::open` and already replaced by `STATUS_REDIS_URL` when that is set.
    pub topology: Topology,
    /// From `STATUS_REDIS_PASSWORD` (never from the file); `None` when unset or empty.
    pub password: Option<Password>,
    /// Replicas that must acknowledge each token write (`WAIT`); 0: no wait.
    pub min_replicas_ack: u64,
    /// `EX` of stored tokens; 0 means tokens never expire.
    pub token_ttl_secs: u64,
    /// Upper bound on one Redis command; never zero.
    pub command_timeout: Duration,
    /// Token key of user `uid` is `{token_prefix}{uid}`; may be empty.
    pub token_prefix: String,
    /// Hash of chat server loads; never blank.
    pub login_count_key: String,
    /// `tls_ca`, `tls_cert`, `tls_key`; set only when a URL of the mode is `rediss://`.
    pub tls: RedisTlsFiles,
}

/// `[redis]` `tls_ca`, `tls_cert` and `tls_key`: where the PEM files are, already resolved
/// against the config file's folder. Only the paths: the files are read each time the Redis
/// link is set up (at start and on each reload, [`RedisSettings::link`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTlsFiles {
    /// CA bundle trusted instead of the system roots.
    pub ca: Option<PathBuf>,
    /// `tls_cert` and `tls_key`, always both: a client certificate for Redis.
    pub client: Option<ClientFiles>,
}

/// A client certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[balancer]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerSettings {
    /// How often the load hash is read; never zero.
    pub poll_interval: Duration,
    /// How often chat servers are TCP-probed; `None` when `probe_interval_ms = 0` (probing off).
    pub probe_interval: Option<Duration>,
    /// Which strategy chooses among the servers that may take a user (docs/contract.md §7).
    pub strategy: StrategyKind,
}

impl RedisSettings {
    /// The standalone node's URL; `None` in sentinel and cluster mode.
    pub fn url(&self) -> Option<&str> {
        match &self.topology {
            Topology::Standalone { url } => Some(url),
            Topology::Sentinel { .. } | Topology::Cluster { .. } => None,
        }
    }

    /// What the Redis link needs, the TLS files read now.
    ///
    /// # Errors
    /// A `tls_*` file that is missing, unreadable or not PEM, or a key that does not go with
    /// its certificate.
    pub fn link(&self) -> Result<LinkSettings, RedisTlsError> {
        Ok(self.link_with(crate::redis_tls::read_files(&self.tls)?))
    }

    /// What the Redis link needs, with `tls` read from the TLS files already.
    pub fn link_with(&self, tls: Option<TlsPem>) -> LinkSettings {
        LinkSettings {
            topology: self.topology.clone(),
            password: self.password.clone(),
            command_timeout: self.command_timeout,
            tls,
        }
    }

    /// Where Redis is, for a log line: URLs with their passwords masked.
    pub fn describe(&self) -> String {
        let urls = |urls: &[String]| {
            urls.iter()
                .map(|u| crate::redact::redact_url(u))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.topology {
            Topology::Standalone { url } => crate::redact::redact_url(url),
            Topology::Sentinel {
                sentinels,
                master_name,
            } => format!("sentinel master {master_name:?} via [{}]", urls(sentinels)),
            Topology::Cluster { nodes } => format!("cluster via [{}]", urls(nodes)),
        }
    }
}

impl Settings {
    /// Reads `path`, applies env `STATUS_REDIS_URL` and `STATUS_REDIS_PASSWORD` when set and
    /// non-empty. A path ending in `.ini` (any case) is read as the C++ server's INI file
    /// ([`ini`]).
    ///
    /// # Errors
    /// The file cannot be read (or is not a regular file, or is larger than 1 MiB),
    /// `STATUS_REDIS_URL` is not UTF-8, or [`Settings::parse`]
    /// (for INI: [`ini::parse`]) fails.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = file::read_text(path)?;
        let url_override = match std::env::var_os(REDIS_URL_ENV) {
            None => None,
            Some(value) => match value.into_string() {
                Ok(url) => Some(url),
                // Silently falling back to the file's URL would connect somewhere unintended.
                Err(_) => {
                    return Err(ConfigError::outside_contents(
                        path,
                        format!("{REDIS_URL_ENV} is set but is not valid UTF-8"),
                    ));
                }
            },
        };
        let mut settings = if ini::is_ini_path(path) {
            let config = ini::parse(&text, path, url_override.as_deref())?;
            config.log_skipped_sections();
            config.settings
        } else {
            Self::parse(&text, path, url_override.as_deref())?
        };
        settings.redis.password = match std::env::var_os(REDIS_PASSWORD_ENV) {
            None => None,
            Some(value) => match value.into_string() {
                Ok(password) if password.is_empty() => None,
                Ok(password) => Some(Password(password)),
                Err(_) => {
                    return Err(ConfigError::outside_contents(
                        path,
                        format!("{REDIS_PASSWORD_ENV} is set but is not valid UTF-8"),
                    ));
                }
            },
        };
        Ok(settings)
    }

    /// Pure: parses `text` (as if read from `path`, used only in messages);
    /// `redis_url_override` replaces `redis.url` when `Some` and non-empty.
    ///
    /// # Errors
    /// The first problem found: invalid TOML, an unknown key, a wrong type, or a value that
    /// fails its check (docs/contract.md §3 lists them).
    pub fn parse(
        text: &str,
        path: &Path,
        redis_url_override: Option<&str>,
    ) -> Result<Settings, ConfigError> {
        let src = Source { text, path };
        // Parsing the document before deserializing it separates "this is not TOML"
        // from "this TOML is not our config", which deserve different messages.
        let document = toml::Deserializer::parse(text).map_err(|e| src.syntax_error(&e))?;
        let raw = RawConfig::deserialize(document).map_err(|e| src.schema_error(&e))?;
        raw.validate(&src, redis_url_override.filter(|url| !url.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use status_actors::ServerPolicy;

    use super::*;
    use crate::config::testing::{EXAMPLE, ONE_SERVER, PATH, STEERING_EXAMPLE, parse};

    fn chat_server(name: &str, host: &str, port: u16) -> ChatServer {
        ChatServer {
            name: name.to_owned(),
            host: host.to_owned(),
            port,
            policy: ServerPolicy::default(),
        }
    }

    fn steered(
        server: ChatServer,
        weight: u64,
        max_connections: u64,
        draining: bool,
    ) -> ChatServer {
        ChatServer {
            policy: ServerPolicy {
                weight: NonZeroU64::new(weight).expect("test weights are positive"),
                max_connections,
                draining,
            },
            ..server
        }
    }

    fn defaults_with(chat_servers: Vec<ChatServer>) -> Settings {
        Settings {
            server: ServerSettings {
                listen: "0.0.0.0:50052".parse().expect("literal"),
                metrics_listen: Some("127.0.0.1:9464".parse().expect("literal")),
                http_listen: None,
                admin_listen: Some("127.0.0.1:50053".parse().expect("literal")),
                shutdown_grace: Duration::from_millis(10_000),
                compression: ReplyCompression::None,
                max_connections: 10_000,
                threads: 1,
                tls: None,
            },
            redis: RedisSettings {
                topology: Topology::Standalone {
                    url: "redis://127.0.0.1:6379".to_owned(),
                },
                password: None,
                min_replicas_ack: 0,
                token_ttl_secs: 86_400,
                command_timeout: Duration::from_millis(1_000),
                token_prefix: "utoken_".to_owned(),
                login_count_key: "logincount".to_owned(),
                tls: RedisTlsFiles::default(),
            },
            balancer: BalancerSettings {
                poll_interval: Duration::from_millis(1_000),
                probe_interval: Some(Duration::from_millis(2_000)),
                strategy: StrategyKind::default(),
            },
            chat_servers,
        }
    }

    // ---- accepted configs ----

    #[test]
    fn contract_example_parses() {
        let settings = parse(EXAMPLE).expect("the contract's example is valid");
        assert_eq!(
            settings,
            defaults_with(vec![chat_server("chatserver1", "127.0.0.1", 8090)])
        );
    }

    #[test]
    fn shipped_config_parses_to_the_defaults_and_two_servers() {
        let shipped = include_str!("../../config/status.toml");
        let settings = parse(shipped).expect("the shipped config is valid");
        assert_eq!(
            settings,
            defaults_with(vec![
                chat_server("chatserver1", "127.0.0.1", 8090),
                chat_server("chatserver2", "127.0.0.1", 8091),
            ])
        );
        // Its header says only [[chat_servers]] is required and the rest shows the defaults.
        let first_table = shipped
            .find("\n[[chat_servers]]")
            .expect("the shipped config has a [[chat_servers]] table");
        let chat_servers_only = &shipped[first_table..];
        assert_eq!(parse(chat_servers_only).expect("valid"), settings);
    }

    #[test]
    fn the_steering_example_parses() {
        let settings = parse(STEERING_EXAMPLE).expect("docs/contract.md §7's example is valid");
        assert_eq!(
            settings,
            defaults_with(vec![chat_server("chatserver1", "127.0.0.1", 8090)]),
            "it shows the defaults"
        );
        for name in ["weighted", "p2c"] {
            let text = STEERING_EXAMPLE.replace("\"least_loaded\"     #", &format!("{name:?} #"));
            assert_eq!(parse(&text).expect("valid").balancer.strategy.name(), name);
        }
    }

    #[test]
    fn minimal_config_gets_every_default() {
        let settings = parse(ONE_SERVER).expect("valid");
        assert_eq!(
            settings,
            defaults_with(vec![chat_server("chat1", "10.0.0.5", 8090)])
        );
    }

    #[test]
    fn every_key_is_read() {
        let text = r#"
[server]
listen = "[::1]:7000"
metrics_listen = "10.1.2.3:9000"
http_listen = "0.0.0.0:8080"
admin_listen = "10.1.2.3:9001"
shutdown_grace_ms = 2500
compression = "zstd"
max_connections = 500
threads = 4

[redis]
mode = "standalone"
url = "redis://:secret@redis.internal:6380/2"
min_replicas_ack = 2
token_ttl_secs = 0
command_timeout_ms = 250
token_prefix = ""
login_count_key = "loads"

[balancer]
poll_interval_ms = 300
probe_interval_ms = 0
strategy = "p2c"

[[chat_servers]]
name = "a"
host = "chat-a.internal"
port = 1
weight = 5
max_connections = 1000
draining = true

[[chat_servers]]
name = "b"
host = "10.0.0.9"
port = 65535
weight = 18446744073709551615
max_connections = 0
draining = false
"#;
        let settings = parse(text).expect("valid");
        assert_eq!(
            settings,
            Settings {
                server: ServerSettings {
                    listen: "[::1]:7000".parse().expect("literal"),
                    metrics_listen: Some("10.1.2.3:9000".parse().expect("literal")),
                    http_listen: Some("0.0.0.0:8080".parse().expect("literal")),
                    admin_listen: Some("10.1.2.3:9001".parse().expect("literal")),
                    shutdown_grace: Duration::from_millis(2500),
                    compression: ReplyCompression::Zstd,
                    max_connections: 500,
                    threads: 4,
                    tls: None,
                },
                redis: RedisSettings {
                    topology: Topology::Standalone {
                        url: "redis://:secret@redis.internal:6380/2".to_owned(),
                    },
                    password: None,
                    min_replicas_ack: 2,
                    token_ttl_secs: 0,
                    command_timeout: Duration::from_millis(250),
                    token_prefix: String::new(),
                    login_count_key: "loads".to_owned(),
                    tls: RedisTlsFiles::default(),
                },
                balancer: BalancerSettings {
                    poll_interval: Duration::from_millis(300),
                    probe_interval: None,
                    strategy: status_actors::strategy::by_name("p2c").expect("a strategy"),
                },
                // Verbatim, in file order.
                chat_servers: vec![
                    steered(chat_server("a", "chat-a.internal", 1), 5, 1000, true),
                    steered(chat_server("b", "10.0.0.9", 65535), u64::MAX, 0, false),
                ],
            }
        );
    }

    #[test]
    fn inline_chat_servers_are_accepted() {
        let text = r#"chat_servers = [{ name = "x", host = "h", port = 9 }]"#;
        let settings = parse(text).expect("valid");
        assert_eq!(settings.chat_servers, vec![chat_server("x", "h", 9)]);
    }

    #[test]
    fn empty_env_override_is_ignored() {
        let text = format!("[redis]\nurl = \"redis://from-file:6379\"\n{ONE_SERVER}");
        let settings = Settings::parse(&text, Path::new(PATH), Some("")).expect("valid");
        assert_eq!(
            settings.redis.topology,
            Topology::Standalone {
                url: "redis://from-file:6379".to_owned()
            }
        );
    }

    #[test]
    fn missing_file() {
        let path = Path::new("/nonexistent/status-server-test/status.toml");
        let message = Settings::load(path).expect_err("missing file").to_string();
        assert_eq!(
            message,
            "/nonexistent/status-server-test/status.toml: cannot read: No such file or \
             directory (os error 2)"
        );
    }

    #[test]
    fn tls_paths_are_taken_from_the_config_files_folder() {
        let text = format!(
            "{EXAMPLE}\n[server.tls]\ncert = \"certs/server.crt\"\nkey = \"/etc/status/server.key\"\n\
             client_ca = \"ca.crt\"\n"
        );
        let settings = Settings::parse(&text, Path::new(PATH), None).expect("valid");
        assert_eq!(
            settings.server.tls,
            Some(TlsFiles {
                cert: PathBuf::from("config/certs/server.crt"),
                key: PathBuf::from("/etc/status/server.key"),
                client_ca: Some(PathBuf::from("config/ca.crt")),
            })
        );
    }

    #[test]
    fn tls_needs_a_cert_and_a_key() {
        let text = format!("{EXAMPLE}\n[server.tls]\ncert = \"server.crt\"\n");
        let message = Settings::parse(&text, Path::new(PATH), None)
            .expect_err("no key")
            .to_string();
        assert!(message.contains("key"), "{message}");
        let text = format!("{EXAMPLE}\n[server.tls]\ncert = \"\"\nkey = \"k\"\n");
        let message = Settings::parse(&text, Path::new(PATH), None)
            .expect_err("empty cert")
            .to_string();
        assert!(message.contains("server.tls.cert is empty"), "{message}");
    }
}
