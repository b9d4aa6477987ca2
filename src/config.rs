//! The config file (`status-server --config PATH`, CONTRACT §4), read in two stages.
//!
//! As in coreos/zincati: serde first reads the TOML into `Raw*` structs that mirror the
//! file exactly (every key optional, unknown keys rejected, values to be checked wrapped in
//! [`toml::Spanned`] so we still know where they were written); then `RawConfig::validate`
//! applies the defaults and checks every value, producing [`Settings`]. The rest of the
//! program only ever sees `Settings`, so it never starts half-configured.
//!
//! A bad config has to stop start-up with one line that names the file and the problem
//! (key, value, line; CONTRACT §3). Hence [`ConfigError`] always displays as a single line,
//! line numbers are computed from the spans, and nothing here panics on any input.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use status_actors::ChatServer;
use toml::Spanned;

use crate::redact::redact_url;

/// Environment variable that, when set and non-empty, replaces `redis.url`, so a password
/// need not be written into the config file.
pub const REDIS_URL_ENV: &str = "STATUS_REDIS_URL";

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 50052);
const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);
const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_TOKEN_TTL_SECS: u64 = 86_400;
const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 1_000;
const DEFAULT_TOKEN_PREFIX: &str = "utoken_";
const DEFAULT_LOGIN_COUNT_KEY: &str = "logincount";
const DEFAULT_POLL_INTERVAL_MS: u64 = 1_000;
const DEFAULT_PROBE_INTERVAL_MS: u64 = 2_000;

/// Redis refuses `SET .. EX n` once `n` seconds, in milliseconds plus the current time,
/// overflow an i64 ("invalid expire time"). Stay far below that so a TTL that Redis would
/// reject on every login is caught at start-up instead. 10^15 s is about 31 million years.
const MAX_TOKEN_TTL_SECS: u64 = 1_000_000_000_000_000;

/// Everything the server needs, validated; built only by [`Settings::load`] / [`Settings::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub balancer: BalancerSettings,
    /// At least one, in file order; names unique and non-blank, hosts non-blank and free of
    /// whitespace, ports 1-65535. Both taken verbatim.
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
    /// How long in-flight requests may drain after SIGTERM/SIGINT; never zero.
    pub shutdown_grace: Duration,
}

/// `[redis]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Accepted by `redis::Client::open`; already replaced by `STATUS_REDIS_URL` when that is set.
    pub url: String,
    /// `EX` of stored tokens; 0 means tokens never expire.
    pub token_ttl_secs: u64,
    /// Upper bound on one Redis command; never zero.
    pub command_timeout: Duration,
    /// Token key of user `uid` is `{token_prefix}{uid}`; may be empty.
    pub token_prefix: String,
    /// Hash of chat server loads; never blank.
    pub login_count_key: String,
}

/// `[balancer]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerSettings {
    /// How often the load hash is read; never zero.
    pub poll_interval: Duration,
    /// How often chat servers are TCP-probed; `None` when `probe_interval_ms = 0` (probing off).
    pub probe_interval: Option<Duration>,
}

/// Why the config was rejected. Displays as one line: `PATH: [line N: ]problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    path: PathBuf,
    /// 1-based line the problem was found on, when it has one.
    line: Option<usize>,
    /// Already collapsed to one line.
    message: String,
}

impl ConfigError {
    fn new(path: &Path, line: Option<usize>, message: impl AsRef<str>) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            message: one_line(message.as_ref()),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Even the path could hold a newline; the one-line promise covers it too.
        let path = one_line(&self.path.display().to_string());
        match self.line {
            Some(line) => write!(f, "{path}: line {line}: {}", self.message),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Reads `path`, applies env `STATUS_REDIS_URL` when set and non-empty.
    ///
    /// # Errors
    /// The file cannot be read, `STATUS_REDIS_URL` is not UTF-8, or [`Settings::parse`] fails.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, None, format!("cannot read: {e}")))?;
        let url_override = match std::env::var_os(REDIS_URL_ENV) {
            None => None,
            Some(value) => match value.into_string() {
                Ok(url) => Some(url),
                // Silently falling back to the file's URL would connect somewhere unintended.
                Err(_) => {
                    return Err(ConfigError::new(
                        path,
                        None,
                        format!("{REDIS_URL_ENV} is set but is not valid UTF-8"),
                    ));
                }
            },
        };
        Self::parse(&text, path, url_override.as_deref())
    }

