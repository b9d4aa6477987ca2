//! `statusctl` as operators and scripts use it: the binary run as a process against a real
//! `status-server` and `redis-server`, checking its text and `--json` output and its exit
//! codes (0 success, 1 business error / not serving / not applied, 2 usage, 3 unreachable
//! or gRPC error). `convert-config` runs against no server: its output is parsed back with
//! the server's own config parser.
//!
//! The server runs in-process (`testkit::TestServer`); the stand-in ChatServer is found in
//! the target directory, where `cargo test --workspace` builds it.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use status_server::config::Settings;
use status_server::contract::LOGGED_TOKEN_PREFIX;
use testkit::*;

/// What one run of statusctl gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout parsed as the one JSON document `--json` promises.
    fn json(&self) -> Value {
        assert_eq!(
            self.stdout.lines().count(),
            1,
            "--json prints one line: {:?}",
            self.stdout
        );
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// `key: value` lines of stdout.
    fn fields(&self) -> HashMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// The failure line: exactly one line on stderr, `statusctl: error: ...`.
    fn error_line(&self) -> &str {
        let line = self.stderr.trim_end();
        assert!(
            !line.contains('\n') && line.starts_with("statusctl: error: "),
            "stderr must be one `statusctl: error:` line: {:?}",
            self.stderr
        );
        line
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout: {:?} stderr: {:?}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs statusctl with `args` and waits (bounded) for it to exit.
fn statusctl(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statusctl"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning statusctl");
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        let mut pipe = pipe.expect("piped");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for statusctl") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("statusctl {args:?} did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let [stdout, stderr] = readers.map(|r| r.join().expect("pipe reader"));
    Run {
        code: status
            .code()
            .expect("statusctl exited, not killed by a signal"),
        stdout,
        stderr,
    }
}

/// `statusctl --addr http://<server> <args>`.
fn ctl(server: &TestServer, args: &[&str]) -> Run {
    let addr = format!("http://{}", server.addr);
    let mut all = vec!["--addr", &addr, "--timeout", "5"];
    all.extend_from_slice(args);
    statusctl(&all)
}

/// Redis and a status-server with one alive chat server `chatserver1` on `port`.
async fn one_alive_server(port: u16) -> (RedisServer, TestServer) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chatserver1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chatserver1", port)]);
    let server = TestServer::start(&config).await;
    (redis, server)
}

#[tokio::test]
async fn get_server_and_login_print_the_reply_as_text_and_json() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;

    let run = ctl(&server, &["get-server", "--uid", "42"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let fields = run.fields();
    assert_eq!(fields["error"], "0");
    assert_eq!(fields["host"], "127.0.0.1");
    assert_eq!(fields["port"], port.to_string());
    assert_eq!(fields["token"].len(), 36, "{fields:?}");

    let run = ctl(&server, &["--json", "get-server", "--uid", "43"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["error"], 0);
    assert_eq!(reply["host"], "127.0.0.1");
    assert_eq!(reply["port"], port.to_string());
    let token = reply["token"]
        .as_str()
        .expect("token is a string")
        .to_string();
    assert_eq!(token.len(), 36);
    assert_eq!(redis.stored_token(43).await.as_deref(), Some(&*token));

    // Global options may also follow the command.
    let run = ctl(
        &server,
        &["login", "--uid", "43", "--token", &token, "--json"],
    );
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["error"], 0);
    assert_eq!(reply["uid"], 43);
    assert_eq!(reply["token"], token.as_str());

    let run = ctl(&server, &["login", "--uid", "43", "--token", &token]);
    run.assert_code(0);
    let fields = run.fields();
    assert_eq!(fields["error"], "0");
    assert_eq!(fields["uid"], "43");
    assert_eq!(fields["token"], token);
}

#[tokio::test]
async fn get_servers_places_a_batch_in_one_call_with_a_row_per_uid() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;

    let run = ctl(&server, &["get-servers", "--uids", "1,2,3"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header and a row per uid: {:?}", run.stdout);
    assert!(lines[0].starts_with("UID  ERROR  HOST"), "{}", lines[0]);
    for (line, uid) in lines[1..].iter().zip(1..) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells[..4],
            [&*uid.to_string(), "0", "127.0.0.1", &*port.to_string()]
        );
        assert_eq!(redis.stored_token(uid).await.as_deref(), Some(cells[4]));
    }

    // Compressed both ways, and JSON: an array in uid order, business errors per item.
    let run = ctl(
        &server,
        &[
            "--compress",
            "gzip",
            "--json",
            "get-servers",
            "--uids",
            "4,0",
        ],
    );
    run.assert_code(1);
    let items = run.json();
    assert_eq!(items[0]["uid"], 4);
    assert_eq!(items[0]["error"], 0);
    assert_eq!(items[1]["uid"], 0);
    assert_eq!(items[1]["error"], 1011);
    assert!(run.error_line().contains("uid 0"), "{}", run.stderr);

    let run = ctl(&server, &["get-servers", "--uids", "5,5"]);
    run.assert_code(3);
    assert!(
        run.error_line().contains("INVALID_ARGUMENT"),
        "{}",
        run.stderr
    );

    let run = ctl(&server, &["--compress", "zstd", "get-server", "--uid", "6"]);
    run.assert_code(0);
    assert_eq!(run.fields()["error"], "0");
}

