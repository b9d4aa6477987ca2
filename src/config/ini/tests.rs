//! Unit tests of the INI config: the deployed file, the INI syntax it may come in, every
//! error as its one line, and the TOML it converts to parsing back to the same settings.

use std::path::Path;

use proptest::prelude::*;
use redis::IntoConnectionInfo;

use super::{IniConfig, PasswordInToml, is_ini_path, parse};
use crate::config::testing::parse as parse_toml;
use crate::config::{Settings, breaks_line};

const PATH: &str = "conf/status.ini";

/// docs/contract.md §8, verbatim.
const DEPLOYED: &str = "[StatusServer]
Port = 50052
Host = 0.0.0.0
[Mysql]
Host = 127.0.0.1
Port = 33060
User = root
Passwd = secret
Schema = userData
[Redis]
Host = 127.0.0.1
Port = 6379
Passwd = secret
[chatservers]
Name = chatserver1,chatserver2
[chatserver1]
Name = chatserver1
Host = 127.0.0.1
Port = 8090
[chatserver2]
Name = chatserver2
Host = 127.0.0.1
Port = 8091
";

/// The TOML config the deployed file stands for.
const DEPLOYED_AS_TOML: &str = r#"
[redis]
url = "redis://:secret@127.0.0.1:6379"

[[chat_servers]]
name = "chatserver1"
host = "127.0.0.1"
port = 8090

[[chat_servers]]
name = "chatserver2"
host = "127.0.0.1"
port = 8091
"#;

/// The smallest valid INI file; `{port}` of [StatusServer] and more sections may be added.
fn minimal(extra: &str) -> String {
    format!(
        "[StatusServer]\nHost = 127.0.0.1\nPort = 7000\n[Redis]\nHost = 10.0.0.2\nPort = 6379\n\
         [chatservers]\nName = a\n[a]\nName = a\nHost = 10.0.0.5\nPort = 8090\n{extra}"
    )
}

fn read(text: &str) -> IniConfig {
    parse(text, Path::new(PATH), None).unwrap_or_else(|e| panic!("valid INI: {e}"))
}

fn settings(text: &str) -> Settings {
    read(text).settings
}

/// The error line for `text`, checked for what every error must be.
fn error(text: &str) -> String {
    let Err(err) = parse(text, Path::new(PATH), None) else {
        panic!("should be rejected: {text:?}");
    };
    let message = err.to_string();
    assert!(
        !message.chars().any(breaks_line),
        "not one line: {message:?}"
    );
    assert!(
        message.starts_with(&format!("{PATH}: ")),
        "does not name the file: {message}"
    );
    message
}

/// The error for `text` without the leading path.
fn problem(text: &str) -> String {
    error(text)
        .strip_prefix(&format!("{PATH}: "))
        .expect("checked by error()")
        .to_owned()
}

// ---- accepted files ----

#[test]
fn only_ini_paths_are_ini() {
    for path in ["status.ini", "/etc/chat/config.INI", "a.b.Ini"] {
        assert!(is_ini_path(Path::new(path)), "{path}");
    }
    for path in ["status.toml", "ini", "status.ini.bak", "status", ".ini"] {
        assert!(!is_ini_path(Path::new(path)), "{path}");
    }
}

#[test]
fn the_deployed_file_reads_as_its_toml_equivalent() {
    let config = read(DEPLOYED);
    let expected = parse_toml(DEPLOYED_AS_TOML).expect("valid TOML");
    assert_eq!(config.settings, expected);
    // Spelled out, the parts the INI file gives:
    assert_eq!(
        config.settings.server.listen,
        "0.0.0.0:50052".parse().expect("literal")
    );
    assert_eq!(
        config.settings.redis.url(),
        Some("redis://:secret@127.0.0.1:6379")
    );
    let servers: Vec<_> = config
        .settings
        .chat_servers
        .iter()
        .map(|s| (s.name.as_str(), s.host.as_str(), s.port))
        .collect();
    assert_eq!(
        servers,
        [
            ("chatserver1", "127.0.0.1", 8090),
            ("chatserver2", "127.0.0.1", 8091)
        ]
    );
    assert!(config.has_redis_password());
    let skipped: Vec<_> = config
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.why))
        .collect();
    assert_eq!(skipped, [("Mysql", "not used by the StatusServer")]);
}