    /// Pure: parses `text` (as if read from `path`, used only in messages);
    /// `redis_url_override` replaces `redis.url` when `Some` and non-empty.
    ///
    /// # Errors
    /// The first problem found: invalid TOML, an unknown key, a wrong type, or a value that
    /// fails its check (CONTRACT §3 lists them).
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

// ---- stage 1: the file as written ----

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of [server], [redis], [balancer] and [[chat_servers]]"
)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    redis: RawRedis,
    #[serde(default)]
    balancer: RawBalancer,
    chat_servers: Option<Spanned<Vec<Spanned<RawChatServer>>>>,
}

// Integers are read as `Int` rather than as the target type, so that negative or oversized
// values reach `validate` and get our message, with the value in it, instead of serde's.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [server] table")]
struct RawServer {
    listen: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    shutdown_grace_ms: Option<Spanned<Int>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [redis] table")]
struct RawRedis {
    url: Option<Spanned<String>>,
    token_ttl_secs: Option<Spanned<Int>>,
    command_timeout_ms: Option<Spanned<Int>>,
    // Any string is a valid prefix (even ""), so there is nothing to point at.
    token_prefix: Option<String>,
    login_count_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [balancer] table")]
struct RawBalancer {
    poll_interval_ms: Option<Spanned<Int>>,
    probe_interval_ms: Option<Spanned<Int>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [[chat_servers]] table with name, host and port"
)]
struct RawChatServer {
    name: Spanned<String>,
    host: Spanned<String>,
    port: Spanned<Int>,
}

/// Any TOML integer, even beyond i64 (toml hands those over as i128/u128), so that a huge
/// value is reported with our message and the value rather than as a type mismatch.
#[derive(Debug, Clone, Copy)]
struct Int(i128);

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

// ---- stage 2: defaults and checks ----

impl RawConfig {
    fn validate(self, src: &Source, url_override: Option<&str>) -> Result<Settings, ConfigError> {
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
            shutdown_grace: positive_millis(
                src,
                "server.shutdown_grace_ms",
                self.server.shutdown_grace_ms,
                DEFAULT_SHUTDOWN_GRACE_MS,
            )?,
        };
        let redis = self.redis.validate(src, url_override)?;
        let balancer = BalancerSettings {
            poll_interval: positive_millis(
                src,
                "balancer.poll_interval_ms",
                self.balancer.poll_interval_ms,
                DEFAULT_POLL_INTERVAL_MS,
            )?,
            probe_interval: probe_interval(src, self.balancer.probe_interval_ms)?,
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
        let url = match (url_override, self.url) {
            (Some(url), _) => {
                // Not in the file, so no line; say where it came from instead.
                check_redis_url(url).map_err(|why| {
                    src.no_line(format!(
                        "{REDIS_URL_ENV} = {:?} (replaces redis.url): {why}",
                        redact_url(url)
                    ))
                })?;
                url.to_owned()
            }
            (None, Some(url)) => {
                check_redis_url(url.get_ref()).map_err(|why| {
                    src.at(
                        url.span(),
                        format!("redis.url = {:?}: {why}", redact_url(url.get_ref())),
                    )
                })?;
                url.into_inner()
            }
            (None, None) => DEFAULT_REDIS_URL.to_owned(),
        };

        let token_ttl_secs = match self.token_ttl_secs {
            None => DEFAULT_TOKEN_TTL_SECS,
            Some(ttl) => match u64::try_from(ttl.get_ref().0) {
                Ok(secs) if secs <= MAX_TOKEN_TTL_SECS => secs,
                _ => {
                    return Err(src.at(
                        ttl.span(),
                        format!(
                            "redis.token_ttl_secs = {}: must be 0 (tokens never expire) or a \
                             number of seconds from 1 to {MAX_TOKEN_TTL_SECS}",
                            ttl.get_ref()
                        ),
                    ));
                }
            },
        };

        let command_timeout = positive_millis(
            src,
            "redis.command_timeout_ms",
            self.command_timeout_ms,
            DEFAULT_COMMAND_TIMEOUT_MS,
        )?;

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

        Ok(RedisSettings {
            url,
            token_ttl_secs,
            command_timeout,
            token_prefix: self
                .token_prefix
                .unwrap_or_else(|| DEFAULT_TOKEN_PREFIX.to_owned()),
            login_count_key,
        })
    }
}

fn socket_addr(
    src: &Source,
    key: &str,
    raw: Option<Spanned<String>>,
    default: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
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

/// An interval or timeout in milliseconds where zero makes no sense (a zero timeout fails
/// everything, a zero interval spins).
fn positive_millis(
    src: &Source,
    key: &str,
    raw: Option<Spanned<Int>>,
    default_ms: u64,
) -> Result<Duration, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Duration::from_millis(default_ms));
    };
    let value = raw.get_ref().0;
    match u64::try_from(value) {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        Err(_) if value > 0 => Err(src.at(
            raw.span(),
            format!(
                "{key} = {value}: too large, at most {} milliseconds",
                u64::MAX
            ),
        )),
        _ => Err(src.at(
            raw.span(),
            format!("{key} = {value}: must be a positive number of milliseconds"),
        )),
    }
}

