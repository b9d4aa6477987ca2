//! `status-server --config PATH.ini`: the deployed C++ StatusServer's INI file, read into the
//! same [`Settings`] as the TOML config (docs/contract.md §8).
//!
//! | INI | TOML |
//! |---|---|
//! | `[StatusServer]` `Host`, `Port` | `server.listen` |
//! | `[Redis]` `Host`, `Port`, `Passwd` (optional; empty: no password) | `redis.url`, the password percent-encoded |
//! | `[chatservers]` `Name`: a comma-separated list | one `[[chat_servers]]` per name, in list order |
//! | `[<name>]` `Name`, `Host`, `Port` | its `name`, `host`, `port` |
//!
//! A chat server's name is its section's `Name`, as the C++ server took it (that is the
//! field of the load hash). Every other setting takes its default. Other sections
//! (`[Mysql]`, `[GateServer]`, ...) are skipped with one info line each at load
//! ([`IniConfig::log_skipped_sections`]); a key the StatusServer does not read, inside a
//! section it does read, is an error, as an unknown TOML key is.
//!
//! The file becomes the TOML document it stands for, each value spanned at its place in the
//! INI text, and that document goes through the TOML config's own two stages (serde into
//! `raw`, then `validate`). So every rule of the config lives in one place, and its error
//! still names the INI line. This module adds only what INI needs: its syntax (`reader`),
//! which sections and keys exist, `Port` text as a port number, and errors in the INI
//! file's words (`[chatserver1] Host` rather than `chat_servers[0].host`). `to_toml` writes
//! the equivalent TOML, for `statusctl convert-config`.

mod reader;
mod to_toml;

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeString, DeTable, DeValue};

use super::errors::Source;
use super::raw::RawConfig;
use super::{ConfigError, Settings, breaks_line};
use reader::{Entry, IniFile, Section};

pub use to_toml::PasswordInToml;

const STATUS_SERVER: &str = "StatusServer";
const REDIS: &str = "Redis";
const CHAT_SERVERS: &str = "chatservers";

/// Whether `path` names an INI file: its extension is `ini`, in any case.
pub fn is_ini_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("ini"))
}

/// An INI config, read and validated: the settings, and what [`IniConfig::to_toml`] and
/// the load's log lines need to know about the file.
pub struct IniConfig {
    /// What the server runs with (`STATUS_REDIS_URL` applied, when it was given).
    pub settings: Settings,
    source: PathBuf,
    skipped: Vec<SkippedSection>,
    /// `[Redis]` `Host` and `Port` as `host:port` (an IPv6 address in brackets).
    redis_address: String,
    /// `[Redis]` `Passwd`, when not empty.
    redis_password: Option<String>,
    /// The section each of `settings.chat_servers` came from, in the same order.
    chat_server_sections: Vec<String>,
}

/// A section the StatusServer does not read.
struct SkippedSection {
    name: String,
    why: &'static str,
}

impl IniConfig {
    /// One info line per skipped section, as status-server logs at each load.
    pub fn log_skipped_sections(&self) {
        for section in &self.skipped {
            log::info!(
                "config: ignoring section [{}] ({})",
                one_line(&section.name),
                section.why
            );
        }
    }

    /// Whether `[Redis]` has a non-empty `Passwd`.
    pub fn has_redis_password(&self) -> bool {
        self.redis_password.is_some()
    }
}

/// Reads the INI file at `path`, without any environment override (for converting it).
///
/// # Errors
/// The file cannot be read, or [`parse`] fails.
pub fn read_file(path: &Path) -> Result<IniConfig, ConfigError> {
    parse(&super::file::read_text(path)?, path, None)
}

