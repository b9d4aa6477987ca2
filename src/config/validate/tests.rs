//! Unit tests of `validate`: pure, no I/O.
use std::path::Path;
use std::time::Duration;

use crate::config::testing::{EXAMPLE, ONE_SERVER, PATH, assert_mentions, error, parse};
use std::path::PathBuf;

use crate::config::{ClientFiles, RedisTlsFiles, ReplyCompression, Settings, Topology};

#[test]
fn env_override_replaces_url() {
    let settings = Settings::parse(
        EXAMPLE,
        Path::new(PATH),
        Some("redis://:pw@10.9.9.9:6379/1"),
    )
    .expect("valid");
    assert_eq!(
        settings.redis.topology,
        Topology::Standalone {
            url: "redis://:pw@10.9.9.9:6379/1".to_owned()
        }
    );
}

#[test]
fn env_override_wins_over_a_bad_file_url() {
    let text = format!("[redis]\nurl = \"http://nope\"\n{ONE_SERVER}");
    let settings = Settings::parse(&text, Path::new(PATH), Some("redis://10.9.9.9"))
        .expect("the file's url is replaced, so never checked");
    assert_eq!(
        settings.redis.topology,
        Topology::Standalone {
            url: "redis://10.9.9.9".to_owned()
        }
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
    let text =
        format!("{ONE_SERVER}\n[[chat_servers]]\nname = \"chat1\"\nhost = \"h2\"\nport = 8091\n");
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
        let text =
            format!("{ONE_SERVER}\n[[chat_servers]]\nname = \"c2\"\nhost = \"h\"\nport = {port}\n");
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
fn admin_listen_defaults_to_loopback_and_empty_turns_it_off() {
    let default = parse(ONE_SERVER).expect("valid");
    assert_eq!(
        default.server.admin_listen,
        Some("127.0.0.1:50053".parse().expect("literal"))
    );
    let off = parse(&format!("[server]\nadmin_listen = \"\"\n{ONE_SERVER}"))
        .expect("empty admin_listen is valid");
    assert_eq!(off.server.admin_listen, None);
    let message = error(&format!(
        "[server]\nadmin_listen = \"localhost:1\"\n{ONE_SERVER}"
    ));
    assert_mentions(
        &message,
        &["line 2: ", "server.admin_listen = \"localhost:1\""],
    );
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
fn sentinel_and_cluster_modes() {
    let text = format!(
        "[redis]\nmode = \"sentinel\"\nsentinels = [\"redis://127.0.0.1:26379\", \"redis://:pw@h2:26380\"]\nmaster_name = \"m\"\n{ONE_SERVER}"
    );
    assert_eq!(
        parse(&text).expect("valid").redis.topology,
        Topology::Sentinel {
            sentinels: vec![
                "redis://127.0.0.1:26379".to_owned(),
                "redis://:pw@h2:26380".to_owned()
            ],
            master_name: "m".to_owned(),
        }
    );
    let text = format!(
        "[redis]\nmode = \"cluster\"\nnodes = [\"redis://127.0.0.1:7000\"]\nmin_replicas_ack = 1\n{ONE_SERVER}"
    );
    let redis = parse(&text).expect("valid").redis;
    assert_eq!(
        redis.topology,
        Topology::Cluster {
            nodes: vec!["redis://127.0.0.1:7000".to_owned()]
        }
    );
    assert_eq!(redis.min_replicas_ack, 1);
}

#[test]
fn redis_mode_errors_in_full() {
    for (redis, expected) in [
        (
            "mode = \"replicated\"",
            "line 2: redis.mode = \"replicated\": must be \"standalone\", \"sentinel\" or \"cluster\"",
        ),
        (
            "nodes = [\"redis://h:1\"]",
            "line 2: redis.nodes: only for mode = \"cluster\" (mode is \"standalone\")",
        ),
        (
            "mode = \"cluster\"\nurl = \"redis://h:1\"\nnodes = [\"redis://h:1\"]",
            "line 3: redis.url: only for mode = \"standalone\" (mode is \"cluster\")",
        ),
        (
            "mode = \"cluster\"\nmaster_name = \"m\"\nnodes = [\"redis://h:1\"]",
            "line 3: redis.master_name: only for mode = \"sentinel\" (mode is \"cluster\")",
        ),
        (
            "mode = \"sentinel\"\nmaster_name = \"m\"",
            "redis.sentinels: required with mode = \"sentinel\" (at least one redis:// URL)",
        ),
        (
            "mode = \"sentinel\"\nsentinels = []\nmaster_name = \"m\"",
            "line 3: redis.sentinels = []: needs at least one redis:// URL",
        ),
        (
            "mode = \"sentinel\"\nsentinels = [\"redis://h:1\"]",
            "redis.master_name: required with mode = \"sentinel\" (the master the sentinels monitor)",
        ),
        (
            "mode = \"cluster\"\nnodes = []",
            "line 3: redis.nodes = []: needs at least one redis:// URL",
        ),
        (
            "mode = \"cluster\"\nnodes = [\"redis://h:1\", \"http://u:secret@h\"]",
            "line 3: redis.nodes[1] = \"http://u:***@h\": not a usable Redis URL",
        ),
        (
            "min_replicas_ack = 101",
            "line 2: redis.min_replicas_ack = 101: must be 0 (no wait) or a number of replicas from 1 to 100",
        ),
    ] {
        let message = error(&format!("[redis]\n{redis}\n{ONE_SERVER}"));
        assert!(
            message.contains(expected),
            "{redis:?}:\n  got      {message}\n  expected {expected}"
        );
        assert!(!message.contains("secret"), "{message}");
    }
    // The env override belongs to the standalone url.
    let text = format!("[redis]\nmode = \"cluster\"\nnodes = [\"redis://h:1\"]\n{ONE_SERVER}");
    let message = Settings::parse(&text, Path::new(PATH), Some("redis://:pw@x"))
        .expect_err("override without url")
        .to_string();
    assert!(message.contains("STATUS_REDIS_URL"), "{message}");
    assert!(!message.contains("pw"), "{message}");
}

#[test]
fn integer_messages_in_full() {
    for (text, expected) in [
        (
            "[redis]\ncommand_timeout_ms = 0\n",
            "line 2: redis.command_timeout_ms = 0: must be a positive number of milliseconds",
        ),
        (
            "[server]\nshutdown_grace_ms = 18446744073709551616\n",
            "line 2: server.shutdown_grace_ms = 18446744073709551616: too large, at most \
             18446744073709551615 milliseconds",
        ),
        (
            "[balancer]\nprobe_interval_ms = -1\n",
            "line 2: balancer.probe_interval_ms = -1: must be 0 (probing off) or a positive \
             number of milliseconds",
        ),
        (
            "[redis]\ntoken_ttl_secs = 1000000000000001\n",
            "line 2: redis.token_ttl_secs = 1000000000000001: must be 0 (tokens never \
             expire) or a number of seconds from 1 to 1000000000000000",
        ),
    ] {
        assert_eq!(
            error(&format!("{text}{ONE_SERVER}")),
            format!("{PATH}: {expected}")
        );
    }
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
fn unknown_strategy() {
    for value in ["\"round_robin\"", "\"\"", "\"Weighted\""] {
        let message = error(&format!("[balancer]\nstrategy = {value}\n{ONE_SERVER}"));
        assert_eq!(
            message,
            format!(
                "{PATH}: line 2: balancer.strategy = {value}: not a strategy; must be one \
                 of \"least_loaded\", \"weighted\", \"p2c\""
            )
        );
    }
    let message = error(&format!("[balancer]\nstrategy = 3\n{ONE_SERVER}"));
    assert_mentions(&message, &["line 2: ", "strategy", "expected a string"]);
}

#[test]
fn chat_server_policy_messages_in_full() {
    for (line, expected) in [
        (
            "weight = 0",
            "chat_servers[0].weight = 0: must be a positive integer",
        ),
        (
            "weight = -3",
            "chat_servers[0].weight = -3: must be a positive integer",
        ),
        (
            "weight = 18446744073709551616",
            "chat_servers[0].weight = 18446744073709551616: too large, at most \
             18446744073709551615",
        ),
        (
            "max_connections = -1",
            "chat_servers[0].max_connections = -1: must be 0 (no limit) or a positive \
             number of connections",
        ),
        (
            "max_connections = 18446744073709551616",
            "chat_servers[0].max_connections = 18446744073709551616: too large, at most \
             18446744073709551615 connections",
        ),
    ] {
        assert_eq!(
            error(&format!("{ONE_SERVER}{line}\n")),
            format!("{PATH}: line 5: {expected}")
        );
    }
}

#[test]
fn policy_values_of_the_wrong_type() {
    for (line, shown) in [
        ("weight = 1.5", "1.5"),
        ("weight = \"2\"", "\"2\""),
        ("max_connections = true", "true"),
        ("draining = \"yes\"", "\"yes\""),
        ("draining = 1", "1"),
    ] {
        let key = line.split(' ').next().expect("a key");
        let message = error(&format!("{ONE_SERVER}{line}\n"));
        assert_mentions(&message, &["line 5: ", key, shown]);
    }
}

#[test]
fn a_policy_error_names_the_server_it_is_in() {
    let text = format!(
        "{ONE_SERVER}\n[[chat_servers]]\nname = \"c2\"\nhost = \"h\"\nport = 1\nweight = 0\n"
    );
    assert_mentions(
        &error(&text),
        &["line 10: ", "chat_servers[1].weight = 0: "],
    );
}

#[test]
fn policy_extremes_are_accepted() {
    let text = format!(
        "{ONE_SERVER}weight = 18446744073709551615\nmax_connections = 18446744073709551615\n"
    );
    let policy = parse(&text).expect("valid").chat_servers[0].policy;
    assert_eq!(policy.weight.get(), u64::MAX);
    assert_eq!(policy.max_connections, u64::MAX);
    let text = format!("{ONE_SERVER}weight = 1\nmax_connections = 1\ndraining = true\n");
    let policy = parse(&text).expect("valid").chat_servers[0].policy;
    assert_eq!(
        (policy.weight.get(), policy.max_connections, policy.draining),
        (1, 1, true)
    );
}

#[test]
fn http_listen_is_off_unless_set() {
    let off = parse(ONE_SERVER).expect("valid");
    assert_eq!(off.server.http_listen, None);
    let empty = parse(&format!("[server]\nhttp_listen = \"\"\n{ONE_SERVER}"))
        .expect("empty http_listen is valid");
    assert_eq!(empty.server.http_listen, None);
    let on = parse(&format!(
        "[server]\nhttp_listen = \"127.0.0.1:8080\"\n{ONE_SERVER}"
    ))
    .expect("valid");
    assert_eq!(
        on.server.http_listen,
        Some("127.0.0.1:8080".parse().expect("literal"))
    );
}

#[test]
fn unparsable_http_listen() {
    let message = error(&format!(
        "[server]\nhttp_listen = \"localhost:8080\"\n{ONE_SERVER}"
    ));
    assert_mentions(
        &message,
        &[
            "line 2: ",
            "server.http_listen = \"localhost:8080\"",
            "not a socket address",
        ],
    );
}

#[test]
fn compression_is_none_gzip_or_zstd() {
    for (value, expected) in [
        ("none", ReplyCompression::None),
        ("gzip", ReplyCompression::Gzip),
        ("zstd", ReplyCompression::Zstd),
    ] {
        let settings = parse(&format!(
            "[server]\ncompression = \"{value}\"\n{ONE_SERVER}"
        ))
        .expect("a known encoding");
        assert_eq!(settings.server.compression, expected);
    }
    let message = error(&format!(
        "[server]\nlisten = \"0.0.0.0:1\"\ncompression = \"deflate\"\n{ONE_SERVER}"
    ));
    assert_mentions(
        &message,
        &[
            "line 3: ",
            "server.compression = \"deflate\": must be \"none\", \"gzip\" or \"zstd\"",
        ],
    );
    assert!(!message.contains('\n'), "one line: {message}");
}

#[test]
fn threads_default_to_one_and_must_be_positive() {
    let settings = parse(ONE_SERVER).expect("no [server] table");
    assert_eq!(settings.server.threads, 1);
    let settings = parse(&format!("[server]\nthreads = 4\n{ONE_SERVER}")).expect("4 threads");
    assert_eq!(settings.server.threads, 4);
    for value in ["0", "1025"] {
        assert_eq!(
            error(&format!("[server]\nthreads = {value}\n{ONE_SERVER}")),
            format!(
                "{PATH}: line 2: server.threads = {value}: must be a number of threads from 1 to 1024"
            )
        );
    }
}

// ---- [redis] TLS files (docs/contract.md §6) ----

#[test]
fn redis_tls_files_are_taken_from_the_config_files_folder() {
    let text = format!(
        "[redis]\nurl = \"rediss://redis.internal:6380\"\ntls_ca = \"certs/redis-ca.crt\"\n\
         tls_cert = \"/etc/status/redis.crt\"\ntls_key = \"redis.key\"\n{ONE_SERVER}"
    );
    let tls = parse(&text).expect("valid").redis.tls;
    assert_eq!(
        tls,
        RedisTlsFiles {
            ca: Some(PathBuf::from("config/certs/redis-ca.crt")),
            client: Some(ClientFiles {
                cert: PathBuf::from("/etc/status/redis.crt"),
                key: PathBuf::from("config/redis.key"),
            }),
        }
    );
}

#[test]
fn empty_redis_tls_keys_are_unset() {
    let text = format!("[redis]\ntls_ca = \"\"\ntls_cert = \"\"\ntls_key = \"\"\n{ONE_SERVER}");
    assert_eq!(
        parse(&text).expect("valid").redis.tls,
        RedisTlsFiles::default()
    );
}

#[test]
fn a_client_certificate_needs_its_key_and_the_other_way_round() {
    let url = "url = \"rediss://h:6380\"";
    let message = error(&format!(
        "[redis]\n{url}\ntls_cert = \"c.crt\"\n{ONE_SERVER}"
    ));
    assert_mentions(
        &message,
        &[
            "line 3: ",
            "redis.tls_cert = \"c.crt\": needs redis.tls_key too",
        ],
    );
    let message = error(&format!(
        "[redis]\n{url}\ntls_key = \"c.key\"\n{ONE_SERVER}"
    ));
    assert_mentions(
        &message,
        &[
            "line 3: ",
            "redis.tls_key = \"c.key\": needs redis.tls_cert too",
        ],
    );
}

#[test]
fn redis_tls_files_need_a_rediss_url() {
    let message = error(&format!("[redis]\ntls_ca = \"ca.crt\"\n{ONE_SERVER}"));
    assert_eq!(
        message,
        "config/status.toml: line 2: redis.tls_ca = \"ca.crt\": only for rediss:// URLs, and no \
         URL of mode \"standalone\" is one"
    );
    let text = format!(
        "[redis]\nmode = \"cluster\"\nnodes = [\"redis://h:7000\"]\ntls_cert = \"c\"\ntls_key = \"k\"\n{ONE_SERVER}"
    );
    assert_mentions(
        &error(&text),
        &["line 4: ", "redis.tls_cert", "mode \"cluster\""],
    );
    // STATUS_REDIS_URL counts: it is the URL in use.
    let text = format!("[redis]\ntls_ca = \"ca.crt\"\n{ONE_SERVER}");
    let settings = Settings::parse(&text, Path::new(PATH), Some("rediss://h:6380"))
        .expect("the URL in use is rediss://");
    assert_eq!(settings.redis.tls.ca, Some(PathBuf::from("config/ca.crt")));
}

#[test]
fn nodes_and_sentinels_share_one_scheme() {
    let text = format!(
        "[redis]\nmode = \"cluster\"\nnodes = [\"rediss://a:7000\",\n  \"redis://b:7000\"]\n{ONE_SERVER}"
    );
    assert_eq!(
        error(&text),
        "config/status.toml: line 4: redis.nodes[1] = \"redis://b:7000\": its scheme (redis:// or \
         rediss://) differs from redis.nodes[0]'s; every one must have the same"
    );
    let text = format!(
        "[redis]\nmode = \"sentinel\"\nmaster_name = \"m\"\nsentinels = [\"redis://a:1\", \"rediss://b:2\"]\n{ONE_SERVER}"
    );
    assert_mentions(
        &error(&text),
        &["line 4: ", "redis.sentinels[1]", "its scheme"],
    );
}

#[test]
fn with_tls_files_every_sentinel_has_the_same_user_and_password() {
    let sentinels = "sentinels = [\"rediss://:pw@a:1\", \"rediss://:other@b:2\"]";
    let text = format!(
        "[redis]\nmode = \"sentinel\"\nmaster_name = \"m\"\n{sentinels}\ntls_ca = \"ca.crt\"\n{ONE_SERVER}"
    );
    let message = error(&text);
    assert_mentions(
        &message,
        &[
            "line 4: ",
            "redis.sentinels[1] = \"rediss://:***@b:2\"",
            "with tls_* set, its user or password differs",
        ],
    );
    assert!(!message.contains("other"), "the password shows: {message}");
    // Without files of our own, each sentinel keeps its own.
    let text =
        format!("[redis]\nmode = \"sentinel\"\nmaster_name = \"m\"\n{sentinels}\n{ONE_SERVER}");
    parse(&text).expect("valid without tls_*");
}

#[test]
fn certificate_checks_cannot_be_turned_off() {
    let message = error(&format!(
        "[redis]\nurl = \"rediss://h:6380/#insecure\"\n{ONE_SERVER}"
    ));
    assert_mentions(&message, &["line 2: ", "#insecure is not supported"]);
}