/// Like [`positive_millis`], but 0 is valid and turns probing off.
fn probe_interval(
    src: &Source,
    raw: Option<Spanned<Int>>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Some(Duration::from_millis(DEFAULT_PROBE_INTERVAL_MS)));
    };
    let value = raw.get_ref().0;
    match u64::try_from(value) {
        Ok(0) => Ok(None),
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) if value > 0 => Err(src.at(
            raw.span(),
            format!(
                "balancer.probe_interval_ms = {value}: too large, at most {} milliseconds",
                u64::MAX
            ),
        )),
        Err(_) => Err(src.at(
            raw.span(),
            format!(
                "balancer.probe_interval_ms = {value}: must be 0 (probing off) or a positive \
                 number of milliseconds"
            ),
        )),
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
        let RawChatServer { name, host, port } = entry.into_inner();

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

        servers.push(ChatServer {
            name: name.into_inner(),
            host: host.into_inner(),
            port,
        });
    }
    Ok(servers)
}

/// Whatever `redis::Client::open` objects to, now rather than at the first connection.
/// `open` only parses the URL; it does no I/O.
fn check_redis_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("not a usable Redis URL: {e}"))
}

// ---- locating problems in the text ----

/// The text being parsed and the path it is reported under.
struct Source<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Source<'_> {
    /// 1-based line of byte `offset` (clamped to the text).
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        1 + self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// 1-based column, in characters, of byte `offset`.
    fn column_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        let bytes = &self.text.as_bytes()[..end];
        let line_start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // Count UTF-8 lead bytes rather than slicing a &str, which could panic off a boundary.
        1 + bytes[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count()
    }

    fn at(&self, span: Range<usize>, message: impl AsRef<str>) -> ConfigError {
        ConfigError::new(self.path, Some(self.line_of(span.start)), message)
    }

    fn no_line(&self, message: impl AsRef<str>) -> ConfigError {
        ConfigError::new(self.path, None, message)
    }

    /// The text is not TOML at all.
    fn syntax_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = match e.span() {
            Some(span) => format!(
                "invalid TOML: line {}, column {}: {}",
                self.line_of(span.start),
                self.column_of(span.start),
                e.message()
            ),
            None => format!("invalid TOML: {}", e.message()),
        };
        self.no_line(message)
    }

    /// Valid TOML that does not fit [`RawConfig`]: an unknown key (toml's message names it),
    /// a wrong type or a missing required key.
    fn schema_error(&self, e: &toml::de::Error) -> ConfigError {
        let Some(span) = e.span() else {
            return self.no_line(e.message());
        };
        // A wrong type is reported at the value (or at a table's header), and toml's
        // message does not say whose value it is; recover the key from the text.
        let problem = in_config_words(e.message());
        let message =
            match key_before(self.text, span.start).or_else(|| header_at(self.text, span.start)) {
                Some(key) => format!("{key}: {problem}"),
                None => problem,
            };
        self.at(span, message)
    }
}

/// The key of the `key = value` whose value starts at byte `offset`, if the text right
/// before `offset` on the same line is `key =` (as in `port = "x"` or `{ port = "x" }`).
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let eq = line.rfind('=')?;
    if !line[eq + 1..].trim().is_empty() {
        return None;
    }
    let key = &line[..eq];
    let key = key[key.rfind(['{', ',']).map_or(0, |i| i + 1)..].trim();
    (!key.is_empty()).then_some(key)
}