#[test]
fn comments_spacing_and_crlf_change_nothing() {
    let expected = settings(DEPLOYED);
    let crlf = DEPLOYED.replace('\n', "\r\n");
    assert_eq!(settings(&crlf), expected);
    let tight = DEPLOYED.replace(" = ", "=");
    assert_eq!(settings(&tight), expected);
    let loose = DEPLOYED
        .replace(" = ", " \t=   ")
        .replace("\n[", "\n\n  ; a comment\n# another\n   [");
    assert_eq!(settings(&loose), expected);
    let bom = format!("\u{feff}; exported on Windows\r\n{crlf}");
    assert_eq!(settings(&bom), expected);
}

#[test]
fn names_are_trimmed_in_the_list_and_kept_in_list_order() {
    let text = DEPLOYED.replace(
        "Name = chatserver1,chatserver2",
        "Name =  chatserver2 ,\tchatserver1 ",
    );
    let names: Vec<_> = settings(&text)
        .chat_servers
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["chatserver2", "chatserver1"]);
}

#[test]
fn a_chat_server_is_named_by_its_sections_name_key() {
    // As the C++ server did: `Name` inside the section is the field of the load hash.
    let text = minimal("").replace("[a]\nName = a", "[a]\nName = chat-a");
    assert_eq!(settings(&text).chat_servers[0].name, "chat-a");
}

#[test]
fn no_password_when_passwd_is_empty_or_absent() {
    let with_empty = minimal("").replace("Port = 6379\n", "Port = 6379\nPasswd =\n");
    for text in [minimal(""), with_empty] {
        let config = read(&text);
        assert_eq!(config.settings.redis.url(), Some("redis://10.0.0.2:6379"));
        assert!(!config.has_redis_password());
    }
}

#[test]
fn the_password_is_percent_encoded_and_decodes_to_itself() {
    for password in ["p@ss:w/rd", "a;b#c d", "100%", "é\"'\\?&=+", "secret"] {
        let text = minimal("").replace(
            "Port = 6379\n",
            &format!("Port = 6379\nPasswd = {password}\n"),
        );
        let url = settings(&text).redis.url().expect("standalone").to_owned();
        let info = url
            .as_str()
            .into_connection_info()
            .unwrap_or_else(|e| panic!("{url} is a Redis URL: {e}"));
        assert_eq!(info.redis_settings().password(), Some(password), "{url}");
        assert_eq!(info.redis_settings().username(), None, "{url}");
    }
}

#[test]
fn ipv6_addresses_go_in_brackets() {
    let text = minimal("")
        .replace("Host = 127.0.0.1", "Host = ::")
        .replace("Host = 10.0.0.2", "Host = ::1");
    let settings = settings(&text);
    assert_eq!(
        settings.server.listen,
        "[::]:7000".parse().expect("literal")
    );
    assert_eq!(settings.redis.url(), Some("redis://[::1]:6379"));
}

#[test]
fn the_env_override_replaces_the_url_as_for_toml() {
    let config = parse(
        DEPLOYED,
        Path::new(PATH),
        Some("redis://:other@10.9.9.9:6380"),
    )
    .expect("valid");
    assert_eq!(
        config.settings.redis.url(),
        Some("redis://:other@10.9.9.9:6380")
    );
    let config = parse(DEPLOYED, Path::new(PATH), Some("")).expect("valid");
    assert_eq!(
        config.settings.redis.url(),
        Some("redis://:secret@127.0.0.1:6379")
    );
    // Replaced, so a Redis Host no URL could hold is never looked at.
    let text = DEPLOYED.replace("Host = 127.0.0.1\nPort = 6379", "Host = a b\nPort = 6379");
    assert!(parse(&text, Path::new(PATH), Some("redis://10.9.9.9")).is_ok());

    let message = parse(
        DEPLOYED,
        Path::new(PATH),
        Some("redis://:hunter2@h:notaport"),
    )
    .err()
    .expect("rejected")
    .to_string();
    assert!(
        message.starts_with(&format!(
            "{PATH}: STATUS_REDIS_URL = \"redis://:***@h:notaport\""
        )),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn unused_sections_are_skipped_and_named() {
    let config = read(&minimal(
        "[GateServer]\nPort = 8080\n[b]\nName = b\nHost = h\nPort = 1\n[Empty]\n",
    ));
    let skipped: Vec<_> = config
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.why))
        .collect();
    assert_eq!(
        skipped,
        [
            ("GateServer", "not used by the StatusServer"),
            ("b", "not listed in [chatservers] Name"),
            ("Empty", "not used by the StatusServer"),
        ]
    );
}

// ---- rejected files: one line each, naming section, key and line ----

