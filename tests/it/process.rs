//! The process as operators run it: graceful shutdown, bad configs, a busy
//! port, the whole login flow with stand-in ChatServers, and token-free logs.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, GetChatServerRsp, LoginReq};
use testkit::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Redis (accepting `DEBUG SLEEP`) with chat1 alive, a server on it whose
/// command timeout (5 s) outlasts every sleep here, so calls wait on a
/// sleeping Redis rather than fail, and a client.
async fn server_on_a_debug_redis(
    shutdown_grace_ms: u64,
) -> (RedisServer, ServerProcess, StatusServiceClient<Channel>) {
    let redis = RedisServer::start_with_debug().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    config.command_timeout_ms = 5000;
    config.shutdown_grace_ms = shutdown_grace_ms;
    let server = ServerProcess::start(&config).await;
    let client = server.client().await;
    (redis, server, client)
}

/// A GetChatServer call running in a task of its own.
type Call = JoinHandle<Result<tonic::Response<GetChatServerRsp>, tonic::Status>>;

/// A server draining one call: uid 1 was accepted and waits on a Redis
/// asleep for 2 s when SIGTERM goes out. Returns Redis, the server, the
/// call and the sleep (await it before the test ends).
async fn draining_one_call(
    shutdown_grace_ms: u64,
) -> (
    RedisServer,
    ServerProcess,
    Call,
    JoinHandle<redis::RedisResult<()>>,
) {
    let (redis, mut server, mut client) = server_on_a_debug_redis(shutdown_grace_ms).await;
    let sleeper = redis.sleep_in_background(2.0).await;
    let call =
        tokio::spawn(async move { client.get_chat_server(GetChatServerReq { uid: 1 }).await });
    server.wait_for_log("uid 1 -> chat1").await;
    server.signal("TERM");
    (redis, server, call, sleeper)
}

#[tokio::test]
async fn sigterm_lets_50_calls_waiting_on_a_blocked_redis_finish() {
    let (redis, mut server, client) = server_on_a_debug_redis(10_000).await;

    // Block Redis for 1.5 s; every SET queues behind the sleep.
    let sleeper = redis.sleep_in_background(1.5).await;
    let calls: Vec<_> = (1..=50)
        .map(|uid| {
            let mut client = client.clone();
            tokio::spawn(async move { client.get_chat_server(GetChatServerReq { uid }).await })
        })
        .collect();
    // Each accepted call logs its placement before it waits on Redis.
    for uid in 1..=50 {
        server.wait_for_log(&format!("uid {uid} -> chat1")).await;
    }

    server.signal("TERM");
    let sent = Instant::now();
    server.wait_for_log("closing the listener").await;
    let addr = server.addr;
    eventually("the listener to close", || async move {
        TcpStream::connect(addr).is_err().then_some(())
    })
    .await;
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "the listener closed {:?} after SIGTERM, while calls were still draining",
        sent.elapsed()
    );

    for (uid, call) in (1..).zip(calls) {
        let rsp = call
            .await
            .expect("call task")
            .unwrap_or_else(|status| panic!("call {uid} failed during drain: {status:?}"));
        assert_eq!(rsp.into_inner().error, 0);
    }
    let status = server.wait_exit().await;
    let took = sent.elapsed();
    println!("SIGTERM to exit with 50 calls waiting on a blocked Redis: {took:?}");
    assert_eq!(
        status.code(),
        Some(0),
        "graceful exit; log:\n{}",
        server.drain_log().await.join("\n")
    );
    let _ = sleeper.await;
}

#[tokio::test]
async fn sigint_on_an_idle_server_exits_0() {
    let redis = RedisServer::start().await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let mut server = ServerProcess::start(&config).await;
    server.signal("INT");
    assert_eq!(server.wait_exit().await.code(), Some(0));
    let log = server.drain_log().await.join("\n");
    assert!(log.contains("SIGINT"), "{log}");
}

#[tokio::test]
async fn drain_past_the_grace_period_exits_1() {
    let (_redis, mut server, call, sleeper) = draining_one_call(200).await;
    assert_eq!(server.wait_exit().await.code(), Some(1));
    assert!(
        call.await.expect("call task").is_err(),
        "the cut-off call fails"
    );
    let log = server.drain_log().await.join("\n");
    assert!(log.contains("grace period"), "{log}");
    let _ = sleeper.await;
}