/// Pure: parses `text` as the INI file `path` (used in messages and in [`IniConfig::to_toml`]'s
/// header); `redis_url_override` replaces the Redis URL when `Some` and non-empty, as for TOML.
///
/// # Errors
/// The first problem found, in file order within each step: INI syntax, then the sections
/// and keys the StatusServer reads, then the values, checked as for TOML. One line naming
/// the file, the section and key, and the line.
pub fn parse(
    text: &str,
    path: &Path,
    redis_url_override: Option<&str>,
) -> Result<IniConfig, ConfigError> {
    let src = Source { text, path };
    let file = reader::read(&src)?;
    let found = Found::in_file(&src, &file)?;

    // Ports go in as TOML integers; the document borrows their digits from here.
    let port_digits: Vec<String> = found
        .chat_servers
        .iter()
        .map(|server| server.port.to_string())
        .collect();
    let document = toml::Deserializer::from(found.toml_document(text, &port_digits));
    // The document has exactly the shape of the raw config, so serde finds nothing to
    // object to; should it ever, its error is still one line with the INI line.
    let raw = RawConfig::deserialize(document).map_err(|e| src.schema_error(&e))?;
    let settings = raw
        .validate(&src, redis_url_override.filter(|url| !url.is_empty()))
        .map_err(|e| e.reworded(|message| found.reword(message)))?;

    let chat_server_sections: Vec<&str> = found
        .chat_servers
        .iter()
        .map(|server| server.section.name)
        .collect();
    Ok(IniConfig {
        settings,
        source: path.to_path_buf(),
        skipped: skipped_sections(&file, &chat_server_sections),
        redis_address: found.redis_address,
        redis_password: found.redis_password.map(str::to_owned),
        chat_server_sections: chat_server_sections
            .into_iter()
            .map(str::to_owned)
            .collect(),
    })
}

/// What the StatusServer reads in the INI file, found and checked as far as INI goes:
/// sections and keys present, no unknown key among them, ports numbers.
struct Found<'f, 'a> {
    status: &'f Section<'a>,
    /// `[StatusServer]` `Host` and `Port` as `host:port`.
    listen: String,
    listen_host: &'f Entry<'a>,
    redis: &'f Section<'a>,
    /// `[Redis]` `Host` and `Port` as `host:port`.
    redis_address: String,
    redis_host: &'f Entry<'a>,
    redis_password: Option<&'a str>,
    /// `[chatservers]` `Name`.
    list: &'f Entry<'a>,
    chat_servers: Vec<ChatServerSection<'f, 'a>>,
}

impl<'f, 'a> Found<'f, 'a> {
    /// In file order within each step: `[StatusServer]`, `[Redis]`, then `[chatservers]`
    /// and the sections it lists.
    fn in_file(src: &Source, file: &'f IniFile<'a>) -> Result<Self, ConfigError> {
        let status = required_section(
            src,
            file,
            STATUS_SERVER,
            "its Host and Port are the gRPC address",
        )?;
        check_keys(src, status, &["Host", "Port"])?;
        let listen_host = required_key(src, status, "Host")?;
        let listen_port = port(src, status, required_key(src, status, "Port")?)?;

        let redis = required_section(
            src,
            file,
            REDIS,
            "Host, Port and Passwd of the Redis server",
        )?;
        check_keys(src, redis, &["Host", "Port", "Passwd"])?;
        let redis_host = required_key(src, redis, "Host")?;
        let redis_port = port(src, redis, required_key(src, redis, "Port")?)?;
        let redis_password = redis
            .get("Passwd")
            .map(|entry| entry.value)
            .filter(|password| !password.is_empty());

        let (list, chat_servers) = chat_servers(src, file)?;
        Ok(Found {
            status,
            listen: address(listen_host.value, listen_port),
            listen_host,
            redis,
            redis_address: address(redis_host.value, redis_port),
            redis_host,
            redis_password,
            list,
            chat_servers,
        })
    }

    /// The TOML document the INI file stands for, each value spanned where the INI file
    /// has it; `port_digits` holds the chat servers' ports in decimal.
    fn toml_document<'i>(&self, text: &str, port_digits: &'i [String]) -> Spanned<DeTable<'i>>
    where
        'f: 'i,
        'a: 'i,
    {
        let mut root = DeTable::new();
        root.insert(
            key("server", self.status.header.clone()),
            table(
                self.status.header.clone(),
                // At the host: the port is known to be good, so only the host can be wrong.
                [(
                    "listen",
                    string(self.listen.clone(), self.listen_host.value_span.clone()),
                )],
            ),
        );
        root.insert(
            key("redis", self.redis.header.clone()),
            table(
                self.redis.header.clone(),
                [(
                    "url",
                    string(
                        redis_url(&self.redis_address, self.redis_password),
                        self.redis_host.value_span.clone(),
                    ),
                )],
            ),
        );
        let mut list = DeArray::new();
        for (server, digits) in self.chat_servers.iter().zip(port_digits) {
            list.push(table(
                server.section.header.clone(),
                [
                    (
                        "name",
                        string(server.name.value, server.name.value_span.clone()),
                    ),
                    (
                        "host",
                        string(server.host.value, server.host.value_span.clone()),
                    ),
                    ("port", integer(digits, server.port_span.clone())),
                ],
            ));
        }
        root.insert(
            key("chat_servers", self.list.value_span.clone()),
            Spanned::new(self.list.value_span.clone(), DeValue::Array(list)),
        );
        Spanned::new(0..text.len(), root)
    }

    /// A validation message (`chat_servers[1].host = "": must not be empty`) in the INI
    /// file's words (`[chatserver2] Host = "": must not be empty`).
    fn reword(&self, message: &str) -> String {
        let redis_keys = if self.redis_password.is_some() {
            "[Redis] Host, Port, Passwd"
        } else {
            "[Redis] Host, Port"
        };
        for (toml_key, ini_keys) in [
            ("server.listen", "[StatusServer] Host, Port"),
            ("redis.url", redis_keys),
        ] {
            if let Some(rest) = message.strip_prefix(&format!("{toml_key} = ")) {
                return format!("{ini_keys} -> {toml_key} = {rest}");
            }
        }
        let mut message = message.to_owned();
        for (i, server) in self.chat_servers.iter().enumerate() {
            let section = server.section.name;
            for (toml_key, ini_key) in [("name", "Name"), ("host", "Host"), ("port", "Port")] {
                message = message.replace(
                    &format!("chat_servers[{i}].{toml_key} = "),
                    &format!("[{section}] {ini_key} = "),
                );
            }
            // As in "already used by chat_servers[0] on line 12".
            message = message.replace(&format!("chat_servers[{i}]"), &format!("[{section}]"));
        }
        message
    }
}

