//! Stage 2 of reading the config: the raw file becomes [`Settings`], with the defaults
//! applied and every value checked.
//!
//! The first value that fails its check is the error, naming the key, the value and its line.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU64;
use std::time::Duration;

use status_actors::strategy::{self, StrategyKind};
use status_actors::{ChatServer, ServerPolicy};
use toml::Spanned;

use super::errors::Source;
use super::raw::{Int, RawChatServer, RawConfig, RawRedis, RawTls};
use super::{
    BalancerSettings, ClientFiles, ConfigError, REDIS_URL_ENV, RedisSettings, RedisTlsFiles,
    ReplyCompression, ServerSettings, Settings, TlsFiles, Topology,
};
use crate::redact::redact_url;

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 50052);
const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);
const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 50053);
const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// Well under a default file-descriptor limit raised for a server (65536), so that
/// the probes, Redis and the other ports always find a descriptor.
const DEFAULT_MAX_CLIENT_CONNECTIONS: u64 = 10_000;
/// One thread: measured faster than several on every load level (src/runtime.rs).
const DEFAULT_THREADS: u64 = 1;
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_TOKEN_TTL_SECS: u64 = 86_400;
const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 1_000;
const DEFAULT_TOKEN_PREFIX: &str = "utoken_";
const DEFAULT_LOGIN_COUNT_KEY: &str = "logincount";
const DEFAULT_POLL_INTERVAL_MS: u64 = 1_000;
const DEFAULT_PROBE_INTERVAL_MS: u64 = 2_000;
const DEFAULT_WEIGHT: u64 = 1;
const DEFAULT_MAX_CONNECTIONS: u64 = 0;

/// Redis refuses `SET .. EX n` once `n` seconds, in milliseconds plus the current time,
/// overflow an i64 ("invalid expire time"). Stay far below that so a TTL that Redis would
/// reject on every login is caught at start-up instead. 10^15 s is about 31 million years.
const MAX_TOKEN_TTL_SECS: u64 = 1_000_000_000_000_000;

impl RawConfig {
    pub(super) fn validate(
        self,
        src: &Source,
        url_override: Option<&str>,
    ) -> Result<Settings, ConfigError> {
        let server = ServerSettings {
            listen: socket_addr(src, "server.listen", self.server.listen, DEFAULT_LISTEN)?,
            metrics_listen: match self.server.metrics_listen {
                // An empty address turns the metrics listener off.
                Some(raw) if raw.get_ref().is_empty() => None,
                raw => Some(socket_addr(
                    src,
                    "server.metrics_listen",
                    raw,
                    DEFAULT_METRICS_LISTEN,
                )?),
            },
            http_listen: match self.server.http_listen {
                // Off unless set; an empty address also means off.
                None => None,
                Some(raw) if raw.get_ref().is_empty() => None,
                Some(raw) => Some(parse_socket_addr(src, "server.http_listen", &raw)?),
            },
            admin_listen: match self.server.admin_listen {
                // An empty address turns the Admin port off.
                Some(raw) if raw.get_ref().is_empty() => None,
                raw => Some(socket_addr(
                    src,
                    "server.admin_listen",
                    raw,
                    DEFAULT_ADMIN_LISTEN,
                )?),
            },
            shutdown_grace: Duration::from_millis(checked_int(
                src,
                "server.shutdown_grace_ms",
                self.server.shutdown_grace_ms,
                DEFAULT_SHUTDOWN_GRACE_MS,
                &POSITIVE_MILLIS,
            )?),
            compression: reply_compression(src, self.server.compression)?,
            max_connections: checked_int(
                src,
                "server.max_connections",
                self.server.max_connections,
                DEFAULT_MAX_CLIENT_CONNECTIONS,
                &CLIENT_CONNECTIONS,
            )? as usize,
            threads: checked_int(
                src,
                "server.threads",
                self.server.threads,
                DEFAULT_THREADS,
                &THREADS,
            )? as usize,
            tls: self.server.tls.map(|raw| tls_files(src, raw)).transpose()?,
        };
        let redis = self.redis.validate(src, url_override)?;
        let probe_interval_ms = checked_int(
            src,
            "balancer.probe_interval_ms",
            self.balancer.probe_interval_ms,
            DEFAULT_PROBE_INTERVAL_MS,
            &PROBE_MILLIS,
        )?;
        let balancer = BalancerSettings {
            poll_interval: Duration::from_millis(checked_int(
                src,
                "balancer.poll_interval_ms",
                self.balancer.poll_interval_ms,
                DEFAULT_POLL_INTERVAL_MS,
                &POSITIVE_MILLIS,
            )?),
            probe_interval: (probe_interval_ms > 0)
                .then(|| Duration::from_millis(probe_interval_ms)),
            strategy: balancer_strategy(src, self.balancer.strategy)?,
        };
        let chat_servers = chat_servers(src, self.chat_servers)?;
        Ok(Settings {
            server,
            redis,
            balancer,
            chat_servers,
        })
    }
}