/// The table header (`[a.b]` or `[[a]]`) on the line of byte `offset`, if that line is one:
/// a table-level error (missing key, table where a value belongs) is reported at the header.
fn header_at(text: &str, offset: usize) -> Option<&str> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    // Drop a trailing comment. A `#` inside a quoted key cuts the header short, so it is
    // not recognised and the message merely goes without the hint.
    let header = line.split('#').next()?.trim();
    (header.starts_with('[') && header.ends_with(']')).then_some(header)
}

/// serde speaks of fields; the config and its operators speak of keys.
fn in_config_words(message: &str) -> String {
    for (serde_words, ours) in [
        ("unknown field ", "unknown key "),
        ("missing field ", "missing key "),
    ] {
        if let Some(rest) = message.strip_prefix(serde_words) {
            return format!("{ours}{rest}");
        }
    }
    message.to_owned()
}

/// Collapses a (possibly multi-line) message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .map(|c| if breaks_line(c) { ' ' } else { c })
        .collect()
}

/// Whether `c` could end a log line or rearrange it: a control character (C0, C1), a line
/// or paragraph separator, or a bidi control. Messages quote config text verbatim (an
/// unknown key, for one), so any of these may reach them. Public so that the property tests
/// and fuzz targets check messages against the same definition.
pub fn breaks_line(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "config/status.toml";

    /// CONTRACT §4, verbatim.
    const EXAMPLE: &str = r#"[server]
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

    /// The smallest valid config; appended to configs that test one other key.
    const ONE_SERVER: &str =
        "[[chat_servers]]\nname = \"chat1\"\nhost = \"10.0.0.5\"\nport = 8090\n";

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new(PATH), None)
    }

    /// The error line for `text`, checked for the properties every error must have.
    fn error(text: &str) -> String {
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

    fn assert_mentions(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }

    fn chat_server(name: &str, host: &str, port: u16) -> ChatServer {
        ChatServer {
            name: name.to_owned(),
            host: host.to_owned(),
            port,
        }
    }

    fn defaults_with(chat_servers: Vec<ChatServer>) -> Settings {
        Settings {
            server: ServerSettings {
                listen: "0.0.0.0:50052".parse().expect("literal"),
                metrics_listen: Some("127.0.0.1:9464".parse().expect("literal")),
                shutdown_grace: Duration::from_millis(10_000),
            },
            redis: RedisSettings {
                url: "redis://127.0.0.1:6379".to_owned(),
                token_ttl_secs: 86_400,
                command_timeout: Duration::from_millis(1_000),
                token_prefix: "utoken_".to_owned(),
                login_count_key: "logincount".to_owned(),
            },
            balancer: BalancerSettings {
                poll_interval: Duration::from_millis(1_000),
                probe_interval: Some(Duration::from_millis(2_000)),
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
shutdown_grace_ms = 2500

[redis]
url = "redis://:secret@redis.internal:6380/2"
token_ttl_secs = 0
command_timeout_ms = 250
token_prefix = ""
login_count_key = "loads"

[balancer]
poll_interval_ms = 300
probe_interval_ms = 0

[[chat_servers]]
name = "a"
host = "chat-a.internal"
port = 1

[[chat_servers]]
name = "b"
host = "10.0.0.9"
port = 65535
"#;
        let settings = parse(text).expect("valid");
        assert_eq!(
            settings,
            Settings {
                server: ServerSettings {
                    listen: "[::1]:7000".parse().expect("literal"),
                    metrics_listen: Some("10.1.2.3:9000".parse().expect("literal")),
                    shutdown_grace: Duration::from_millis(2500),
                },
                redis: RedisSettings {
                    url: "redis://:secret@redis.internal:6380/2".to_owned(),
                    token_ttl_secs: 0,
                    command_timeout: Duration::from_millis(250),
                    token_prefix: String::new(),
                    login_count_key: "loads".to_owned(),
                },
                balancer: BalancerSettings {
                    poll_interval: Duration::from_millis(300),
                    probe_interval: None,
                },
                // Verbatim, in file order.
                chat_servers: vec![
                    chat_server("a", "chat-a.internal", 1),
                    chat_server("b", "10.0.0.9", 65535),
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
    fn env_override_replaces_url() {
        let settings = Settings::parse(
            EXAMPLE,
            Path::new(PATH),
            Some("redis://:pw@10.9.9.9:6379/1"),
        )
        .expect("valid");
        assert_eq!(settings.redis.url, "redis://:pw@10.9.9.9:6379/1");
    }

    #[test]
    fn env_override_wins_over_a_bad_file_url() {
        let text = format!("[redis]\nurl = \"http://nope\"\n{ONE_SERVER}");
        let settings = Settings::parse(&text, Path::new(PATH), Some("redis://10.9.9.9"))
            .expect("the file's url is replaced, so never checked");
        assert_eq!(settings.redis.url, "redis://10.9.9.9");
    }

    #[test]
    fn empty_env_override_is_ignored() {
        let text = format!("[redis]\nurl = \"redis://from-file:6379\"\n{ONE_SERVER}");
        let settings = Settings::parse(&text, Path::new(PATH), Some("")).expect("valid");
        assert_eq!(settings.redis.url, "redis://from-file:6379");
    }

    // ---- rejected configs: each names the file, the key, the value and the line ----

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
    fn invalid_toml() {
        let message = error("[server]\nlisten = 0.0.0.0:50052\n");
        assert_mentions(&message, &["invalid TOML", "line 2, column"]);
    }

    #[test]
    fn invalid_toml_duplicate_key() {
        let message = error("[server]\nlisten = \"0.0.0.0:1\"\nlisten = \"0.0.0.0:2\"\n");
        assert_mentions(
            &message,
            &["invalid TOML", "line 3, column 1", "duplicate key"],
        );
    }

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
        let message = error(&format!("{ONE_SERVER}weight = 3\n"));
        assert_mentions(&message, &["line 5: ", "unknown key `weight`", "`port`"]);
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
    fn missing_chat_servers() {
        let message = error("[server]\nlisten = \"0.0.0.0:50052\"\n");
        assert_mentions(&message, &["missing `chat_servers`", "at least one"]);
        // An entirely empty file is the same problem.
        assert_mentions(&error(""), &["missing `chat_servers`"]);
    }

    #[test]
    fn empty_chat_servers() {
        let message = error("[server]\nshutdown_grace_ms = 5\n\nchat_servers = []\n");
        // `chat_servers` after [server] would belong to it, so put it first instead.
        assert_mentions(&message, &["line 4: ", "unknown key `chat_servers`"]);
        let message = error("chat_servers = []\n[server]\nshutdown_grace_ms = 5\n");
        assert_mentions(
            &message,
            &["line 1: ", "chat_servers is empty", "at least one"],
        );
    }

    #[test]
    fn duplicate_name_names_both_lines() {
        let text = format!(
            "{ONE_SERVER}\n[[chat_servers]]\nname = \"chat1\"\nhost = \"h2\"\nport = 8091\n"
        );
        let message = error(&text);
        assert_mentions(
            &message,
            &[
                "line 7: ",
                "chat_servers[1].name = \"chat1\"",
                "duplicate",
                "chat_servers[0] on line 2",
            ],
        );
    }

    #[test]
    fn empty_name() {
        let message = error("[[chat_servers]]\nname = \"\"\nhost = \"h\"\nport = 1\n");
        assert_mentions(
            &message,
            &["line 2: ", "chat_servers[0].name = \"\"", "empty"],
        );
        let message = error("[[chat_servers]]\nname = \"  \"\nhost = \"h\"\nport = 1\n");
        assert_mentions(
            &message,
            &["line 2: ", "chat_servers[0].name = \"  \"", "empty"],
        );
    }

    #[test]
    fn empty_host() {
        let message = error("[[chat_servers]]\nname = \"c\"\nhost = \"\"\nport = 1\n");
        assert_mentions(
            &message,
            &["line 3: ", "chat_servers[0].host = \"\"", "empty"],
        );
        let message = error("[[chat_servers]]\nname = \"c\"\nhost = \" \\t\"\nport = 1\n");
        assert_mentions(
            &message,
            &["line 3: ", "chat_servers[0].host = \" \\t\"", "empty"],
        );
    }

    #[test]
    fn host_with_whitespace() {
        let message = error("[[chat_servers]]\nname = \"c\"\nhost = \" 10.0.0.5\"\nport = 1\n");
        assert_mentions(
            &message,
            &[
                "line 3: ",
                "chat_servers[0].host = \" 10.0.0.5\"",
                "whitespace",
            ],
        );
    }

    #[test]
    fn port_out_of_range() {
        for port in ["0", "-1", "65536", "70000", "99999999999999999999"] {
            let text = format!(
                "{ONE_SERVER}\n[[chat_servers]]\nname = \"c2\"\nhost = \"h\"\nport = {port}\n"
            );
            let message = error(&text);
            assert_mentions(
                &message,
                &[
                    "line 9: ",
                    &format!("chat_servers[1].port = {port}: "),
                    "1-65535",
                ],
            );
        }
    }

    #[test]
    fn port_beyond_any_integer_type() {
        let message = error(&format!(
            "[[chat_servers]]\nname = \"c\"\nhost = \"h\"\nport = 1{}\n",
            "0".repeat(60)
        ));
        assert_mentions(&message, &["line 4: ", "port"]);
    }

    #[test]
    fn unparsable_listen() {
        let message = error(&format!("[server]\nlisten = \"nope\"\n{ONE_SERVER}"));
        assert_mentions(
            &message,
            &[
                "line 2: ",
                "server.listen = \"nope\"",
                "not a socket address",
            ],
        );
        // Host names are not accepted: binding must not depend on DNS.
        let message = error(&format!(
            "[server]\nlisten = \"localhost:50052\"\n{ONE_SERVER}"
        ));
        assert_mentions(
            &message,
            &["line 2: ", "server.listen = \"localhost:50052\""],
        );
    }

    #[test]
    fn empty_metrics_listen_turns_metrics_off() {
        let settings = parse(&format!("[server]\nmetrics_listen = \"\"\n{ONE_SERVER}"))
            .expect("empty metrics_listen is valid");
        assert_eq!(settings.server.metrics_listen, None);
    }

    #[test]
    fn unparsable_metrics_listen() {
        let message = error(&format!(
            "[server]\nlisten = \"0.0.0.0:1\"\nmetrics_listen = \"127.0.0.1\"\n{ONE_SERVER}"
        ));
        assert_mentions(
            &message,
            &[
                "line 3: ",
                "server.metrics_listen = \"127.0.0.1\"",
                "not a socket address",
            ],
        );
    }

    #[test]
    fn zero_or_negative_intervals_and_timeouts() {
        for (section, key) in [
            ("server", "shutdown_grace_ms"),
            ("redis", "command_timeout_ms"),
            ("balancer", "poll_interval_ms"),
        ] {
            for value in ["0", "-5"] {
                let message = error(&format!("[{section}]\n{key} = {value}\n{ONE_SERVER}"));
                assert_mentions(
                    &message,
                    &[
                        "line 2: ",
                        &format!("{section}.{key} = {value}: "),
                        "positive",
                    ],
                );
            }
        }
    }

    #[test]
    fn milliseconds_too_big_for_u64() {
        let message = error(&format!(
            "[server]\nshutdown_grace_ms = 18446744073709551616\n{ONE_SERVER}"
        ));
        assert_mentions(
            &message,
            &[
                "line 2: ",
                "server.shutdown_grace_ms = 18446744073709551616: ",
                "too large",
            ],
        );
        let message = error(&format!(
            "[balancer]\nprobe_interval_ms = 18446744073709551616\n{ONE_SERVER}"
        ));
        assert_mentions(
            &message,
            &[
                "line 2: ",
                "balancer.probe_interval_ms = 18446744073709551616: ",
                "too large",
            ],
        );
        // The largest u64 is a valid (if silly) duration and must not panic anywhere here.
        let text = format!("[server]\nshutdown_grace_ms = 18446744073709551615\n{ONE_SERVER}");
        assert_eq!(
            parse(&text).expect("valid").server.shutdown_grace,
            Duration::from_millis(u64::MAX)
        );
    }

    #[test]
    fn probe_interval() {
        let text = format!("[balancer]\nprobe_interval_ms = 0\n{ONE_SERVER}");
        assert_eq!(
            parse(&text)
                .expect("0 turns probing off")
                .balancer
                .probe_interval,
            None
        );

        let message = error(&format!("[balancer]\nprobe_interval_ms = -1\n{ONE_SERVER}"));
        assert_mentions(&message, &["line 2: ", "balancer.probe_interval_ms = -1: "]);
    }

    #[test]
    fn token_ttl() {
        let text = format!("[redis]\ntoken_ttl_secs = 0\n{ONE_SERVER}");
        assert_eq!(
            parse(&text).expect("0 = never expire").redis.token_ttl_secs,
            0
        );

        for value in ["-1", "1000000000000000000"] {
            let message = error(&format!("[redis]\ntoken_ttl_secs = {value}\n{ONE_SERVER}"));
            assert_mentions(
                &message,
                &["line 2: ", &format!("redis.token_ttl_secs = {value}: ")],
            );
        }
    }

    #[test]
    fn empty_login_count_key() {
        for value in ["", " "] {
            let message = error(&format!(
                "[redis]\nlogin_count_key = {value:?}\n{ONE_SERVER}"
            ));
            assert_mentions(
                &message,
                &[
                    "line 2: ",
                    &format!("redis.login_count_key = {value:?}: "),
                    "empty",
                ],
            );
        }
    }

    #[test]
    fn bad_redis_url_in_file() {
        let message = error(&format!(
            "[redis]\n\nurl = \"http://user:hunter2@localhost\"\n{ONE_SERVER}"
        ));
        assert_mentions(
            &message,
            &[
                "line 3: ",
                "redis.url = \"http://user:***@localhost\"",
                "Redis URL",
            ],
        );
        assert!(!message.contains("hunter2"), "password leaked: {message}");
    }

    #[test]
    fn bad_redis_url_from_env() {
        let message = Settings::parse(
            EXAMPLE,
            Path::new(PATH),
            Some("redis://:hunter2@h:notaport"),
        )
        .expect_err("rejected")
        .to_string();
        assert_mentions(
            &message,
            &[
                &format!("{PATH}: "),
                "STATUS_REDIS_URL = \"redis://:***@h:notaport\"",
            ],
        );
        assert!(!message.contains("hunter2"), "password leaked: {message}");
        assert!(
            !message.contains("line"),
            "env value has no line: {message}"
        );
    }

    #[test]
    fn odd_input_never_panics_and_stays_one_line() {
        let inputs = [
            "\u{feff}",
            "\u{feff}[server]\nlisten = \"é:1\"\n",
            "[server]\nlisten = \"a\\nb\"\n",
            "\"\"\"",
            "[[chat_servers]]\nname = \"\"\"\nx\ny\n\"\"\"\nhost = 3\n",
            "chat_servers = [1, 2]",
            "chat_servers = [[]]",
            "[[chat_servers]]\n[[chat_servers]]",
            "[server.listen]\nx = 1",
            "server.listen = 1",
            "\0\0\0",
            "é = é",
        ];
        for input in inputs {
            error(input);
        }
    }

    #[test]
    fn line_separators_and_bidi_controls_never_reach_the_message() {
        // Found by fuzzing: toml quotes an unknown key verbatim, so a quoted key holding
        // U+2028 (LINE SEPARATOR) or U+202E (RIGHT-TO-LEFT OVERRIDE) split or reordered
        // the "one" line.
        for odd in [
            '\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{200f}', '\u{85}',
        ] {
            let message = error(&format!("\"a{odd}b\" = 1\n{ONE_SERVER}"));
            assert_mentions(&message, &["line 1: ", "unknown key `a b`"]);
            assert!(!message.chars().any(breaks_line), "{message:?}");
        }
    }

    #[test]
    fn newlines_in_values_are_escaped() {
        let message = error(&format!("[server]\nlisten = \"a\\nb\"\n{ONE_SERVER}"));
        assert_mentions(&message, &["line 2: ", r#"server.listen = "a\nb""#]);
    }

    #[test]
    fn key_before_value() {
        let text = "port = \"x\"\n{ a = 1, port = \"y\" }\nports = [1, \"z\"]";
        let at = |needle: &str| text.find(needle).expect("needle in text");
        assert_eq!(key_before(text, at("\"x")), Some("port"));
        assert_eq!(key_before(text, at("\"y")), Some("port"));
        assert_eq!(key_before(text, at("[1")), Some("ports"));
        // Inside the array: the `=` is not right before the value.
        assert_eq!(key_before(text, at("\"z")), None);
        assert_eq!(key_before(text, 0), None);
        assert_eq!(key_before(text, text.len() + 1), None);
    }
}