#[tokio::test]
async fn business_errors_exit_1_with_the_reply_on_stdout() {
    let (_redis, server) = one_alive_server(free_port()).await;

    let run = ctl(&server, &["get-server", "--uid", "0"]);
    run.assert_code(1);
    assert_eq!(run.fields()["error"], "1011 (uid invalid)");
    assert_eq!(
        run.error_line(),
        "statusctl: error: GetChatServer answered error 1011 (uid invalid)"
    );

    let run = ctl(&server, &["--json", "get-server", "--uid", "-5"]);
    run.assert_code(1);
    let reply = run.json();
    assert_eq!(reply["error"], 1011);
    assert_eq!(reply["host"], "");
    assert_eq!(reply["token"], "");
    run.error_line();

    let placed = ctl(&server, &["--json", "get-server", "--uid", "7"]);
    placed.assert_code(0);
    let run = ctl(
        &server,
        &["--json", "login", "--uid", "7", "--token", "not-the-token"],
    );
    run.assert_code(1);
    assert_eq!(run.json()["error"], 1010);
    assert!(run.error_line().contains("1010 (token invalid)"));

    // No token stored for this uid.
    let run = ctl(&server, &["login", "--uid", "8", "--token", "whatever"]);
    run.assert_code(1);
    assert!(run.error_line().contains("1011"));
}

#[tokio::test]
async fn a_grpc_error_exits_3_and_names_the_code() {
    let redis = RedisServer::start().await;
    // No load field for the only chat server: nothing is alive.
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("ghost", free_port())]);
    let server = TestServer::start(&config).await;
    let run = ctl(&server, &["--json", "get-server", "--uid", "1"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "", "no reply, no JSON");
    assert!(
        run.error_line()
            .starts_with("statusctl: error: GetChatServer: UNAVAILABLE: "),
        "{}",
        run.stderr
    );
}