#[test]
fn bad_configs_exit_nonzero_naming_file_and_problem() {
    let server = "[[chat_servers]]\nname = \"a\"\nhost = \"h\"\nport = 1\n";
    let cases = [
        (format!("[redis]\nbogus = 1\n{server}"), "bogus"),
        ("[server]\nlisten = \"nope\"\n".to_string() + server, "nope"),
        (
            "[[chat_servers]]\nname = \"a\"\nhost = \"h\"\nport = 70000\n".to_string(),
            "70000",
        ),
        ("[server]\n".to_string(), "chat_servers"),
        (
            format!("[balancer]\npoll_interval_ms = 0\n{server}"),
            "poll_interval_ms",
        ),
        ("this is not toml".to_string(), "line 1"),
        (
            format!("[redis]\nnodes = [\"redis://h:1\"]\n{server}"),
            "redis.nodes: only for mode = \"cluster\"",
        ),
        (
            format!("[redis]\nmode = \"sentinel\"\nsentinels = []\nmaster_name = \"m\"\n{server}"),
            "redis.sentinels = []",
        ),
        (
            format!("[redis]\nmode = \"cluster\"\nnodes = []\n{server}"),
            "redis.nodes = []",
        ),
        (
            format!("[redis]\nmode = \"cluster\"\nnodes = [\"tcp://:pw@h:1\"]\n{server}"),
            "redis.nodes[0]",
        ),
    ];
    for (text, needle) in cases {
        let (status, stderr) = run_to_exit(&text);
        assert_eq!(status.code(), Some(1), "config {text:?}: {stderr}");
        let line = stderr.trim();
        assert_eq!(
            line.lines().count(),
            1,
            "one error line for {text:?}: {stderr}"
        );
        assert!(line.contains("status.toml"), "names the file: {line}");
        assert!(line.contains(needle), "names {needle:?}: {line}");
    }
}