impl RawRedis {
    fn validate(
        self,
        src: &Source,
        url_override: Option<&str>,
    ) -> Result<RedisSettings, ConfigError> {
        let mode = match &self.mode {
            None => "standalone",
            Some(mode) => match mode.get_ref().as_str() {
                "standalone" => "standalone",
                "sentinel" => "sentinel",
                "cluster" => "cluster",
                other => {
                    return Err(src.at(
                        mode.span(),
                        format!(
                            "redis.mode = {other:?}: must be \"standalone\", \"sentinel\" or \"cluster\""
                        ),
                    ));
                }
            },
        };
        // A key of another mode is a mistake, never silently ignored.
        let keys_of_other_modes = [
            ("url", "standalone", self.url.as_ref().map(Spanned::span)),
            (
                "sentinels",
                "sentinel",
                self.sentinels.as_ref().map(Spanned::span),
            ),
            (
                "master_name",
                "sentinel",
                self.master_name.as_ref().map(Spanned::span),
            ),
            ("nodes", "cluster", self.nodes.as_ref().map(Spanned::span)),
        ];
        for (key, owner, span) in keys_of_other_modes {
            if let Some(span) = span
                && owner != mode
            {
                return Err(src.at(
                    span,
                    format!("redis.{key}: only for mode = \"{owner}\" (mode is \"{mode}\")"),
                ));
            }
        }
        if mode != "standalone"
            && let Some(url) = url_override
        {
            return Err(src.no_line(format!(
                "{REDIS_URL_ENV} = {:?} is set, but redis.mode = \"{mode}\" has no url \
                 (unset it, or use mode = \"standalone\")",
                redact_url(url)
            )));
        }
        let tls_files_set = [&self.tls_ca, &self.tls_cert, &self.tls_key]
            .iter()
            .any(|raw| {
                raw.as_ref()
                    .is_some_and(|raw| !raw.get_ref().trim().is_empty())
            });
        let topology = match mode {
            "sentinel" => Topology::Sentinel {
                // With certificates of our own the crate gives every sentinel one user and
                // password.
                sentinels: url_list(src, "redis.sentinels", self.sentinels, mode, tls_files_set)?,
                master_name: match self.master_name {
                    Some(name) if !name.get_ref().trim().is_empty() => name.into_inner(),
                    Some(name) => {
                        return Err(src.at(
                            name.span(),
                            "redis.master_name = \"\": must name the master the sentinels monitor",
                        ));
                    }
                    None => {
                        return Err(src.no_line(
                            "redis.master_name: required with mode = \"sentinel\" \
                             (the master the sentinels monitor)",
                        ));
                    }
                },
            },
            "cluster" => Topology::Cluster {
                nodes: url_list(src, "redis.nodes", self.nodes, mode, false)?,
            },
            _ => Topology::Standalone {
                url: standalone_url(src, self.url, url_override)?,
            },
        };
        let min_replicas_ack = checked_int(
            src,
            "redis.min_replicas_ack",
            self.min_replicas_ack,
            0,
            &MIN_REPLICAS_ACK,
        )?;

        let token_ttl_secs = checked_int(
            src,
            "redis.token_ttl_secs",
            self.token_ttl_secs,
            DEFAULT_TOKEN_TTL_SECS,
            &TOKEN_TTL_SECS,
        )?;

        let command_timeout = Duration::from_millis(checked_int(
            src,
            "redis.command_timeout_ms",
            self.command_timeout_ms,
            DEFAULT_COMMAND_TIMEOUT_MS,
            &POSITIVE_MILLIS,
        )?);

        let login_count_key = match self.login_count_key {
            None => DEFAULT_LOGIN_COUNT_KEY.to_owned(),
            Some(key) if key.get_ref().trim().is_empty() => {
                return Err(src.at(
                    key.span(),
                    format!(
                        "redis.login_count_key = {:?}: must not be empty \
                         (it names the hash the chat servers write their loads to)",
                        key.get_ref()
                    ),
                ));
            }
            // Verbatim: it must match, byte for byte, the key the chat servers write.
            Some(key) => key.into_inner(),
        };

        let tls = redis_tls_files(src, &topology, self.tls_ca, self.tls_cert, self.tls_key)?;

        Ok(RedisSettings {
            topology,
            password: None,
            min_replicas_ack,
            token_ttl_secs,
            command_timeout,
            token_prefix: self
                .token_prefix
                .unwrap_or_else(|| DEFAULT_TOKEN_PREFIX.to_owned()),
            login_count_key,
            tls,
        })
    }
}