/// One chat server's section, its keys found and its port read.
struct ChatServerSection<'f, 'a> {
    section: &'f Section<'a>,
    name: &'f Entry<'a>,
    host: &'f Entry<'a>,
    port: u16,
    port_span: Range<usize>,
}

/// `[chatservers]` `Name`, and the section of each name it lists, in list order.
fn chat_servers<'f, 'a>(
    src: &Source,
    file: &'f IniFile<'a>,
) -> Result<(&'f Entry<'a>, Vec<ChatServerSection<'f, 'a>>), ConfigError> {
    let list_section =
        required_section(src, file, CHAT_SERVERS, "its Name lists the chat servers")?;
    check_keys(src, list_section, &["Name"])?;
    let list = required_key(src, list_section, "Name")?;
    let list_error = |why: String| {
        src.at(
            list.value_span.clone(),
            format!("[{CHAT_SERVERS}] Name = {:?}: {why}", list.value),
        )
    };

    let names: Vec<&str> = list.value.split(',').map(str::trim).collect();
    if names.iter().all(|name| name.is_empty()) {
        return Err(list_error(
            "lists no chat server (at least one is required)".to_owned(),
        ));
    }
    let mut servers = Vec::with_capacity(names.len());
    for (i, &name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(list_error("an empty name in the list".to_owned()));
        }
        if names[..i].contains(&name) {
            return Err(list_error(format!("{name:?} is listed twice")));
        }
        if [STATUS_SERVER, REDIS, CHAT_SERVERS].contains(&name) {
            return Err(list_error(format!(
                "{name:?} is not a chat server: [{name}] is a section of its own"
            )));
        }
        let Some(section) = find_section(file, name) else {
            return Err(list_error(format!(
                "{name:?} has no [{name}] section{}",
                case_hint(file, name)
            )));
        };
        servers.push(section);
    }

    let servers = servers
        .into_iter()
        .map(|section| {
            check_keys(src, section, &["Name", "Host", "Port"])?;
            let name = required_key(src, section, "Name")?;
            let host = required_key(src, section, "Host")?;
            let port_entry = required_key(src, section, "Port")?;
            Ok(ChatServerSection {
                section,
                name,
                host,
                port: port(src, section, port_entry)?,
                port_span: port_entry.value_span.clone(),
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    Ok((list, servers))
}

fn find_section<'f, 'a>(file: &'f IniFile<'a>, name: &str) -> Option<&'f Section<'a>> {
    file.sections.iter().find(|section| section.name == name)
}

/// The section `name`; `what` says what it holds, for the error when it is missing.
fn required_section<'f, 'a>(
    src: &Source,
    file: &'f IniFile<'a>,
    name: &str,
    what: &str,
) -> Result<&'f Section<'a>, ConfigError> {
    find_section(file, name).ok_or_else(|| {
        src.no_line(format!(
            "missing section [{name}] ({what}){}",
            case_hint(file, name)
        ))
    })
}

/// When a section is missing but one differs from it only in case: say so, as the names
/// are case-sensitive (they were for the C++ server too).
fn case_hint(file: &IniFile, name: &str) -> String {
    file.sections
        .iter()
        .find(|section| section.name.eq_ignore_ascii_case(name))
        .map(|section| {
            format!(
                " (there is a [{}]; section names are case-sensitive)",
                section.name
            )
        })
        .unwrap_or_default()
}

/// Every key of `section` is one of `known`.
fn check_keys(src: &Source, section: &Section, known: &[&str]) -> Result<(), ConfigError> {
    let Some(unknown) = section
        .entries
        .iter()
        .find(|entry| !known.contains(&entry.key))
    else {
        return Ok(());
    };
    let expected: Vec<String> = known.iter().map(|key| format!("`{key}`")).collect();
    let hint = if known
        .iter()
        .any(|key| key.eq_ignore_ascii_case(unknown.key))
    {
        " (keys are case-sensitive)"
    } else {
        ""
    };
    Err(src.at(
        unknown.key_span.clone(),
        format!(
            "[{}]: unknown key `{}`, expected one of {}{hint}",
            section.name,
            unknown.key,
            expected.join(", ")
        ),
    ))
}

fn required_key<'f, 'a>(
    src: &Source,
    section: &'f Section<'a>,
    key: &str,
) -> Result<&'f Entry<'a>, ConfigError> {
    section.get(key).ok_or_else(|| {
        src.at(
            section.header.clone(),
            format!("[{}]: missing key `{key}`", section.name),
        )
    })
}

/// A `Port` value as a port number. INI values are text, so the number is read here, as
/// TOML's parser reads an integer. The range is checked here too, for every `Port` alike:
/// those of `[StatusServer]` and `[Redis]` end up inside an address, where validation could
/// only call the whole address bad.
fn port(src: &Source, section: &Section, entry: &Entry) -> Result<u16, ConfigError> {
    let digits = !entry.value.is_empty() && entry.value.bytes().all(|b| b.is_ascii_digit());
    match entry.value.parse::<u16>() {
        Ok(port) if digits && port != 0 => Ok(port),
        _ => {
            let shown = if digits {
                entry.value.to_owned()
            } else {
                format!("{:?}", entry.value)
            };
            Err(src.at(
                entry.value_span.clone(),
                format!(
                    "[{}] {} = {shown}: port must be in 1-65535",
                    section.name, entry.key
                ),
            ))
        }
    }
}

/// `host:port`, with an IPv6 address in brackets, as a socket address and a URL need it.
fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The standalone Redis URL; the password percent-encoded, so that any character survives
/// (the redis crate decodes it again).
fn redis_url(address: &str, password: Option<&str>) -> String {
    match password {
        Some(password) => format!("redis://:{}@{address}", percent_encode(password)),
        None => format!("redis://{address}"),
    }
}

/// Every byte but RFC 3986's unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The sections left out: all but the three the StatusServer reads and those of the listed
/// chat servers.
fn skipped_sections(file: &IniFile, chat_server_sections: &[&str]) -> Vec<SkippedSection> {
    file.sections
        .iter()
        .filter(|section| {
            ![STATUS_SERVER, REDIS, CHAT_SERVERS].contains(&section.name)
                && !chat_server_sections.contains(&section.name)
        })
        .map(|section| {
            let looks_like_a_chat_server = ["Name", "Host", "Port"]
                .iter()
                .all(|key| section.get(key).is_some());
            SkippedSection {
                name: section.name.to_owned(),
                why: if looks_like_a_chat_server {
                    "not listed in [chatservers] Name"
                } else {
                    "not used by the StatusServer"
                },
            }
        })
        .collect()
}

// ---- the TOML document, built by hand ----

fn key<'i>(name: &'static str, span: Range<usize>) -> Spanned<DeString<'i>> {
    Spanned::new(span, Cow::Borrowed(name))
}

fn string<'i>(value: impl Into<Cow<'i, str>>, span: Range<usize>) -> Spanned<DeValue<'i>> {
    Spanned::new(span, DeValue::String(value.into()))
}

fn integer(digits: &str, span: Range<usize>) -> Spanned<DeValue<'_>> {
    let value = DeValue::parse(digits)
        .expect("the decimal digits of a u16 are a TOML integer")
        .into_inner();
    Spanned::new(span, value)
}

fn table<'i, const N: usize>(
    span: Range<usize>,
    entries: [(&'static str, Spanned<DeValue<'i>>); N],
) -> Spanned<DeValue<'i>> {
    let mut table = DeTable::new();
    for (name, value) in entries {
        table.insert(key(name, value.span()), value);
    }
    Spanned::new(span, DeValue::Table(table))
}

/// `text` with anything that could break a log line replaced by a space.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if breaks_line(c) { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