#[test]
fn bad_ports() {
    for (text, expected) in [
        (
            DEPLOYED.replace("Port = 50052", "Port = 70000"),
            "line 2: [StatusServer] Port = 70000: port must be in 1-65535",
        ),
        (
            DEPLOYED.replace("Port = 6379", "Port = abc"),
            "line 12: [Redis] Port = \"abc\": port must be in 1-65535",
        ),
        (
            DEPLOYED.replace("Port = 8091", "Port = 0"),
            "line 23: [chatserver2] Port = 0: port must be in 1-65535",
        ),
        (
            DEPLOYED.replace("Port = 8090", "Port = -1"),
            "line 19: [chatserver1] Port = \"-1\": port must be in 1-65535",
        ),
        (
            DEPLOYED.replace("Port = 8090", "Port ="),
            "line 19: [chatserver1] Port = \"\": port must be in 1-65535",
        ),
        (
            DEPLOYED.replace("Port = 8090", &format!("Port = 1{}", "0".repeat(40))),
            &format!(
                "line 19: [chatserver1] Port = 1{}: port must be in 1-65535",
                "0".repeat(40)
            ),
        ),
    ] {
        assert_eq!(problem(&text), expected, "{text}");
    }
}

#[test]
fn missing_sections() {
    for (section, expected) in [
        (
            "StatusServer",
            "missing section [StatusServer] (its Host and Port are the gRPC address)",
        ),
        (
            "Redis",
            "missing section [Redis] (Host, Port and Passwd of the Redis server)",
        ),
        (
            "chatservers",
            "missing section [chatservers] (its Name lists the chat servers)",
        ),
    ] {
        let text = DEPLOYED.replace(&format!("[{section}]"), "[Renamed]");
        assert_eq!(problem(&text), expected);
    }
    assert_eq!(
        problem(&DEPLOYED.replace("[Redis]", "[redis]")),
        "missing section [Redis] (Host, Port and Passwd of the Redis server) (there is a \
         [redis]; section names are case-sensitive)"
    );
    assert_eq!(
        problem(""),
        "missing section [StatusServer] (its Host and Port are the gRPC address)"
    );
}

#[test]
fn missing_keys_point_at_the_section() {
    for (text, expected) in [
        (
            DEPLOYED.replace("Host = 0.0.0.0\n", ""),
            "line 1: [StatusServer]: missing key `Host`",
        ),
        (
            DEPLOYED.replace("Host = 127.0.0.1\nPort = 6379\n", "Host = 127.0.0.1\n"),
            "line 10: [Redis]: missing key `Port`",
        ),
        (
            DEPLOYED.replace("Name = chatserver1,chatserver2\n", ""),
            "line 14: [chatservers]: missing key `Name`",
        ),
        (
            DEPLOYED.replace("Name = chatserver2\n", ""),
            "line 20: [chatserver2]: missing key `Name`",
        ),
        (
            DEPLOYED.replace(
                "Name = chatserver1\nHost = 127.0.0.1\n",
                "Name = chatserver1\n",
            ),
            "line 16: [chatserver1]: missing key `Host`",
        ),
    ] {
        assert_eq!(problem(&text), expected, "{text}");
    }
}

#[test]
fn unknown_keys_in_sections_the_server_reads() {
    assert_eq!(
        problem(&DEPLOYED.replace(
            "Passwd = secret\n[chatservers]",
            "Passwd = secret\nDb = 2\n[chatservers]"
        )),
        "line 14: [Redis]: unknown key `Db`, expected one of `Host`, `Port`, `Passwd`"
    );
    assert_eq!(
        problem(&DEPLOYED.replace("Port = 8091", "port = 8091")),
        "line 23: [chatserver2]: unknown key `port`, expected one of `Name`, `Host`, `Port` \
         (keys are case-sensitive)"
    );
    // Sections the server does not read may hold anything.
    assert!(
        parse(
            &minimal("[Mysql]\nAnything = goes\n"),
            Path::new(PATH),
            None
        )
        .is_ok()
    );
}

#[test]
fn bad_lists_of_chat_servers() {
    for (list, expected) in [
        ("", "\"\": lists no chat server (at least one is required)"),
        (
            " , ",
            "\",\": lists no chat server (at least one is required)",
        ),
        (
            "chatserver1,,chatserver2",
            "\"chatserver1,,chatserver2\": an empty name in the list",
        ),
        (
            "chatserver1, chatserver2,",
            "\"chatserver1, chatserver2,\": an empty name in the list",
        ),
        (
            "chatserver1,chatserver2, chatserver1",
            "\"chatserver1,chatserver2, chatserver1\": \"chatserver1\" is listed twice",
        ),
        (
            "chatserver1,chatserver3",
            "\"chatserver1,chatserver3\": \"chatserver3\" has no [chatserver3] section",
        ),
        (
            "Chatserver1",
            "\"Chatserver1\": \"Chatserver1\" has no [Chatserver1] section (there is a \
             [chatserver1]; section names are case-sensitive)",
        ),
        (
            "chatserver1,Redis",
            "\"chatserver1,Redis\": \"Redis\" is not a chat server: [Redis] is a section of its own",
        ),
    ] {
        let text = DEPLOYED.replace("Name = chatserver1,chatserver2", &format!("Name = {list}"));
        assert_eq!(
            problem(&text),
            format!("line 15: [chatservers] Name = {expected}"),
            "{list:?}"
        );
    }
}

