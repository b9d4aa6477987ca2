//! Property tests of config parsing: fuzzing that runs with every `cargo test`.
//!
//! `Settings::parse` must never panic, must explain every rejection in exactly one line that
//! starts with the path, and must hand out only settings that passed every check. Three
//! generators feed it: arbitrary text; valid configs (whose parse must give back exactly the
//! values written); and valid configs broken by random mutations (wrong types, huge
//! integers, unknown keys, duplicate names, moved or cut text, ...).
//!
//! The default is 256 cases per property; `PROPTEST_CASES=100000 cargo test --test it config_properties`
//! runs longer. `fuzz/` holds the cargo-fuzz target of the same checks.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use status_server::config::{Settings, Topology, breaks_line};

const PATH: &str = "conf.d/status.toml";

/// A password no generated text contains by chance: it must never appear in an error.
const PASSWORD: &str = "Pw7secretQ";

/// Largest `redis.token_ttl_secs` the config accepts (10^15 s).
const MAX_TOKEN_TTL_SECS: u64 = 1_000_000_000_000_000;

// ---- the properties every outcome must have ----

/// Parses `text` and checks whichever outcome it got; returns it for further checks.
fn parse_checked(text: &str, url_override: Option<&str>) -> Result<Settings, String> {
    match Settings::parse(text, Path::new(PATH), url_override) {
        Ok(settings) => {
            check_settings(&settings);
            Ok(settings)
        }
        Err(e) => {
            let message = e.to_string();
            check_error(text, &message);
            Err(message)
        }
    }
}

/// One line, starting with the path; a line number, if any, lies within the text.
fn check_error(text: &str, message: &str) {
    assert!(
        !message.chars().any(breaks_line),
        "not a single line: {message:?}"
    );
    let Some(rest) = message.strip_prefix(&format!("{PATH}: ")) else {
        panic!("does not start with the path: {message:?}");
    };
    if let Some(after) = rest.strip_prefix("line ") {
        let number: String = after.chars().take_while(char::is_ascii_digit).collect();
        let line: usize = number
            .parse()
            .unwrap_or_else(|_| panic!("no line number: {message:?}"));
        let lines = text.matches('\n').count() + 1;
        assert!(
            (1..=lines).contains(&line),
            "line {line} of {lines}: {message:?}"
        );
    }
    assert!(!message.contains(PASSWORD), "password leaked: {message:?}");
}

/// What `Settings` promises about every value it holds.
fn check_settings(settings: &Settings) {
    assert!(!settings.server.shutdown_grace.is_zero());
    assert!(!settings.redis.command_timeout.is_zero());
    assert!(!settings.balancer.poll_interval.is_zero());
    assert_ne!(settings.balancer.probe_interval, Some(Duration::ZERO));
    assert!(settings.redis.token_ttl_secs <= MAX_TOKEN_TTL_SECS);
    assert!(!settings.redis.login_count_key.trim().is_empty());
    let urls = match &settings.redis.topology {
        Topology::Standalone { url } => vec![url.clone()],
        Topology::Sentinel { sentinels, .. } => sentinels.clone(),
        Topology::Cluster { nodes } => nodes.clone(),
    };
    assert!(!urls.is_empty());
    for url in urls {
        assert!(redis::Client::open(url.as_str()).is_ok());
    }

    assert!(!settings.chat_servers.is_empty());
    let mut names = HashSet::new();
    for server in &settings.chat_servers {
        assert!(!server.name.trim().is_empty(), "{server:?}");
        assert!(names.insert(&server.name), "duplicate {server:?}");
        assert!(!server.host.is_empty(), "{server:?}");
        assert!(!server.host.chars().any(char::is_whitespace), "{server:?}");
        assert_ne!(server.port, 0, "{server:?}");
    }
}

// ---- a config as lines of text, so it can be written and broken ----

/// `[header]` (or none, for the top of the file) and its `key = value` lines, all as text.
#[derive(Debug, Clone)]
struct Section {
    header: Option<String>,
    entries: Vec<(String, String)>,
}

