//! `status-server --config PATH.ini`, as an operator moving over from the C++ server runs
//! it (docs/contract.md §8): a file like the deployed one, with a Redis password and
//! sections the StatusServer never read, serves and reloads; a bad one exits 1 with one
//! line naming the file, section, key and line.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};

use status_server::proto::{GetChatServerReq, LoginReq};
use testkit::*;

/// A password that only survives the Redis URL percent-encoded.
const REDIS_PASSWORD: &str = "p@ss:w/rd#1;x";

/// An INI file cannot move the metrics listener off its default, 127.0.0.1:9464, so a test
/// that starts a server with one holds this lock for as long as the server runs. The lock
/// is a file, so test runs of other checkouts on the same machine wait for it rather than
/// fail on a busy port.
fn default_metrics_port() -> File {
    let path = std::env::temp_dir().join("status-server-tests-default-metrics-port.lock");
    let file = File::create(&path).expect("creating the lock file of the default metrics port");
    file.lock()
        .expect("locking the lock file of the default metrics port");
    file
}

/// The C++ server's kind of file: gRPC on `grpc_port`, Redis with a password, `chat_servers`
/// as `(name, port)` of which `listed` are in `[chatservers] Name`, and sections the
/// StatusServer does not read.
fn ini_file(
    grpc_port: u16,
    redis: &RedisServer,
    chat_servers: &[(&str, u16)],
    listed: &str,
) -> String {
    let mut text = format!(
        "[StatusServer]\nPort = {grpc_port}\nHost = 127.0.0.1\n\
         [Mysql]\nHost = 127.0.0.1\nPort = 33060\nUser = root\nPasswd = mysql-secret\nSchema = userData\n\
         [Redis]\nHost = 127.0.0.1\nPort = {}\nPasswd = {REDIS_PASSWORD}\n\
         [chatservers]\nName = {listed}\n",
        redis.port
    );
    for (name, port) in chat_servers {
        text.push_str(&format!(
            "[{name}]\nName = {name}\nHost = 127.0.0.1\nPort = {port}\n"
        ));
    }
    text.push_str("; the GateServer's, not ours\n[GateServer]\nHost = 0.0.0.0\nPort = 8080\n");
    text
}

/// A port that accepts TCP connections (the probes), for as long as the listener lives.
fn probe_target() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a chat server port");
    let port = listener
        .local_addr()
        .expect("a bound listener's address")
        .port();
    (listener, port)
}

#[tokio::test]
async fn an_ini_file_serves_with_its_redis_password_and_reloads() {
    let _metrics_port = default_metrics_port();
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chatserver1", "0"), ("chatserver2", "5")]).await;
    let _: String = redis
        .query(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("requirepass")
                .arg(REDIS_PASSWORD),
        )
        .await;
    // Probing is on (the default), so each chat server must accept connections.
    let (_chat1, port1) = probe_target();
    let (_chat2, port2) = probe_target();
    let servers = [("chatserver1", port1), ("chatserver2", port2)];
    let grpc_port = free_port();

    let mut server = ServerProcess::start_with_config_file(
        "config.ini",
        &ini_file(grpc_port, &redis, &servers, "chatserver1, chatserver2"),
    )
    .await;
    assert_eq!(server.addr, SocketAddr::from(([127, 0, 0, 1], grpc_port)));
    assert_eq!(
        server.metrics_addr,
        Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
        "every setting the INI file cannot express takes its default"
    );
    for section in ["Mysql", "GateServer"] {
        let line = format!("config: ignoring section [{section}] (not used by the StatusServer)");
        assert_eq!(
            server.log.iter().filter(|l| l.contains(&line)).count(),
            1,
            "one info line for [{section}]; log:\n{}",
            server.log.join("\n")
        );
    }

    // Placing a user stores a token and Login reads it: both need the password.
    let mut client = server.client().await;
    let placed = client
        .get_chat_server(GetChatServerReq { uid: 42 })
        .await
        .expect("GetChatServer")
        .into_inner();
    assert_eq!(placed.error, 0);
    assert_eq!(
        (placed.host.as_str(), placed.port.as_str()),
        ("127.0.0.1", port1.to_string().as_str()),
        "chatserver1 has the smaller load"
    );
    let login = client
        .login(LoginReq {
            uid: 42,
            token: placed.token.clone(),
        })
        .await
        .expect("Login")
        .into_inner();
    assert_eq!(login.error, 0);

    // SIGHUP re-reads the INI file: chatserver1 is no longer listed.
    server.rewrite_config(&ini_file(grpc_port, &redis, &servers, "chatserver2"));
    server.signal("HUP");
    server.wait_for_log("config reloaded").await;
    assert!(
        server.log.iter().any(|l| l
            .contains("config: ignoring section [chatserver1] (not listed in [chatservers] Name)")),
        "log:\n{}",
        server.log.join("\n")
    );
    let placed = client
        .get_chat_server(GetChatServerReq { uid: 43 })
        .await
        .expect("GetChatServer after the reload")
        .into_inner();
    assert_eq!(placed.port, port2.to_string());

    let log = server.log.join("\n");
    for secret in [REDIS_PASSWORD, "p%40ss%3Aw%2Frd%231%3Bx", "mysql-secret"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
    assert!(log.contains("redis://:***@127.0.0.1:"), "{log}");
}

#[test]
fn a_bad_ini_file_exits_1_with_one_line_naming_section_key_and_line() {
    let good = "[StatusServer]\nPort = 50052\nHost = 0.0.0.0\n[Redis]\nHost = 127.0.0.1\nPort = 6379\n\
                Passwd = hunter2\n[chatservers]\nName = chatserver1\n[chatserver1]\nName = chatserver1\n\
                Host = 127.0.0.1\nPort = 8090\n";
    for (file_name, text, expected) in [
        (
            "status.ini",
            good.replace("Port = 50052", "Port = 70000"),
            "status.ini: line 2: [StatusServer] Port = 70000: port must be in 1-65535",
        ),
        (
            // The extension counts in any case.
            "STATUS.INI",
            good.replace("[Redis]", "[Cache]"),
            "STATUS.INI: missing section [Redis] (Host, Port and Passwd of the Redis server)",
        ),
        (
            "status.ini",
            good.replace(
                "Name = chatserver1\n[",
                "Name = chatserver1, chatserver2\n[",
            ),
            "status.ini: line 9: [chatservers] Name = \"chatserver1, chatserver2\": \
             \"chatserver2\" has no [chatserver2] section",
        ),
        (
            "status.ini",
            good.replace("Host = 127.0.0.1\nPort = 6379", "Host = a/b\nPort = 6379"),
            "status.ini: line 5: [Redis] Host, Port, Passwd -> redis.url = \
             \"redis://:***@a/b:6379\": not a usable Redis URL",
        ),
    ] {
        let (status, stderr) = run_to_exit_as(file_name, &text);
        assert_eq!(status.code(), Some(1), "{text:?}: {stderr}");
        let line = stderr.trim_end();
        assert!(!line.contains('\n'), "one line: {stderr:?}");
        assert!(
            line.starts_with("status-server: error: ") && line.contains(&format!("/{expected}")),
            "{line:?} should hold {expected:?}"
        );
        assert!(!line.contains("hunter2"), "password leaked: {line}");
    }
}