#[test]
fn chat_server_values_are_checked_by_the_toml_rules() {
    for (text, expected) in [
        (
            DEPLOYED.replace("Name = chatserver2\nHost", "Name =\nHost"),
            "line 21: [chatserver2] Name = \"\": must not be empty",
        ),
        (
            DEPLOYED.replace("Name = chatserver2\nHost", "Name = chatserver1\nHost"),
            "line 21: [chatserver2] Name = \"chatserver1\": duplicate name, already used by \
             [chatserver1] on line 17",
        ),
        (
            DEPLOYED.replace("Host = 127.0.0.1\nPort = 8090", "Host =\nPort = 8090"),
            "line 18: [chatserver1] Host = \"\": must not be empty",
        ),
        (
            DEPLOYED.replace(
                "Host = 127.0.0.1\nPort = 8091",
                "Host = chat 2\nPort = 8091",
            ),
            "line 22: [chatserver2] Host = \"chat 2\": must not contain whitespace",
        ),
    ] {
        assert_eq!(problem(&text), expected, "{text}");
    }
}

#[test]
fn addresses_are_checked_by_the_toml_rules_in_ini_words() {
    assert_eq!(
        problem(&DEPLOYED.replace("Host = 0.0.0.0", "Host = localhost")),
        "line 3: [StatusServer] Host, Port -> server.listen = \"localhost:50052\": not a socket \
         address (expected IP:port, e.g. 0.0.0.0:50052 or [::]:50052)"
    );
    let message =
        problem(&DEPLOYED.replace("Host = 127.0.0.1\nPort = 6379", "Host = a/b\nPort = 6379"));
    assert!(
        message.starts_with(
            "line 11: [Redis] Host, Port, Passwd -> redis.url = \"redis://:***@a/b:6379\": not a \
             usable Redis URL"
        ),
        "{message}"
    );
    assert!(!message.contains("secret"), "password leaked: {message}");
    let text = minimal("").replace("Host = 10.0.0.2", "Host = a/b");
    assert!(
        problem(&text)
            .starts_with("line 5: [Redis] Host, Port -> redis.url = \"redis://a/b:6379\""),
        "{}",
        problem(&text)
    );
}

#[test]
fn syntax_errors_are_config_errors() {
    assert_eq!(
        problem(&DEPLOYED.replace("[Mysql]", "[Mysql")),
        "line 4: a section header must end with `]`"
    );
    assert_eq!(
        problem(&DEPLOYED.replace("[chatserver2]", "[chatserver1]")),
        "line 20: [chatserver1]: duplicate section, first on line 16"
    );
}

#[test]
fn odd_input_never_panics_and_stays_one_line() {
    for text in [
        "\u{feff}",
        "\r\n\r\n",
        "[",
        "]",
        "=",
        "[StatusServer]\nHost = \u{2028}\nPort = 1\n",
        "[a\u{202e}b]\n",
        "é = é",
        "\0[\0]\0",
    ] {
        let _ = parse(text, Path::new(PATH), None).map_err(|e| {
            let message = e.to_string();
            assert!(!message.chars().any(breaks_line), "{message:?}");
        });
    }
}

proptest! {
    /// Whatever the text: no panic; a rejection is one line naming the file, and never
    /// shows the password.
    #[test]
    fn any_text_gives_settings_or_one_line_without_the_password(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("[StatusServer]".to_owned()),
                Just("[Redis]".to_owned()),
                Just("[chatservers]".to_owned()),
                Just("[a]".to_owned()),
                Just("Passwd = Pw7secretQ".to_owned()),
                Just("Pw7secretQ".to_owned()),
                "(Host|Port|Name) ?= ?[a-z0-9., :]{0,12}",
                "[\\[\\]=;# a-zA-Z0-9\r\t\u{2028}]{0,16}",
            ],
            0..24,
        )
    ) {
        let text = lines.join("\n");
        if let Err(e) = parse(&text, Path::new(PATH), None) {
            let message = e.to_string();
            prop_assert!(!message.chars().any(breaks_line), "{:?}", message);
            prop_assert!(message.starts_with(&format!("{PATH}: ")), "{}", message);
            prop_assert!(!message.contains("Pw7secretQ"), "{}", message);
        }
    }
}