fn render(sections: &[Section]) -> String {
    let mut text = String::new();
    for section in sections {
        if let Some(header) = &section.header {
            text.push_str(header);
            text.push('\n');
        }
        for (key, value) in &section.entries {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    text
}

/// `s` as a TOML string value, exactly.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// What a valid config holds (what `Settings` should hold after parsing it).
#[derive(Debug, Clone)]
struct Expected {
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    shutdown_grace_ms: u64,
    url: String,
    token_ttl_secs: u64,
    command_timeout_ms: u64,
    token_prefix: String,
    login_count_key: String,
    poll_interval_ms: u64,
    probe_interval_ms: u64,
    strategy: String,
    /// (name, host, port)
    chat_servers: Vec<(String, String, u16)>,
    /// (weight, max_connections, draining) of each chat server.
    policies: Vec<(u64, u64, bool)>,
}

/// Written in the file, or left out (then `default` applies).
fn maybe<T: Clone + std::fmt::Debug>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.7, value)
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    (any::<IpAddr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn positive_ms() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..100_000, 1..=u64::MAX, Just(u64::MAX)]
}

fn redis_url() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        // A label starting `xn--` would have to be valid punycode.
        "[a-z][a-z0-9-]{0,15}(\\.[a-z][a-z0-9-]{0,10}){0,2}"
            .prop_filter("punycode", |host| !host.contains("xn--")),
        // redis refuses 0.0.0.0 ("Cannot connect to a wildcard address"), rightly.
        any::<std::net::Ipv4Addr>()
            .prop_filter("wildcard", |ip| !ip.is_unspecified())
            .prop_map(|ip| ip.to_string()),
    ];
    (host, any::<u16>(), prop::option::of(0u8..16), any::<bool>()).prop_map(
        |(host, port, db, password)| {
            let auth = if password {
                format!(":{PASSWORD}@")
            } else {
                String::new()
            };
            let db = db.map(|db| format!("/{db}")).unwrap_or_default();
            format!("redis://{auth}{host}:{port}{db}")
        },
    )
}

fn non_blank_name() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z][a-z0-9_-]{0,11}", 1 => any::<String>()]
        .prop_filter("blank", |name| !name.trim().is_empty())
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9][a-z0-9.-]{0,20}",
        1 => any::<IpAddr>().prop_map(|ip| ip.to_string()),
        1 => any::<String>(),
    ]
    .prop_filter("blank or with whitespace", |host| {
        !host.is_empty() && !host.chars().any(char::is_whitespace)
    })
}

/// A chat server's `weight`, `max_connections` and `draining`, each written or left out.
fn policy() -> impl Strategy<Value = (Option<u64>, Option<u64>, Option<bool>)> {
    (
        maybe(prop_oneof![1u64..10, 1..=u64::MAX]),
        maybe(prop_oneof![Just(0), 1u64..1000, any::<u64>()]),
        maybe(any::<bool>()),
    )
}