/// `redis.tls_ca`, `tls_cert` and `tls_key`: `""` is unset; a certificate needs its key and
/// the other way round; any of them only where a URL of the mode is `rediss://` (with the
/// others, they would do nothing). Paths are taken from the config file's folder.
fn redis_tls_files(
    src: &Source,
    topology: &Topology,
    ca: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
) -> Result<RedisTlsFiles, ConfigError> {
    let set = |raw: Option<Spanned<String>>| raw.filter(|raw| !raw.get_ref().trim().is_empty());
    let (ca, cert, key) = (set(ca), set(cert), set(key));
    let given = [("tls_ca", &ca), ("tls_cert", &cert), ("tls_key", &key)];
    if let Some((name, Some(raw))) = given.iter().find(|(_, raw)| raw.is_some()) {
        let urls: Vec<&String> = match topology {
            Topology::Standalone { url } => vec![url],
            Topology::Sentinel { sentinels, .. } => sentinels.iter().collect(),
            Topology::Cluster { nodes } => nodes.iter().collect(),
        };
        if !urls.iter().any(|url| is_tls_url(url)) {
            return Err(src.at(
                raw.span(),
                format!(
                    "redis.{name} = {:?}: only for rediss:// URLs, and no URL of mode \"{}\" \
                     is one",
                    raw.get_ref(),
                    topology.mode()
                ),
            ));
        }
    }
    let folder = src.path.parent().unwrap_or(std::path::Path::new(""));
    let alone = |raw: Spanned<String>, this: &str, other: &str| {
        src.at(
            raw.span(),
            format!(
                "redis.{this} = {:?}: needs redis.{other} too (a client certificate and its \
                 key go together)",
                raw.get_ref()
            ),
        )
    };
    let client = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(ClientFiles {
            cert: folder.join(cert.get_ref()),
            key: folder.join(key.get_ref()),
        }),
        (Some(cert), None) => return Err(alone(cert, "tls_cert", "tls_key")),
        (None, Some(key)) => return Err(alone(key, "tls_key", "tls_cert")),
    };
    Ok(RedisTlsFiles {
        ca: ca.map(|ca| folder.join(ca.get_ref())),
        client,
    })
}

/// Whether `url` asks for TLS (`rediss://`); it has passed [`check_redis_url`].
fn is_tls_url(url: &str) -> bool {
    matches!(
        redis::IntoConnectionInfo::into_connection_info(url).map(|info| info.addr().clone()),
        Ok(redis::ConnectionAddr::TcpTls { .. })
    )
}

/// `redis.url`, or `STATUS_REDIS_URL` when set, or the default.
fn standalone_url(
    src: &Source,
    url: Option<Spanned<String>>,
    url_override: Option<&str>,
) -> Result<String, ConfigError> {
    match (url_override, url) {
        (Some(url), _) => {
            // Not in the file, so no line; say where it came from instead.
            check_redis_url(url).map_err(|why| {
                src.no_line(format!(
                    "{REDIS_URL_ENV} = {:?} (replaces redis.url): {why}",
                    redact_url(url)
                ))
            })?;
            Ok(url.to_owned())
        }
        (None, Some(url)) => {
            check_redis_url(url.get_ref()).map_err(|why| {
                src.at(
                    url.span(),
                    format!("redis.url = {:?}: {why}", redact_url(url.get_ref())),
                )
            })?;
            Ok(url.into_inner())
        }
        (None, None) => Ok(DEFAULT_REDIS_URL.to_owned()),
    }
}