#[test]
fn every_command_exits_3_when_no_server_listens() {
    let addr = format!("http://127.0.0.1:{}", free_port());
    for command in [
        &["get-server", "--uid", "1"][..],
        &["get-servers", "--uids", "1,2"],
        &["login", "--uid", "1", "--token", "t"],
        &["connect", "--uid", "1"],
        &["servers"],
        &["health"],
        &["reload"],
        &["drain", "chatserver1"],
        &["undrain", "chatserver1"],
        &["revoke", "--uid", "1"],
        &["bench", "--duration", "1"],
    ] {
        for json in [false, true] {
            let mut args = vec!["--addr", &addr, "--timeout", "2"];
            if json {
                args.push("--json");
            }
            args.extend_from_slice(command);
            let run = statusctl(&args);
            run.assert_code(3);
            assert_eq!(run.stdout, "", "{command:?}: nothing on stdout");
            assert!(
                run.error_line()
                    .starts_with(&format!("statusctl: error: cannot connect to {addr}")),
                "{command:?}: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn help_of_every_command_exits_0_and_usage_errors_exit_2() {
    let run = statusctl(&["--help"]);
    run.assert_code(0);
    assert!(run.stdout.contains("Exit status"), "{}", run.stdout);
    assert!(run.stdout.contains("http://127.0.0.1:50052"));
    for command in [
        "get-server",
        "get-servers",
        "login",
        "connect",
        "servers",
        "health",
        "reload",
        "drain",
        "undrain",
        "revoke",
        "bench",
    ] {
        for flag in ["--help", "-h"] {
            let run = statusctl(&[command, flag]);
            run.assert_code(0);
            assert!(
                run.stdout.contains(&format!("Usage: statusctl {command}")),
                "{command} {flag}: {}",
                run.stdout
            );
            assert!(run.stdout.contains("Exit status"), "{command} {flag}");
        }
        statusctl(&["help", command]).assert_code(0);
    }
    assert!(
        statusctl(&["--version"])
            .assert_code(0)
            .stdout
            .contains("statusctl")
    );

    for bad in [
        &["get-server"][..],
        &["get-server", "--uid", "x"],
        &["get-servers"],
        &["get-servers", "--uids", "1,x"],
        &["--compress", "brotli", "servers"],
        &["--timeout", "0", "servers"],
        &["--addr", "https://secure:443", "servers"],
        &["bench", "--concurrency", "2", "--connections", "3"],
        &["bench", "--rpc", "nope"],
        &["drain"],
        &["revoke"],
        &["revoke", "--uid", "x"],
        &["--admin-addr", "https://secure:443", "servers"],
        &["nonsense"],
    ] {
        let run = statusctl(bad);
        run.assert_code(2);
        assert_eq!(run.stdout, "", "{bad:?}");
        run.error_line();
    }
}

/// The load a ChatServer published (`HGET logincount <name>`).
async fn published_load(redis: &RedisServer, name: &str) -> Option<String> {
    redis
        .query(redis::cmd("HGET").arg("logincount").arg(name))
        .await
}

#[tokio::test]
async fn connect_runs_the_login_flow_through_a_chat_server() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;
    let _chat = StandInChatServer::start("chatserver1", port, &redis, Some(server.addr));

    let run = ctl(&server, &["connect", "--uid", "43"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let fields = run.fields();
    assert_eq!(fields["uid"], "43");
    assert_eq!(fields["chat server"], format!("127.0.0.1:{port}"));
    assert_eq!(fields["reply"], "OK");
    let token = redis.stored_token(43).await.expect("a token was stored");
    assert_eq!(fields["token prefix"], token[..LOGGED_TOKEN_PREFIX]);

    let run = ctl(&server, &["--json", "connect", "--uid", "44"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["uid"], 44);
    assert_eq!(reply["host"], "127.0.0.1");
    assert_eq!(reply["port"], port);
    assert_eq!(reply["reply"], "OK");
    let token = redis.stored_token(44).await.expect("a token was stored");
    assert_eq!(reply["token_prefix"], &token[..LOGGED_TOKEN_PREFIX]);
    assert!(
        !run.stdout.contains(&token),
        "the whole token is never shown"
    );

    // GetChatServer refuses: no chat server is contacted, nothing on stdout.
    let run = ctl(&server, &["--json", "connect", "--uid", "0"]);
    run.assert_code(1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        "statusctl: error: GetChatServer answered error 1011 (uid invalid)"
    );
}

#[tokio::test]
async fn connect_hold_keeps_the_user_counted_until_ctrl_c() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;
    let _chat = StandInChatServer::start("chatserver1", port, &redis, Some(server.addr));

    let addr = format!("http://{}", server.addr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_statusctl"))
        .args([
            "--addr", &addr, "--json", "connect", "--uid", "45", "--hold",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning statusctl");
    let stdout = child.stdout.take().expect("stdout was piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).unwrap_or_default();
    let reply: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the reply line is not JSON ({e}): {line:?}"));
    assert_eq!(reply["reply"], "OK");

    eventually(
        "the held connection to count in the ChatServer's load",
        || {
            let load = published_load(&redis, "chatserver1");
            async move { (load.await.as_deref() == Some("1")).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        child.try_wait().expect("polling statusctl"),
        None,
        "still holding"
    );

    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(interrupt.success(), "kill -INT failed");
    let status = eventually("statusctl to exit after Ctrl-C", || {
        let status = child.try_wait().expect("waiting for statusctl");
        async move { status }
    })
    .await;
    assert_eq!(status.code(), Some(0), "Ctrl-C ends a hold successfully");
    eventually(
        "the closed connection to leave the ChatServer's load",
        || {
            let load = published_load(&redis, "chatserver1");
            async move { (load.await.as_deref() == Some("0")).then_some(()) }
        },
    )
    .await;
}

/// A ChatServer on `listener` that answers each of `replies` to one connection, in turn
/// (`""`: close without a reply); returns the login lines it received.
fn scripted_chat_server(
    listener: std::net::TcpListener,
    replies: &'static [&'static str],
) -> std::thread::JoinHandle<Vec<String>> {
    use std::io::{BufRead, BufReader, Write};
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for reply in replies {
            let (stream, _) = listener.accept().expect("accepting statusctl");
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).expect("reading the login line");
            reader
                .get_mut()
                .write_all(reply.as_bytes())
                .expect("sending the reply");
            lines.push(line);
        }
        lines
    })
}

#[tokio::test]
async fn connect_exits_1_when_the_chat_server_refuses_and_3_when_it_stays_silent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a chat port");
    let port = listener.local_addr().expect("bound address").port();
    let (redis, server) = one_alive_server(port).await;
    let chat = scripted_chat_server(listener, &["ERR 1010\n", ""]);

    let run = ctl(&server, &["connect", "--uid", "46"]);
    run.assert_code(1);
    assert_eq!(run.fields()["reply"], "ERR 1010");
    assert_eq!(
        run.error_line(),
        format!(
            "statusctl: error: chat server 127.0.0.1:{port} refused the login: \
             Login answered error 1010 (token invalid)"
        )
    );

    let run = ctl(&server, &["--json", "connect", "--uid", "47"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "", "no reply, no JSON");
    assert!(
        run.error_line()
            .ends_with("closed the connection without a reply"),
        "{}",
        run.stderr
    );

    // The login line is `<uid> <token>` with the token just stored.
    let lines = chat.join().expect("the scripted chat server");
    for (line, uid) in lines.iter().zip([46, 47]) {
        let token = redis.stored_token(uid).await.expect("a token was stored");
        assert_eq!(*line, format!("{uid} {token}\n"));
    }
}

#[tokio::test]
async fn connect_exits_3_when_the_chat_server_cannot_check_the_token_or_is_down() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;
    // This ChatServer's Login calls go nowhere.
    let _chat = StandInChatServer::start("chatserver1", port, &redis, None);
    let run = ctl(&server, &["connect", "--uid", "48"]);
    run.assert_code(3);
    assert!(
        run.fields()["reply"].starts_with("ERR unavailable"),
        "{}",
        run.stdout
    );
    assert!(
        run.error_line().starts_with(&format!(
            "statusctl: error: chat server 127.0.0.1:{port} could not check the token: "
        )),
        "{}",
        run.stderr
    );

    // Alive in the load hash, but nobody listens on its port.
    let down = free_port();
    let (_redis, server) = one_alive_server(down).await;
    let run = ctl(&server, &["connect", "--uid", "49"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "");
    assert!(
        run.error_line().starts_with(&format!(
            "statusctl: error: cannot connect to chat server 127.0.0.1:{down}: "
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn bench_get_chat_server_reports_json_with_no_errors() {
    let (_redis, server) = one_alive_server(free_port()).await;
    let run = ctl(
        &server,
        &[
            "--json",
            "bench",
            "--rpc",
            "get-chat-server",
            "--concurrency",
            "8",
            "--connections",
            "2",
            "--duration",
            "1",
        ],
    );
    run.assert_code(0);
    let report = run.json();
    let ok = report["ok"].as_u64().expect("ok is a count");
    assert!(ok > 0, "{report}");
    assert_eq!(report["requests"], ok);
    assert_eq!(report["grpc_errors_total"], 0);
    assert_eq!(report["business_errors"], 0);
    assert_eq!(report["connections"], 2);
    assert_eq!(report["in_flight"], 8);
    assert!(report["rps"].as_f64().expect("rps") > 0.0);
    let p50 = report["p50_us"].as_u64().expect("p50_us");
    let max = report["max_us"].as_u64().expect("max_us");
    assert!(0 < p50 && p50 <= max, "{report}");
    // No terminal here: no progress bar garbles stderr.
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn bench_login_seeds_its_tokens_and_unseeded_uids_exit_1() {
    let (redis, server) = one_alive_server(free_port()).await;
    let run = ctl(
        &server,
        &[
            "--json",
            "bench",
            "--rpc",
            "login",
            "--concurrency",
            "4",
            "--duration",
            "1",
            "--uid-base",
            "5000",
            "--seed-redis",
            &redis.url(),
        ],
    );
    run.assert_code(0);
    let report = run.json();
    assert!(report["ok"].as_u64().expect("ok") > 0, "{report}");
    assert_eq!(report["business_errors"], 0);
    assert_eq!(report["grpc_errors_total"], 0);
    assert_eq!(report["seeded_tokens"], 10_000);
    assert_eq!(
        redis.stored_token(14_999).await.as_deref(),
        Some("bench-token-14999")
    );

    // Nothing stored for these uids: every call is a business error (1011), in text mode.
    let run = ctl(
        &server,
        &[
            "bench",
            "--rpc",
            "login",
            "--concurrency",
            "2",
            "--duration",
            "0.3",
            "--uid-base",
            "90000",
        ],
    );
    run.assert_code(1);
    let fields = run.fields();
    assert_eq!(fields["ok"], "0");
    assert!(fields["business errors"].contains("1011:"), "{fields:?}");
    assert!(fields["latency"].starts_with("p50 "), "{fields:?}");
    assert!(run.error_line().contains("business error"));
}

#[tokio::test]
async fn servers_lists_the_configured_chat_servers_with_their_state() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("alpha", "3")]).await;
    let (alpha, beta) = (free_port(), free_port());
    let config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("alpha", alpha),
            ChatServerEntry::new("beta", beta),
        ],
    );
    let server = TestServer::start(&config).await;

    let run = ctl(&server, &["--json", "servers"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["probing"], false);
    assert_eq!(reply["redis_ok"], true);
    let servers = reply["servers"].as_array().expect("servers is a list");
    let names: Vec<&str> = servers.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let (a, b) = (&servers[0], &servers[1]);
    assert_eq!(a["host"], "127.0.0.1");
    assert_eq!(a["port"], alpha);
    assert_eq!(a["polled_count"], 3);
    assert_eq!(a["load_field"], "count");
    assert_eq!(a["alive"], true);
    assert!(a["last_poll_unix_ms"].as_u64().expect("last poll") > 0);
    assert_eq!(b["port"], beta);
    assert_eq!(b["polled_count"], Value::Null);
    assert_eq!(b["load_field"], "missing");
    assert_eq!(b["alive"], false);

    let run = ctl(&server, &["servers"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].contains("probing: off"), "{}", run.stdout);
    assert!(lines[1].starts_with("NAME"), "{}", run.stdout);
    let alpha_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        alpha_row[..3],
        ["alpha", &format!("127.0.0.1:{alpha}"), "3"]
    );
    assert_eq!(alpha_row[5], "yes");
    let beta_row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(beta_row[..3], ["beta", &format!("127.0.0.1:{beta}"), "-"]);
    assert_eq!(beta_row[5], "no");
}

#[tokio::test]
async fn health_is_serving_while_redis_answers_and_exits_1_when_not() {
    let (mut redis, server) = one_alive_server(free_port()).await;

    let run = ctl(&server, &["health"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("message.StatusService  SERVING"),
        "{}",
        run.stdout
    );
    let run = ctl(&server, &["--json", "health"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["serving"], true);
    assert_eq!(reply["services"][""], "SERVING");
    assert_eq!(reply["services"]["message.StatusService"], "SERVING");

    // A service the server does not know is a gRPC error (NOT_FOUND).
    let run = ctl(&server, &["health", "--service", "no.such.Service"]);
    run.assert_code(3);
    assert!(run.error_line().contains("NOT_FOUND"), "{}", run.stderr);

    redis.kill();
    let run = eventually("health to report NOT_SERVING", || {
        let run = ctl(&server, &["--json", "health"]);
        async move { (run.code == 1).then_some(run) }
    })
    .await;
    let reply = run.json();
    assert_eq!(reply["serving"], false);
    assert_eq!(reply["services"]["message.StatusService"], "NOT_SERVING");
    assert!(run.error_line().contains("NOT_SERVING"));
}

#[tokio::test]
async fn reload_applies_an_edited_file_and_refuses_a_bad_one() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("alpha", "0"), ("gamma", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("alpha", free_port())]);
    let server = TestServer::start(&config).await;

    config
        .servers
        .push(ChatServerEntry::new("gamma", free_port()));
    server.rewrite_config(&config.to_toml());
    let run = ctl(&server, &["--json", "reload"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["applied"], true, "{reply}");
    assert_eq!(reply["restart_needed"], Value::Array(vec![]));
    let listed = ctl(&server, &["--json", "servers"]).json();
    let names: Vec<&str> = listed["servers"]
        .as_array()
        .expect("servers is a list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["alpha", "gamma"]);

    server.rewrite_config("[redis]\ntoken_ttl_secs = \"soon\"\n");
    let run = ctl(&server, &["reload"]);
    run.assert_code(1);
    let fields = run.fields();
    assert_eq!(fields["applied"], "false");
    assert!(!fields["message"].is_empty());
    assert!(
        run.error_line()
            .starts_with("statusctl: error: reload not applied: "),
        "{}",
        run.stderr
    );
    let run = ctl(&server, &["--json", "reload"]);
    run.assert_code(1);
    assert_eq!(run.json()["applied"], false);
    // The running config is kept.
    ctl(&server, &["get-server", "--uid", "1"]).assert_code(0);
}

/// The deployed kind of INI file (docs/contract.md §8), with a Redis password that only
/// survives a URL percent-encoded.
const DEPLOYED_INI: &str = "[StatusServer]
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
Passwd = s3cr@t/#1
[chatservers]
Name = chatserver1, chatserver2
[chatserver1]
Name = chatserver1
Host = 127.0.0.1
Port = 8090
[chatserver2]
Name = chatserver2
Host = 127.0.0.1
Port = 8091
";

#[test]
fn convert_config_prints_toml_that_the_server_reads_as_the_ini_file() {
    let (_dir, path) = write_config_as("config.ini", DEPLOYED_INI);
    let path_arg = path.to_str().expect("a UTF-8 temporary path");
    let from_ini = status_server::config::ini::read_file(&path)
        .expect("the deployed file is valid")
        .settings;
    let parse = |toml: &str, url_override: Option<&str>| {
        Settings::parse(toml, Path::new("converted.toml"), url_override)
            .unwrap_or_else(|e| panic!("the output is a valid config ({e}):\n{toml}"))
    };

    // By default the password stays out of the output: the server then needs
    // STATUS_REDIS_URL, which gives back exactly the INI file's settings.
    let run = statusctl(&["convert-config", path_arg]);
    run.assert_code(0);
    assert!(
        !run.stdout.contains("s3cr"),
        "password in the output:\n{}",
        run.stdout
    );
    assert!(
        run.stdout
            .starts_with("# status-server config, converted by `statusctl convert-config`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("INI file {path_arg}.")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("# Left out: [Mysql]"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("STATUS_REDIS_URL='redis://:PASSWORD@127.0.0.1:6379'")
    );
    assert_eq!(
        parse(&run.stdout, None).redis.url(),
        Some("redis://127.0.0.1:6379")
    );
    assert_eq!(parse(&run.stdout, from_ini.redis.url()), from_ini);
    assert!(
        run.stderr
            .starts_with("statusctl: note: [Redis] Passwd is not in the output")
            && run.stderr.lines().count() == 1,
        "{:?}",
        run.stderr
    );

    // --keep-password writes it into the URL: the output alone is the INI file's settings.
    let run = statusctl(&["convert-config", "--keep-password", path_arg]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    assert!(
        run.stdout
            .contains("url = \"redis://:s3cr%40t%2F%231@127.0.0.1:6379\"")
    );
    assert_eq!(parse(&run.stdout, None), from_ini);
}

#[test]
fn convert_config_of_a_bad_file_exits_1_with_the_line_the_server_prints() {
    let bad = DEPLOYED_INI.replace("Port = 8091", "Port = 70000");
    let (_dir, path) = write_config_as("config.ini", &bad);
    let path_arg = path.to_str().expect("a UTF-8 temporary path");
    let run = statusctl(&["convert-config", path_arg]);
    run.assert_code(1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        format!(
            "statusctl: error: {path_arg}: line 23: [chatserver2] Port = 70000: port must be \
             in 1-65535"
        )
    );

    let run = statusctl(&[
        "convert-config",
        "/nonexistent/status-server-test/config.ini",
    ]);
    run.assert_code(1);
    assert!(
        run.error_line().starts_with(
            "statusctl: error: /nonexistent/status-server-test/config.ini: cannot read: "
        ),
        "{}",
        run.stderr
    );

    let run = statusctl(&["--json", "convert-config", path_arg]);
    run.assert_code(2);
    assert!(
        run.error_line().contains("--json does not apply"),
        "{}",
        run.stderr
    );
}

/// `statusctl --addr <nowhere> --admin-addr http://<server> <args>`: the Admin commands
/// must use --admin-addr.
fn admin_ctl(server: &TestServer, args: &[&str]) -> Run {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let admin = format!("http://{}", server.addr);
    let mut all = vec!["--addr", &nowhere, "--admin-addr", &admin, "--timeout", "5"];
    all.extend_from_slice(args);
    statusctl(&all)
}

#[tokio::test]
async fn drain_and_undrain_steer_placements_and_say_who_drains() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("alpha", "0"), ("beta", "0")]).await;
    let (alpha, beta) = (free_port(), free_port());
    let config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("alpha", alpha),
            ChatServerEntry::new("beta", beta).draining(true),
        ],
    );
    let server = TestServer::start(&config).await;

    let run = admin_ctl(&server, &["drain", "alpha"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let fields = run.fields();
    assert_eq!(fields["name"], "alpha");
    assert_eq!(fields["draining"], "yes (admin)");
    // Both drain now: nobody can be placed.
    let run = ctl(&server, &["get-server", "--uid", "1"]);
    run.assert_code(3);
    assert!(
        run.error_line()
            .contains("RESOURCE_EXHAUSTED: every chat server is full or draining"),
        "{}",
        run.stderr
    );

    let run = admin_ctl(&server, &["--json", "servers"]);
    run.assert_code(0);
    let listed = run.json();
    assert_eq!(listed["strategy"], "least_loaded");
    let servers = listed["servers"].as_array().expect("servers is a list");
    assert_eq!(servers[0]["drain_from_admin"], true);
    assert_eq!(servers[0]["choosable"], false);
    assert_eq!(servers[1]["drain_from_config"], true);
    assert_eq!(servers[1]["weight"], 1);
    assert_eq!(servers[1]["max_connections"], 0);
    let run = admin_ctl(&server, &["servers"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].ends_with("strategy: least_loaded"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].ends_with("WEIGHT  MAX-CONN  DRAINING"),
        "{}",
        run.stdout
    );
    let alpha_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(alpha_row[alpha_row.len() - 3..], ["1", "-", "admin"]);
    let beta_row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(beta_row.last(), Some(&"config"));

    let run = admin_ctl(&server, &["--json", "undrain", "alpha"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["name"], "alpha");
    assert_eq!(reply["draining"], false);
    let run = ctl(&server, &["get-server", "--uid", "2"]);
    run.assert_code(0);
    assert_eq!(run.fields()["port"], alpha.to_string());

    // The config's drain outlives an undrain: exit 1, saying why.
    let run = admin_ctl(&server, &["undrain", "beta"]);
    run.assert_code(1);
    assert_eq!(run.fields()["draining"], "yes (config)");
    assert_eq!(
        run.error_line(),
        "statusctl: error: beta still drains: its config says draining = true (edit it and reload)"
    );

    let run = admin_ctl(&server, &["drain", "gamma"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        "statusctl: error: SetDraining: NOT_FOUND: no chat server is named \"gamma\""
    );
}

#[tokio::test]
async fn revoke_deletes_the_token_so_login_answers_1011() {
    let (redis, server) = one_alive_server(free_port()).await;
    let run = ctl(&server, &["get-server", "--uid", "77"]);
    run.assert_code(0);
    let token = run.fields()["token"].clone();

    let run = admin_ctl(&server, &["revoke", "--uid", "77"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let fields = run.fields();
    assert_eq!(
        (fields["uid"].as_str(), fields["revoked"].as_str()),
        ("77", "yes")
    );
    assert_eq!(redis.stored_token(77).await, None);
    let run = ctl(&server, &["login", "--uid", "77", "--token", &token]);
    run.assert_code(1);
    assert_eq!(run.fields()["error"], "1011 (uid invalid)");

    // Nothing left: the server answered, but no.
    let run = admin_ctl(&server, &["--json", "revoke", "--uid", "77"]);
    run.assert_code(1);
    let reply = run.json();
    assert_eq!(
        (reply["uid"].as_i64(), reply["revoked"].as_bool()),
        (Some(77), Some(false))
    );
    assert_eq!(
        run.error_line(),
        "statusctl: error: no token was stored for uid 77"
    );

    let run = admin_ctl(&server, &["revoke", "--uid", "0"]);
    run.assert_code(3);
    assert_eq!(
        run.error_line(),
        "statusctl: error: RevokeToken: INVALID_ARGUMENT: uid must be positive"
    );
}

#[tokio::test]
async fn the_admin_commands_call_admin_addr_and_the_others_addr() {
    let (_redis, server) = one_alive_server(free_port()).await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let addr = format!("http://{}", server.addr);
    // The RPCs go to --addr, whatever --admin-addr says.
    let run = statusctl(&[
        "--addr",
        &addr,
        "--admin-addr",
        &nowhere,
        "get-server",
        "--uid",
        "3",
    ]);
    run.assert_code(0);
    for admin_command in [
        &["servers"][..],
        &["reload"],
        &["drain", "chatserver1"],
        &["revoke", "--uid", "3"],
    ] {
        let mut args = vec!["--addr", &addr, "--admin-addr", &nowhere, "--timeout", "2"];
        args.extend_from_slice(admin_command);
        let run = statusctl(&args);
        run.assert_code(3);
        assert!(
            run.error_line()
                .starts_with(&format!("statusctl: error: cannot connect to {nowhere}")),
            "{admin_command:?}: {}",
            run.stderr
        );
    }
}