/// A valid config, as text sections, with what parsing it must give.
fn valid_config() -> impl Strategy<Value = (Vec<Section>, Expected)> {
    let server = (
        maybe(socket_addr()),
        maybe(prop::option::weighted(0.9, socket_addr())),
        maybe(positive_ms()),
    );
    let redis = (
        maybe(redis_url()),
        maybe(prop_oneof![
            0..=MAX_TOKEN_TTL_SECS,
            Just(MAX_TOKEN_TTL_SECS)
        ]),
        maybe(positive_ms()),
        maybe(any::<String>()),
        maybe(non_blank_name()),
    );
    let balancer = (
        maybe(positive_ms()),
        maybe(prop_oneof![Just(0), any::<u64>()]),
        maybe(prop::sample::select(vec![
            "least_loaded",
            "weighted",
            "p2c",
        ])),
    );
    let chat_servers = prop::collection::hash_set(non_blank_name(), 1..5).prop_flat_map(|names| {
        let n = names.len();
        (
            Just(names.into_iter().collect::<Vec<_>>()),
            prop::collection::vec((host(), 1..=u16::MAX, policy()), n),
        )
    });
    (server, redis, balancer, chat_servers, any::<bool>()).prop_flat_map(
        |(server, redis, balancer, (names, hosts), shuffled)| {
            let mut sections = Vec::new();
            let mut table = |header: &str, entries: Vec<(&str, Option<String>)>| {
                let entries: Vec<(String, String)> = entries
                    .into_iter()
                    .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
                    .collect();
                sections.push(Section {
                    header: Some(header.to_owned()),
                    entries,
                });
            };
            let int = |v: Option<u64>| v.map(|v| v.to_string());
            let string = |v: &Option<String>| v.as_deref().map(toml_str);
            let addr = |v: Option<SocketAddr>| v.map(|v| toml_str(&v.to_string()));

            let (listen, metrics_listen, grace) = server;
            table(
                "[server]",
                vec![
                    ("listen", addr(listen)),
                    (
                        "metrics_listen",
                        metrics_listen
                            .map(|m| toml_str(&m.map(|m| m.to_string()).unwrap_or_default())),
                    ),
                    ("shutdown_grace_ms", int(grace)),
                ],
            );
            let (url, ttl, timeout, prefix, count_key) = redis;
            table(
                "[redis]",
                vec![
                    ("url", string(&url)),
                    ("token_ttl_secs", int(ttl)),
                    ("command_timeout_ms", int(timeout)),
                    ("token_prefix", string(&prefix)),
                    ("login_count_key", string(&count_key)),
                ],
            );
            let (poll, probe, strategy) = balancer;
            table(
                "[balancer]",
                vec![
                    ("poll_interval_ms", int(poll)),
                    ("probe_interval_ms", int(probe)),
                    ("strategy", strategy.map(toml_str)),
                ],
            );
            let mut chat_servers = Vec::new();
            let mut policies = Vec::new();
            for (name, (host, port, (weight, max_connections, draining))) in
                names.into_iter().zip(hosts)
            {
                table(
                    "[[chat_servers]]",
                    vec![
                        ("name", Some(toml_str(&name))),
                        ("host", Some(toml_str(&host))),
                        ("port", Some(port.to_string())),
                        ("weight", int(weight)),
                        ("max_connections", int(max_connections)),
                        ("draining", draining.map(|d| d.to_string())),
                    ],
                );
                chat_servers.push((name, host, port));
                policies.push((
                    weight.unwrap_or(1),
                    max_connections.unwrap_or(0),
                    draining.unwrap_or(false),
                ));
            }

            let expected = Expected {
                listen: listen.unwrap_or_else(|| "0.0.0.0:50052".parse().expect("literal")),
                metrics_listen: metrics_listen
                    .unwrap_or_else(|| Some("127.0.0.1:9464".parse().expect("literal"))),
                shutdown_grace_ms: grace.unwrap_or(10_000),
                url: url.unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
                token_ttl_secs: ttl.unwrap_or(86_400),
                command_timeout_ms: timeout.unwrap_or(1_000),
                token_prefix: prefix.unwrap_or_else(|| "utoken_".to_owned()),
                login_count_key: count_key.unwrap_or_else(|| "logincount".to_owned()),
                poll_interval_ms: poll.unwrap_or(1_000),
                probe_interval_ms: probe.unwrap_or(2_000),
                strategy: strategy.unwrap_or("least_loaded").to_owned(),
                chat_servers,
                policies,
            };
            // Key order within a table does not matter; sometimes shuffle it.
            let sections = Just(sections);
            let sections = if shuffled {
                sections
                    .prop_flat_map(|sections| {
                        sections
                            .into_iter()
                            .map(|section| {
                                let header = section.header;
                                Just(section.entries)
                                    .prop_shuffle()
                                    .prop_map(move |entries| Section {
                                        header: header.clone(),
                                        entries,
                                    })
                            })
                            .collect::<Vec<_>>()
                    })
                    .boxed()
            } else {
                sections.boxed()
            };
            (sections, Just(expected))
        },
    )
}

fn check_expected(settings: &Settings, expected: &Expected) {
    let ms = Duration::from_millis;
    assert_eq!(settings.server.listen, expected.listen);
    assert_eq!(settings.server.metrics_listen, expected.metrics_listen);
    assert_eq!(
        settings.server.shutdown_grace,
        ms(expected.shutdown_grace_ms)
    );
    assert_eq!(
        settings.redis.topology,
        Topology::Standalone {
            url: expected.url.clone()
        }
    );
    assert_eq!(settings.redis.token_ttl_secs, expected.token_ttl_secs);
    assert_eq!(
        settings.redis.command_timeout,
        ms(expected.command_timeout_ms)
    );
    assert_eq!(settings.redis.token_prefix, expected.token_prefix);
    assert_eq!(settings.redis.login_count_key, expected.login_count_key);
    assert_eq!(
        settings.balancer.poll_interval,
        ms(expected.poll_interval_ms)
    );
    let probe = (expected.probe_interval_ms != 0).then(|| ms(expected.probe_interval_ms));
    assert_eq!(settings.balancer.probe_interval, probe);
    let servers: Vec<(String, String, u16)> = settings
        .chat_servers
        .iter()
        .map(|s| (s.name.clone(), s.host.clone(), s.port))
        .collect();
    assert_eq!(servers, expected.chat_servers);
    assert_eq!(settings.balancer.strategy.name(), expected.strategy);
    let policies: Vec<(u64, u64, bool)> = settings
        .chat_servers
        .iter()
        .map(|s| {
            let p = s.policy;
            (p.weight.get(), p.max_connections, p.draining)
        })
        .collect();
    assert_eq!(policies, expected.policies);
}