/// `redis.sentinels` or `redis.nodes`: at least one URL, each one usable, all of them
/// `redis://` or all `rediss://`; with `same_auth`, all with the first one's user and
/// password (sentinels with `tls_*` set).
fn url_list(
    src: &Source,
    key: &str,
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    mode: &str,
    same_auth: bool,
) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else {
        return Err(src.no_line(format!(
            "{key}: required with mode = \"{mode}\" (at least one redis:// URL)"
        )));
    };
    if raw.get_ref().is_empty() {
        return Err(src.at(
            raw.span(),
            format!("{key} = []: needs at least one redis:// URL"),
        ));
    }
    let urls = raw.into_inner();
    for (i, url) in urls.iter().enumerate() {
        check_redis_url(url.get_ref()).map_err(|why| {
            src.at(
                url.span(),
                format!("{key}[{i}] = {:?}: {why}", redact_url(url.get_ref())),
            )
        })?;
    }
    let (first, rest) = urls.split_first().expect("checked above: at least one URL");
    let auth = |url: &str| {
        redis::IntoConnectionInfo::into_connection_info(url).map(|info| {
            let redis = info.redis_settings();
            (
                redis.username().map(str::to_owned),
                redis.password().map(str::to_owned),
            )
        })
    };
    for (i, url) in rest.iter().enumerate() {
        let unlike = |what: &str| {
            src.at(
                url.span(),
                format!(
                    "{key}[{}] = {:?}: {what} differs from {key}[0]'s; every one must have the same",
                    i + 1,
                    redact_url(url.get_ref())
                ),
            )
        };
        if is_tls_url(url.get_ref()) != is_tls_url(first.get_ref()) {
            return Err(unlike("its scheme (redis:// or rediss://)"));
        }
        if same_auth && auth(url.get_ref()).ok() != auth(first.get_ref()).ok() {
            return Err(unlike("with tls_* set, its user or password"));
        }
    }
    Ok(urls.into_iter().map(Spanned::into_inner).collect())
}

/// `balancer.strategy`: the name of one of the strategies, exactly.
fn balancer_strategy(
    src: &Source,
    raw: Option<Spanned<String>>,
) -> Result<StrategyKind, ConfigError> {
    let Some(raw) = raw else {
        return Ok(StrategyKind::default());
    };
    strategy::by_name(raw.get_ref()).ok_or_else(|| {
        let names: Vec<String> = strategy::STRATEGIES
            .iter()
            .map(|kind| format!("{:?}", kind.name()))
            .collect();
        src.at(
            raw.span(),
            format!(
                "balancer.strategy = {:?}: not a strategy; must be one of {}",
                raw.get_ref(),
                names.join(", ")
            ),
        )
    })
}

fn reply_compression(
    src: &Source,
    raw: Option<Spanned<String>>,
) -> Result<ReplyCompression, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ReplyCompression::default());
    };
    match raw.get_ref().as_str() {
        "none" => Ok(ReplyCompression::None),
        "gzip" => Ok(ReplyCompression::Gzip),
        "zstd" => Ok(ReplyCompression::Zstd),
        other => Err(src.at(
            raw.span(),
            format!("server.compression = {other:?}: must be \"none\", \"gzip\" or \"zstd\""),
        )),
    }
}

fn socket_addr(
    src: &Source,
    key: &str,
    raw: Option<Spanned<String>>,
    default: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    match raw {
        None => Ok(default),
        Some(raw) => parse_socket_addr(src, key, &raw),
    }
}

/// `[server.tls]`: non-empty paths, relative ones taken from the config file's folder (so that
/// a config moved with its certificates keeps working whatever the working directory).
fn tls_files(src: &Source, raw: RawTls) -> Result<TlsFiles, ConfigError> {
    let folder = src.path.parent().unwrap_or(std::path::Path::new(""));
    let path = |key: &str, raw: Spanned<String>| {
        if raw.get_ref().trim().is_empty() {
            return Err(src.at(
                raw.span(),
                format!("{key} is empty: expected a PEM file's path"),
            ));
        }
        Ok(folder.join(raw.get_ref()))
    };
    Ok(TlsFiles {
        cert: path("server.tls.cert", raw.cert)?,
        key: path("server.tls.key", raw.key)?,
        client_ca: raw
            .client_ca
            .map(|ca| path("server.tls.client_ca", ca))
            .transpose()?,
    })
}