// ---- the TOML equivalent ----

#[test]
fn the_toml_parses_back_to_the_same_settings() {
    let config = read(DEPLOYED);
    let kept = config.to_toml(PasswordInToml::Keep);
    assert_eq!(parse_toml(&kept).expect("valid TOML"), config.settings);

    let left_out = config.to_toml(PasswordInToml::LeaveOut);
    assert!(!left_out.contains("secret"), "{left_out}");
    let without = parse_toml(&left_out).expect("valid TOML");
    assert_eq!(without.redis.url(), Some("redis://127.0.0.1:6379"));
    let with_env = Settings::parse(
        &left_out,
        Path::new("converted.toml"),
        config.settings.redis.url(),
    )
    .expect("valid TOML");
    assert_eq!(with_env, config.settings);
}

#[test]
fn odd_values_survive_the_trip() {
    let text = minimal("[\"q\\]\nName = \"q\\\nHost = h\"ost\\\nPort = 65535\n")
        .replace("Name = a\n[a]", "Name = a, \"q\\\n[a]")
        .replace("Host = 10.0.0.2", "Host = ::1")
        .replace("Port = 6379\n", "Port = 1\nPasswd = p@\"ss'\\#\n");
    let config = read(&text);
    assert_eq!(config.settings.chat_servers[1].name, "\"q\\");
    for password in [PasswordInToml::Keep, PasswordInToml::LeaveOut] {
        let toml = config.to_toml(password);
        let back = Settings::parse(
            &toml,
            Path::new("converted.toml"),
            config.settings.redis.url(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(back, config.settings, "{toml}");
    }
}

#[test]
fn the_toml_is_commented_like_the_shipped_config() {
    let toml = read(DEPLOYED).to_toml(PasswordInToml::LeaveOut);
    let expected = r#"# status-server config, converted by `statusctl convert-config` from the C++
# StatusServer's INI file conf/status.ini.
# Every key is described in the README ("Config"). The INI file gave server.listen,
# redis.url and the [[chat_servers]]; the other values shown are the defaults.
# Left out: [Mysql] (not used by the StatusServer).

[server]
listen = "0.0.0.0:50052"          # gRPC address ([StatusServer] Host, Port)
metrics_listen = "127.0.0.1:9464" # HTTP /metrics and /healthz; "" turns them off
shutdown_grace_ms = 10000         # drain time after SIGTERM/SIGINT, then cut off (exit 1)

[redis]
# [Redis] Passwd is left out, to keep the password out of this file. Give it to
# status-server in its environment instead: STATUS_REDIS_URL, when set, replaces url:
#   STATUS_REDIS_URL='redis://:PASSWORD@127.0.0.1:6379'
# with PASSWORD percent-encoded (`statusctl convert-config --keep-password`
# writes it into url instead).
url = "redis://127.0.0.1:6379"    # [Redis] Host, Port; env STATUS_REDIS_URL overrides
token_ttl_secs = 86400            # 0: tokens never expire
command_timeout_ms = 1000         # deadline of every Redis command
token_prefix = "utoken_"          # token of user N: key utoken_N
login_count_key = "logincount"    # hash the ChatServers publish their counts in

[balancer]
poll_interval_ms = 1000           # how often the load hash is read
probe_interval_ms = 2000          # TCP probe of each chat server; 0 turns probing off

[[chat_servers]]                  # [chatserver1]
name = "chatserver1"
host = "127.0.0.1"
port = 8090

[[chat_servers]]                  # [chatserver2]
name = "chatserver2"
host = "127.0.0.1"
port = 8091
"#;
    assert_eq!(toml, expected);

    let kept = read(DEPLOYED).to_toml(PasswordInToml::Keep);
    assert!(
        kept.contains(
            "# url holds [Redis] Passwd: keep this file as private as the INI file was.\n\
             url = \"redis://:secret@127.0.0.1:6379\" # [Redis] Host, Port; env STATUS_REDIS_URL overrides\n"
        ),
        "{kept}"
    );
    // Without a password there is nothing to say about it.
    let plain = read(&minimal("")).to_toml(PasswordInToml::LeaveOut);
    assert!(!plain.contains("Passwd"), "{plain}");
    assert!(!plain.contains("Left out"), "{plain}");
}