// ---- ways to break a config ----

/// Any integer literal TOML might hold, most of them out of every range the config allows.
fn any_int() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (-3i64..70_000).prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        Just(i64::MIN.to_string()),
        Just(u64::MAX.to_string()),
        Just("18446744073709551616".to_owned()),
        Just(i128::MAX.to_string()),
        Just(i128::MIN.to_string()),
        Just(u128::MAX.to_string()),
        (1usize..60).prop_map(|n| format!("1{}", "0".repeat(n))),
        (1usize..60).prop_map(|n| format!("-9{}", "9".repeat(n))),
        any::<u64>().prop_map(|v| format!("0x{v:x}")),
        any::<u32>().prop_map(|v| format!("0o{v:o}")),
        any::<u16>().prop_map(|v| format!("0b{v:b}")),
        any::<u32>().prop_map(|v| format!("+{v}")),
        Just("1_000".to_owned()),
        Just("-0".to_owned()),
    ]
}

/// Any TOML value, of any type.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any_int(),
        3 => any::<String>().prop_map(|s| toml_str(&s)),
        2 => "[a-z0-9.:/@\\[\\]% -]{0,30}".prop_map(|s| toml_str(&s)),
        1 => any::<f64>().prop_map(|f| toml::Value::Float(f).to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("1979-05-27T07:32:00Z".to_owned()),
        1 => Just("07:32:00".to_owned()),
        1 => Just("[]".to_owned()),
        1 => Just("[1, \"a\", [2]]".to_owned()),
        1 => Just("{}".to_owned()),
        1 => Just("{ name = \"a\", host = \"h\", port = 1 }".to_owned()),
        1 => Just("\"\"\"\nmulti\nline\n\"\"\"".to_owned()),
    ]
}

/// Keys of the config, other keys, and keys TOML writes in odd ways.
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "listen",
            "metrics_listen",
            "shutdown_grace_ms",
            "url",
            "token_ttl_secs",
            "command_timeout_ms",
            "token_prefix",
            "login_count_key",
            "poll_interval_ms",
            "probe_interval_ms",
            "strategy",
            "name",
            "host",
            "port",
            "weight",
            "max_connections",
            "draining",
            "chat_servers",
            "server",
            "redis",
            "balancer",
            "server.listen",
            "redis.url",
            "chat_servers.port",
            "\"port\"",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9_-]{1,12}",
        any::<String>().prop_map(|s| toml_str(&s)),
    ]
}

fn any_header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        prop::sample::select(vec![
            "[server]",
            "[redis]",
            "[balancer]",
            "[[chat_servers]]",
            "[chat_servers]",
            "[[server]]",
            "[server.listen]",
            "[redis.url]",
            "[chat_servers.name]",
            "[[chat_servers.host]]",
            "[metrics]",
            "[\"server\"]",
            "[ server ]",
        ])
        .prop_map(|h| Some(h.to_owned())),
        "[a-z_]{1,10}".prop_map(|h| Some(format!("[{h}]"))),
        any::<String>().prop_map(|h| Some(format!("[{}]", toml_str(&h)))),
        Just(None),
    ]
}

/// Text to insert anywhere: TOML punctuation, line breaks, odd characters.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "\n", "\r\n", "\r", "\"", "'", "\"\"\"", "[", "]", "[[", "{", "}", "=", ",", ".", "#",
            "\\", "\\u0000", "\t", "\0", "\u{feff}", "\u{2028}", "\u{202e}", "://", "é", "𝄞",
            "\u{7f}",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