#[test]
fn missing_config_file_exits_nonzero() {
    let path = std::ffi::OsStr::new("/nonexistent/status.toml");
    let (status, stderr) = run_binary_to_exit(&[std::ffi::OsStr::new("--config"), path]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("/nonexistent/status.toml"), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn address_in_use_exits_nonzero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let addr = taken.local_addr().expect("local addr");
    let text = format!(
        "[server]\nlisten = \"{addr}\"\n[redis]\nurl = \"redis://127.0.0.1:{}\"\ncommand_timeout_ms = 200\n\
         [[chat_servers]]\nname = \"a\"\nhost = \"h\"\nport = 1\n",
        free_port()
    );
    let (status, stderr) = run_to_exit(&text);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

/// Sends the login line to a stand-in ChatServer and returns its reply line
/// and the open connection.
async fn connect_to_chat(port: &str, uid: i32, token: &str) -> (String, tokio::net::TcpStream) {
    let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connecting to the chat server");
    stream
        .write_all(format!("{uid} {token}\n").as_bytes())
        .await
        .expect("sending the login line");
    let mut reply = String::new();
    let mut reader = BufReader::new(&mut stream);
    reader
        .read_line(&mut reply)
        .await
        .expect("reading the reply");
    (reply.trim().to_string(), stream)
}

/// What chat server `name` published as its load, if anything.
async fn load_of(redis: &RedisServer, name: &str) -> Option<String> {
    redis
        .query(redis::cmd("HGET").arg("logincount").arg(name))
        .await
}

#[tokio::test]
async fn whole_login_flow_with_stand_in_chat_servers() {
    let redis = RedisServer::start().await;
    let (port1, port2) = (free_port(), free_port());
    let mut config = TestConfig::new(&redis, chat_servers(&[("chat1", port1), ("chat2", port2)]));
    config.probe_interval_ms = 100;
    let mut server = ServerProcess::start(&config).await;
    let mut chat1 = StandInChatServer::start("chat1", port1, &redis, Some(server.addr));
    let _chat2 = StandInChatServer::start("chat2", port2, &redis, Some(server.addr));
    let mut client = server.client().await;

    // Both ChatServers wrote their 0; once polled and probed, users flow.
    let mut tokens = Vec::new();
    let mut sessions = Vec::new();
    let first = eventually("a placement once the chat servers are up", || {
        let mut client = client.clone();
        async move {
            client
                .get_chat_server(GetChatServerReq { uid: 1 })
                .await
                .ok()
        }
    })
    .await
    .into_inner();
    let (reply, session) = connect_to_chat(&first.port, 1, &first.token).await;
    assert_eq!(reply, "OK");
    tokens.push(first.token.clone());
    sessions.push(session);
    let first_name = if first.port == port1.to_string() {
        "chat1"
    } else {
        "chat2"
    };
    eventually("the chat server to publish its connection", || async {
        (load_of(&redis, first_name).await.as_deref() == Some("1")).then_some(())
    })
    .await;

    // The Login RPC rejects a wrong token the way the ChatServer relays it.
    let (reply, _) = connect_to_chat(&first.port, 1, "not-the-token").await;
    assert_eq!(reply, "ERR 1010");

    // The second user goes to the other, emptier server.
    let second = client
        .get_chat_server(GetChatServerReq { uid: 2 })
        .await
        .expect("placed")
        .into_inner();
    assert_ne!(second.port, first.port, "least load wins");
    let (reply, session) = connect_to_chat(&second.port, 2, &second.token).await;
    assert_eq!(reply, "OK");
    tokens.push(second.token);
    sessions.push(session);

    // A ChatServer that stops deletes its field and is no longer chosen.
    chat1.signal_term();
    chat1.wait();
    eventually("chat1's field to go", || async {
        load_of(&redis, "chat1").await.is_none().then_some(())
    })
    .await;
    eventually("placements to avoid chat1", || {
        let mut client = client.clone();
        async move {
            let rsp = client
                .get_chat_server(GetChatServerReq { uid: 3 })
                .await
                .ok()?
                .into_inner();
            (rsp.port == port2.to_string()).then_some(())
        }
    })
    .await;

    // Every token was used in debug logs' hot paths, yet none appears whole.
    let rsp = client
        .login(LoginReq {
            uid: 2,
            token: tokens[1].clone(),
        })
        .await
        .expect("login")
        .into_inner();
    assert_eq!(rsp.error, 0);
    server.signal("TERM");
    drop(sessions);
    server.wait_exit().await;
    let log = server.drain_log().await.join("\n");
    for token in &tokens {
        assert!(
            !log.contains(token.as_str()),
            "a whole token leaked into the log"
        );
        let without_dashes = token.replace('-', "");
        assert!(
            !log.contains(&without_dashes),
            "a token leaked without dashes"
        );
        assert!(
            !log.to_uppercase().contains(&token.to_uppercase()),
            "a token leaked in upper case"
        );
    }
}

#[tokio::test]
async fn second_signal_while_draining_exits_at_once() {
    let (_redis, mut server, _call, sleeper) = draining_one_call(10_000).await;
    server.wait_for_log("closing the listener").await;
    let second = Instant::now();
    server.signal("TERM");
    assert_eq!(server.wait_exit().await.code(), Some(1));
    assert!(
        second.elapsed() < Duration::from_millis(1500),
        "exited before Redis woke up"
    );
    let _ = sleeper.await;
}

/// A server whose stderr nobody reads (a log collector that stalled) goes on answering:
/// its log lines wait in a queue of their own instead of blocking the serving thread on a
/// full pipe, and they all come out once stderr is read again.
#[tokio::test]
async fn a_stalled_stderr_does_not_stall_calls() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    // RUST_LOG=debug: two lines per GetChatServer, so the calls below write several times
    // what a pipe holds (64 KiB on Linux), and far less than the writer's queue (4 MiB).
    let mut server = ServerProcess::start(&config).await;
    let mut client = server.client().await;
    server.stall_stderr();
    const CALLS: i32 = 3000;
    for uid in 1..=CALLS {
        let call = client.get_chat_server(GetChatServerReq { uid });
        let rsp = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .unwrap_or_else(|_| panic!("call {uid} did not finish while stderr is stalled"))
            .unwrap_or_else(|status| panic!("call {uid}: {status:?}"))
            .into_inner();
        assert_eq!(rsp.error, 0, "call {uid}");
    }
    server.resume_stderr();
    // Nothing lost: the last call's lines come out once stderr flows again.
    server.wait_for_log(&format!("uid {CALLS}: token")).await;
    assert!(
        !server
            .log
            .iter()
            .any(|line| line.contains("log lines were dropped")),
        "{} lines were queued, none should be dropped",
        server.log.len()
    );
    server.signal("TERM");
    assert_eq!(server.wait_exit().await.code(), Some(0));
}