fn parse_socket_addr(
    src: &Source,
    key: &str,
    raw: &Spanned<String>,
) -> Result<SocketAddr, ConfigError> {
    // std's parser takes only IP:port, no host names: binding must not depend on DNS.
    raw.get_ref().parse().map_err(|_| {
        src.at(
            raw.span(),
            format!(
                "{key} = {:?}: not a socket address (expected IP:port, e.g. 0.0.0.0:50052 \
                 or [::]:50052)",
                raw.get_ref()
            ),
        )
    })
}

/// What an integer key counts, up to what, and what 0 means: all that its check and its
/// error message need.
struct IntRule {
    /// `""` for a plain number (a weight).
    unit: &'static str,
    max: Max,
    zero: Zero,
}

/// The largest value an [`IntRule`] accepts, and so how its message puts the range.
enum Max {
    /// All a u64 holds: the range reads "a positive number of ..", and only a value beyond
    /// u64 is "too large".
    U64,
    /// A limit of its own, stated in the message whichever side the value is out on.
    Stated(u64),
}

/// What 0 means under an [`IntRule`].
enum Zero {
    /// Nothing sensible: a zero timeout fails everything, a zero interval spins.
    Invalid,
    /// Allowed, meaning this (shown as "0 (probing off)").
    Means(&'static str),
}

/// An interval or timeout.
const POSITIVE_MILLIS: IntRule = IntRule {
    unit: "milliseconds",
    max: Max::U64,
    zero: Zero::Invalid,
};

/// An interval where 0 turns the thing off.
const PROBE_MILLIS: IntRule = IntRule {
    zero: Zero::Means("probing off"),
    ..POSITIVE_MILLIS
};

/// How many replicas `WAIT` asks for; a replica set beyond 100 is not a real deployment.
const MIN_REPLICAS_ACK: IntRule = IntRule {
    unit: "replicas",
    max: Max::Stated(100),
    zero: Zero::Means("no wait"),
};

/// A server's share relative to the others.
const WEIGHT: IntRule = IntRule {
    unit: "",
    max: Max::U64,
    zero: Zero::Invalid,
};

/// A server's capacity, or none.
const MAX_CONNECTIONS: IntRule = IntRule {
    unit: "connections",
    max: Max::U64,
    zero: Zero::Means("no limit"),
};

/// An `EX` Redis accepts, or none.
/// `server.max_connections`: gRPC connections open at once; a million is past any
/// file-descriptor limit.
const CLIENT_CONNECTIONS: IntRule = IntRule {
    unit: "connections",
    max: Max::Stated(1_000_000),
    zero: Zero::Invalid,
};

/// `server.threads`: more threads than this is a typo, not a machine.
const THREADS: IntRule = IntRule {
    unit: "threads",
    max: Max::Stated(1024),
    zero: Zero::Invalid,
};

const TOKEN_TTL_SECS: IntRule = IntRule {
    unit: "seconds",
    max: Max::Stated(MAX_TOKEN_TTL_SECS),
    zero: Zero::Means("tokens never expire"),
};

/// The integer at `key`: `default` when absent, else a value `rule` accepts.
fn checked_int(
    src: &Source,
    key: &str,
    raw: Option<Spanned<Int>>,
    default: u64,
    rule: &IntRule,
) -> Result<u64, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let value = raw.get_ref().0;
    let min = match rule.zero {
        Zero::Invalid => 1,
        Zero::Means(_) => 0,
    };
    let max = match rule.max {
        Max::U64 => u64::MAX,
        Max::Stated(max) => max,
    };
    match u64::try_from(value) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(src.at(
            raw.span(),
            format!("{key} = {value}: {}", rule.rejection(value)),
        )),
    }
}