/// A string in or just out of what some key accepts.
fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        2 => prop::sample::select(vec![
            "", " ", "\t", "a", "a b", " a", "a\n", "localhost:1", "1.2.3.4", "0.0.0.0:0",
            "[::1]:65536", "[::1]", "::1:80", "1.2.3.4:-1", "redis://h:notaport", "http://h",
            "redis://[::1", "redis://0.0.0.0", "redis://", "unix:///tmp/r.sock", "redis://h/x",
            "rediss://h", "redis://h:1/99999999999", "redis+unix:///s",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z0-9.:/@\\[\\]% -]{0,30}",
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value of an entry with any value.
    SetValue(Index, Index, String),
    /// Replace the value of an entry with another of the same type (integer or string):
    /// out of range, blank, unparsable, duplicate, ... instead of mistyped.
    SetScalar(Index, Index, String, String),
    /// Add an entry (unknown, duplicate or misplaced key) to a section.
    AddEntry(Index, String, String),
    RemoveEntry(Index, Index),
    /// Copy a section (a second [[chat_servers]] of the same name, a duplicate [server]).
    DuplicateSection(Index),
    RemoveSection(Index),
    SetHeader(Index, Option<String>),
    /// Rename one chat server after another one, or to a name from a small pool.
    SetName(Index, String),
    /// On the rendered text: insert at a character.
    InsertText(Index, String),
    /// On the rendered text: cut some characters.
    CutText(Index, usize),
    /// On the rendered text: swap two lines.
    SwapLines(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<Index>;
    prop_oneof![
        4 => (index(), index(), any_value()).prop_map(|(s, e, v)| Mutation::SetValue(s, e, v)),
        6 => (index(), index(), any_int(), any_string())
            .prop_map(|(s, e, int, string)| Mutation::SetScalar(s, e, int, string)),
        3 => (index(), any_key(), any_value()).prop_map(|(s, k, v)| Mutation::AddEntry(s, k, v)),
        2 => (index(), index()).prop_map(|(s, e)| Mutation::RemoveEntry(s, e)),
        2 => index().prop_map(Mutation::DuplicateSection),
        1 => index().prop_map(Mutation::RemoveSection),
        2 => (index(), any_header()).prop_map(|(s, h)| Mutation::SetHeader(s, h)),
        2 => (index(), prop_oneof![
            Just(String::new()), Just(" ".to_owned()), Just("a".to_owned()), Just("a ".to_owned()),
        ])
        .prop_map(|(s, name)| Mutation::SetName(s, name)),
        2 => (index(), any_text()).prop_map(|(at, t)| Mutation::InsertText(at, t)),
        1 => (index(), 1usize..20).prop_map(|(at, n)| Mutation::CutText(at, n)),
        1 => (index(), index()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn mutate(mut sections: Vec<Section>, mutations: &[Mutation]) -> String {
    let mut text_edits = Vec::new();
    for mutation in mutations {
        let n = sections.len();
        match mutation.clone() {
            Mutation::SetValue(s, e, value) if n > 0 => {
                let entries = &mut sections[s.index(n)].entries;
                if !entries.is_empty() {
                    let i = e.index(entries.len());
                    entries[i].1 = value;
                }
            }
            Mutation::SetScalar(s, e, int, string) if n > 0 => {
                let entries = &mut sections[s.index(n)].entries;
                if !entries.is_empty() {
                    let i = e.index(entries.len());
                    let value = &mut entries[i].1;
                    *value = if value.starts_with(['"', '\'']) {
                        toml_str(&string)
                    } else {
                        int
                    };
                }
            }
            Mutation::AddEntry(s, key, value) if n > 0 => {
                sections[s.index(n)].entries.push((key, value));
            }
            Mutation::RemoveEntry(s, e) if n > 0 => {
                let entries = &mut sections[s.index(n)].entries;
                if !entries.is_empty() {
                    entries.remove(e.index(entries.len()));
                }
            }
            Mutation::DuplicateSection(s) if n > 0 => {
                let copy = sections[s.index(n)].clone();
                sections.push(copy);
            }
            Mutation::RemoveSection(s) if n > 0 => {
                sections.remove(s.index(n));
            }
            Mutation::SetHeader(s, header) if n > 0 => sections[s.index(n)].header = header,
            Mutation::SetName(s, name) if n > 0 => {
                let section = &mut sections[s.index(n)];
                for (key, value) in &mut section.entries {
                    if key == "name" {
                        *value = toml_str(&name);
                    }
                }
            }
            edit @ (Mutation::InsertText(..) | Mutation::CutText(..) | Mutation::SwapLines(..)) => {
                text_edits.push(edit);
            }
            _ => {}
        }
    }

    let mut text = render(&sections);
    for edit in text_edits {
        let mut chars: Vec<char> = text.chars().collect();
        match edit {
            Mutation::InsertText(at, inserted) => {
                let at = at.index(chars.len() + 1);
                chars.splice(at..at, inserted.chars());
                text = chars.into_iter().collect();
            }
            Mutation::CutText(at, len) if !chars.is_empty() => {
                let at = at.index(chars.len());
                chars.drain(at..(at + len).min(chars.len()));
                text = chars.into_iter().collect();
            }
            Mutation::SwapLines(a, b) => {
                let mut lines: Vec<&str> = text.split('\n').collect();
                let n = lines.len();
                lines.swap(a.index(n), b.index(n));
                text = lines.join("\n");
            }
            _ => {}
        }
    }
    text
}

/// No override, a valid one, or any string at all (`STATUS_REDIS_URL` is whatever was set).
fn url_override() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => Just(None),
        1 => Just(Some(String::new())),
        2 => redis_url().prop_map(Some),
        2 => any::<String>().prop_map(Some),
        2 => (redis_url(), any_text(), any::<Index>()).prop_map(|(url, text, at)| {
            // A valid URL with something inserted into it.
            let mut chars: Vec<char> = url.chars().collect();
            let at = at.index(chars.len() + 1);
            chars.splice(at..at, text.chars());
            Some(chars.into_iter().collect())
        }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>(), url in url_override()) {
        let _ = parse_checked(&text, url.as_deref());
    }

    #[test]
    fn toml_like_text_never_panics(
        text in "([\\[\\]{}=\".,#'\\n a-z_0-9:-]|server|redis|chat_servers|name|host|port){0,80}",
    ) {
        let _ = parse_checked(&text, None);
    }

    #[test]
    fn valid_configs_parse_to_what_they_say((sections, expected) in valid_config()) {
        let text = render(&sections);
        match parse_checked(&text, None) {
            Ok(settings) => check_expected(&settings, &expected),
            Err(message) => panic!("valid config rejected: {message}\n{text}"),
        }
    }

    #[test]
    fn a_valid_url_override_replaces_any_url_in_the_file(
        (sections, expected) in valid_config(),
        url in redis_url(),
    ) {
        let settings = parse_checked(&render(&sections), Some(&url)).expect("valid");
        check_expected(&settings, &Expected { url, ..expected });
    }

    #[test]
    fn mutated_configs_never_panic(
        (sections, _) in valid_config(),
        mutations in prop::collection::vec(mutation(), 1..6),
        url in url_override(),
    ) {
        let mut text = mutate(sections, &mutations);
        let text_edited = mutations.iter().any(|m| {
            matches!(m, Mutation::InsertText(..) | Mutation::CutText(..) | Mutation::SwapLines(..))
        });
        if text_edited {
            // A cut or added quote can make the rest of the file one value, which the error
            // quotes, password of `redis.url` and all: the file's own text, not a redaction
            // failure (redaction is checked wherever the URL is still a URL).
            text = text.replace(PASSWORD, "hunter2");
        }
        let _ = parse_checked(&text, url.as_deref());
    }

    #[test]
    fn passwords_never_appear_in_errors(
        scheme in prop::sample::select(vec!["redis://", "rediss://", "unix://", "http://", ""]),
        user in "[a-z]{0,5}",
        before in any_text(),
        after in any_text(),
        host in "[a-z0-9.:/?#@\\[\\]%=&-]{0,20}",
        in_file in any::<bool>(),
    ) {
        // `user://PASSWORD@host`: the password would be a user name, which is shown.
        prop_assume!(!(scheme.is_empty() && !user.is_empty() && before.starts_with("//")));
        let url = format!("{scheme}{user}:{before}{PASSWORD}{after}@{host}");
        let result = if in_file {
            let text = format!(
                "[redis]\nurl = {}\n[[chat_servers]]\nname = \"c\"\nhost = \"h\"\nport = 1\n",
                toml_str(&url)
            );
            parse_checked(&text, None)
        } else {
            parse_checked("[[chat_servers]]\nname = \"c\"\nhost = \"h\"\nport = 1\n", Some(&url))
        };
        // `parse_checked` already looked for the password in any error.
        drop(result);
    }
}