impl IntRule {
    /// Why `value`, out of range, is rejected.
    fn rejection(&self, value: i128) -> String {
        let unit = self.unit;
        let range = match self.max {
            Max::U64 if value > 0 && unit.is_empty() => {
                return format!("too large, at most {}", u64::MAX);
            }
            Max::U64 if value > 0 => return format!("too large, at most {} {unit}", u64::MAX),
            Max::U64 if unit.is_empty() => "a positive integer".to_string(),
            Max::U64 => format!("a positive number of {unit}"),
            Max::Stated(max) => format!("a number of {unit} from 1 to {max}"),
        };
        match self.zero {
            Zero::Invalid => format!("must be {range}"),
            Zero::Means(meaning) => format!("must be 0 ({meaning}) or {range}"),
        }
    }
}

fn chat_servers(
    src: &Source,
    raw: Option<Spanned<Vec<Spanned<RawChatServer>>>>,
) -> Result<Vec<ChatServer>, ConfigError> {
    let Some(raw) = raw else {
        return Err(src.no_line(
            "missing `chat_servers`: at least one [[chat_servers]] table \
             (name, host, port) is required",
        ));
    };
    if raw.get_ref().is_empty() {
        return Err(src.at(
            raw.span(),
            "chat_servers is empty: at least one chat server (name, host, port) is required",
        ));
    }

    let mut servers = Vec::with_capacity(raw.get_ref().len());
    // name -> (index, line) of its first use, to name both places on a duplicate.
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    for (i, entry) in raw.into_inner().into_iter().enumerate() {
        let RawChatServer {
            name,
            host,
            port,
            weight,
            max_connections,
            draining,
        } = entry.into_inner();

        // Names are fields of the load hash, hosts go to clients verbatim: neither is
        // trimmed, but a blank one can only be a mistake.
        if name.get_ref().trim().is_empty() {
            return Err(src.at(
                name.span(),
                format!(
                    "chat_servers[{i}].name = {:?}: must not be empty",
                    name.get_ref()
                ),
            ));
        }
        let name_line = src.line_of(name.span().start);
        if let Some(&(first, first_line)) = seen.get(name.get_ref()) {
            return Err(src.at(
                name.span(),
                format!(
                    "chat_servers[{i}].name = {:?}: duplicate name, already used by \
                     chat_servers[{first}] on line {first_line}",
                    name.get_ref()
                ),
            ));
        }
        seen.insert(name.get_ref().clone(), (i, name_line));

        if host.get_ref().trim().is_empty() {
            return Err(src.at(
                host.span(),
                format!(
                    "chat_servers[{i}].host = {:?}: must not be empty",
                    host.get_ref()
                ),
            ));
        }
        // No host name or IP contains whitespace; clients would get it verbatim and fail.
        if host.get_ref().chars().any(char::is_whitespace) {
            return Err(src.at(
                host.span(),
                format!(
                    "chat_servers[{i}].host = {:?}: must not contain whitespace",
                    host.get_ref()
                ),
            ));
        }

        let port_value = *port.get_ref();
        let port = u16::try_from(port_value.0)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| {
                src.at(
                    port.span(),
                    format!("chat_servers[{i}].port = {port_value}: port must be in 1-65535"),
                )
            })?;

        let weight = checked_int(
            src,
            &format!("chat_servers[{i}].weight"),
            weight,
            DEFAULT_WEIGHT,
            &WEIGHT,
        )?;
        let policy = ServerPolicy {
            weight: NonZeroU64::new(weight).expect("the WEIGHT rule accepts no 0"),
            max_connections: checked_int(
                src,
                &format!("chat_servers[{i}].max_connections"),
                max_connections,
                DEFAULT_MAX_CONNECTIONS,
                &MAX_CONNECTIONS,
            )?,
            draining: draining.unwrap_or(false),
        };

        servers.push(ChatServer {
            name: name.into_inner(),
            host: host.into_inner(),
            port,
            policy,
        });
    }
    Ok(servers)
}

/// Whatever `redis::Client::open` objects to, now rather than at the first connection
/// (`open` only parses the URL; it does no I/O), and `rediss://..#insecure`: the build checks
/// every certificate, so such a URL would fail every connection.
fn check_redis_url(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| format!("not a usable Redis URL: {e}"))?;
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::TcpTls { insecure: true, .. } => Err(
            "#insecure is not supported: certificates are always checked (redis.tls_ca names \
             a CA of your own)"
                .to_string(),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
