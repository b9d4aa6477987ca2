//! The HTTP/JSON port (docs/contract.md §9) in-process: every status code it answers, the
//! same tokens as gRPC, keep-alive, metrics by protocol, and the drain on stop.

use std::time::Duration;

use serde_json::{Value, json};
use status_server::proto::{GetChatServerReq, LoginReq};
use status_server::server::Exit;
use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn json_of(reply: &HttpReply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|err| panic!("{err}: {reply:?}"))
}

/// A 200 reply's JSON, after checking the status and content type.
fn ok_json(reply: &HttpReply) -> Value {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    json_of(reply)
}

/// The `message` of a refusal with `status`.
fn refusal(reply: &HttpReply, status: u16) -> String {
    assert_eq!(reply.status, status, "{reply:?}");
    let body = json_of(reply);
    let object = body.as_object().expect("a JSON object");
    assert_eq!(object.len(), 1, "only a message: {body}");
    object["message"]
        .as_str()
        .expect("message is a string")
        .to_string()
}

async fn get_chat_server(server: &TestServer, uid: i32) -> HttpReply {
    server
        .http_post("/v1/get-chat-server", &json!({ "uid": uid }).to_string())
        .await
}

async fn login(server: &TestServer, uid: i32, token: &str) -> HttpReply {
    server
        .http_post(
            "/v1/login",
            &json!({ "uid": uid, "token": token }).to_string(),
        )
        .await
}

#[tokio::test]
async fn get_chat_server_places_and_login_checks_with_business_errors_as_200() {
    let (redis, server) = server_with_one_chat_server().await;

    let placed = ok_json(&get_chat_server(&server, 42).await);
    assert_eq!(placed["error"], 0);
    assert_eq!(placed["host"], "127.0.0.1");
    assert_eq!(placed["port"], "8090");
    let token = placed["token"].as_str().expect("a token").to_string();
    assert_eq!(token.len(), 36);
    assert_eq!(
        redis.stored_token(42).await.as_deref(),
        Some(token.as_str())
    );
    let fields: Vec<&String> = placed.as_object().expect("object").keys().collect();
    assert_eq!(fields, ["error", "host", "port", "token"]);

    assert_eq!(
        ok_json(&login(&server, 42, &token).await),
        json!({ "error": 0, "uid": 42, "token": token })
    );
    // Business errors: 200 with the code and every other field empty, as on gRPC.
    assert_eq!(
        ok_json(&get_chat_server(&server, 0).await),
        json!({ "error": 1011, "host": "", "port": "", "token": "" })
    );
    let rejected = |error| json!({ "error": error, "uid": 0, "token": "" });
    assert_eq!(
        ok_json(&login(&server, 42, "not-the-token").await),
        rejected(1010)
    );
    assert_eq!(ok_json(&login(&server, 42, "").await), rejected(1010));
    assert_eq!(ok_json(&login(&server, 43, &token).await), rejected(1011));
    assert_eq!(ok_json(&login(&server, -1, &token).await), rejected(1011));
    // Fields beyond the message's are ignored, as protobuf ignores unknown fields.
    let extra = server
        .http_post("/v1/get-chat-server", r#"{"uid": 44, "trace": "x"}"#)
        .await;
    assert_eq!(ok_json(&extra)["error"], 0);
}

#[tokio::test]
async fn one_token_works_across_grpc_and_http() {
    let (_redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;

    // Issued over gRPC, checked over HTTP.
    let token = client
        .get_chat_server(GetChatServerReq { uid: 7 })
        .await
        .expect("placed")
        .into_inner()
        .token;
    assert_eq!(ok_json(&login(&server, 7, &token).await)["error"], 0);

    // Issued over HTTP, checked over gRPC.
    let placed = ok_json(&get_chat_server(&server, 8).await);
    let token = placed["token"].as_str().expect("a token").to_string();
    let checked = client
        .login(LoginReq {
            uid: 8,
            token: token.clone(),
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!((checked.error, checked.uid, checked.token), (0, 8, token));
}

#[tokio::test]
async fn malformed_or_mistyped_bodies_are_400() {
    let (redis, server) = server_with_one_chat_server().await;
    redis.reset_stats().await;
    for (path, body) in [
        ("/v1/get-chat-server", ""),
        ("/v1/get-chat-server", "{\"uid\": 42"),
        ("/v1/get-chat-server", "uid=42"),
        ("/v1/get-chat-server", "{\"uid\": \"42\"}"),
        ("/v1/get-chat-server", "{\"uid\": 4.2}"),
        ("/v1/get-chat-server", "{\"uid\": 4294967296}"),
        ("/v1/get-chat-server", "{}"),
        ("/v1/get-chat-server", "[42]"),
        ("/v1/login", "{\"uid\": 42}"),
        ("/v1/login", "{\"uid\": 42, \"token\": 5}"),
        ("/v1/login", "{\"uid\": true, \"token\": \"t\"}"),
        ("/v1/login", "{\"uid\": 42, \"token\": null}"),
    ] {
        let reply = server.http_post(path, body).await;
        let message = refusal(&reply, 400);
        assert!(
            message.starts_with("not a valid request body"),
            "{path} {body:?}: {message}"
        );
    }
    // None of them reached Redis.
    let calls = redis.command_calls().await;
    assert_eq!(calls.get("set"), None, "{calls:?}");
    assert_eq!(calls.get("get"), None, "{calls:?}");
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let (_redis, server) = server_with_one_chat_server().await;
    let addr = server.http_addr.expect("the HTTP/JSON port is on");
    assert_eq!(
        server.http_post("/v1/nope", "{\"uid\": 1}").await.status,
        404
    );
    assert_eq!(server.http_post("/", "").await.status, 404);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let reply = http_exchange(addr, get("/metrics").as_bytes()).await;
    assert!(refusal(&reply, 404).contains("POST /v1/get-chat-server"));
    for path in ["/v1/get-chat-server", "/v1/login"] {
        for method in ["GET", "PUT", "DELETE"] {
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let reply = http_exchange(addr, request.as_bytes()).await;
            assert_eq!(refusal(&reply, 405), "POST only", "{method} {path}");
            assert_eq!(reply.header("allow"), Some("POST"), "{reply:?}");
        }
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_and_64_kib_is_served() {
    let (_redis, server) = server_with_one_chat_server().await;
    let addr = server.http_addr.expect("the HTTP/JSON port is on");
    let padded = |len: usize| {
        let json = "{\"uid\": 42}";
        format!("{json}{}", " ".repeat(len - json.len()))
    };
    assert_eq!(
        ok_json(
            &server
                .http_post("/v1/get-chat-server", &padded(64 * 1024))
                .await
        )["error"],
        0
    );
    // Declared too long: refused before the body is read.
    let reply = server
        .http_post("/v1/get-chat-server", &padded(64 * 1024 + 1))
        .await;
    assert_eq!(refusal(&reply, 413), "the body is larger than 65536 bytes");
    // Chunked, with no length declared: refused once the limit is passed.
    let chunk = "x".repeat(40 * 1024);
    let request = format!(
        "POST /v1/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let reply = http_exchange(addr, request.as_bytes()).await;
    assert_eq!(refusal(&reply, 413), "the body is larger than 65536 bytes");
}

#[tokio::test]
async fn every_server_draining_is_429_and_none_alive_is_503() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("chat1", 8090).draining(true),
            ChatServerEntry::new("chat2", 8091),
        ],
    );
    let server = TestServer::start(&config).await;
    let message = refusal(&get_chat_server(&server, 1).await, 429);
    assert_eq!(
        message,
        "every chat server is full or draining (chat1: draining (config); \
         chat2: not alive: not in the load hash)"
    );
    assert_eq!(redis.stored_token(1).await, None);

    // chat1 leaves the hash: nobody alive.
    let _: () = redis.query(redis::cmd("DEL").arg("logincount")).await;
    let message = eventually("no server alive", || async {
        let reply = get_chat_server(&server, 2).await;
        (reply.status == 503).then(|| refusal(&reply, 503))
    })
    .await;
    assert!(message.starts_with("no chat server is alive"), "{message}");
}

#[tokio::test]
async fn redis_down_is_503_on_both_endpoints() {
    let (mut redis, server) = server_with_one_chat_server().await;
    redis.kill();
    for reply in [
        get_chat_server(&server, 1).await,
        login(&server, 1, "some-token").await,
    ] {
        let message = refusal(&reply, 503);
        assert!(!message.is_empty());
    }
}

#[tokio::test]
async fn keep_alive_connections_carry_many_requests_and_metrics_name_the_protocol() {
    let (_redis, server) = server_with_one_chat_server().await;
    let addr = server.http_addr.expect("the HTTP/JSON port is on");
    let mut stream = TcpStream::connect(addr).await.expect("connecting");
    for uid in 1..=3 {
        let body = json!({ "uid": uid }).to_string();
        let request = format!(
            "POST /v1/get-chat-server HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("sending");
        let reply = read_one_reply(&mut stream).await;
        assert_eq!(ok_json(&reply)["error"], 0);
    }
    let mut client = server.client().await;
    client
        .get_chat_server(GetChatServerReq { uid: 9 })
        .await
        .expect("placed");

    let metrics = server.http_get("/metrics").await.1;
    let sample = |series: &str| {
        metrics.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
    };
    assert_eq!(
        sample("status_requests_total{outcome=\"ok\",protocol=\"http\",rpc=\"GetChatServer\"}"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample("status_requests_total{outcome=\"ok\",protocol=\"grpc\",rpc=\"GetChatServer\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample("status_request_duration_seconds_count{protocol=\"http\",rpc=\"GetChatServer\"}"),
        Some(3.0)
    );
}

/// Reads one response with a `Content-Length` body off a keep-alive connection.
async fn read_one_reply(stream: &mut TcpStream) -> HttpReply {
    let mut buffer = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("reading");
            assert!(n > 0, "closed before a whole reply: {buffer:?}");
            buffer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buffer).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let reply = parse_http_reply(&format!("{head}\r\n\r\n"));
                let length: usize = reply
                    .header("content-length")
                    .and_then(|l| l.parse().ok())
                    .expect("a Content-Length");
                if body.len() >= length {
                    return parse_http_reply(&text);
                }
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the reply came in time")
}

#[tokio::test]
async fn stop_closes_the_listener_and_idle_connections_and_answers_requests_in_flight() {
    let redis = RedisServer::start_with_debug().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    // The token write waits out the sleep instead of timing out.
    config.command_timeout_ms = 5000;
    let server = TestServer::start(&config).await;
    let addr = server.http_addr.expect("the HTTP/JSON port is on");

    // An idle keep-alive connection, after one request.
    let mut idle = TcpStream::connect(addr).await.expect("connecting");
    let body = "{\"uid\": 1}";
    let request = format!(
        "POST /v1/get-chat-server HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    idle.write_all(request.as_bytes()).await.expect("sending");
    assert_eq!(ok_json(&read_one_reply(&mut idle).await)["error"], 0);

    // A request in flight, on a keep-alive connection: its token write waits behind
    // DEBUG SLEEP.
    let sleeper = redis.sleep_in_background(1.0).await;
    let body = "{\"uid\": 2}";
    let request = format!(
        "POST /v1/get-chat-server HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let in_flight = tokio::spawn(async move { http_exchange(addr, request.as_bytes()).await });
    eventually("the placement to wait on Redis", || async {
        let metrics = server.http_get("/metrics").await.1;
        metrics
            .lines()
            .any(|line| line == "status_chat_server_in_flight{server=\"chat1\"} 1")
            .then_some(())
    })
    .await;

    let stopped = tokio::spawn(server.stop());
    eventually("the HTTP/JSON listener to close", || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    // The idle connection is closed by the server: EOF, no reply.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?} {rest:?}");
    assert!(!in_flight.is_finished(), "answered before Redis woke up");

    let reply = in_flight.await.expect("the request task");
    let placed = ok_json(&reply);
    assert_eq!(placed["error"], 0);
    // Answered, then closed although the client asked for keep-alive.
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(
        stopped.await.expect("the stop task").expect("served"),
        Exit::Drained
    );
    let _ = sleeper.await;
    assert_eq!(
        redis.stored_token(2).await.as_deref(),
        placed["token"].as_str()
    );
}

/// Any body, on either endpoint: a clean 200 reply or a clean 400, never anything else
/// (and the server keeps serving).
#[test]
fn arbitrary_bodies_answer_200_or_400() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let (_redis, server) = runtime.block_on(server_with_one_chat_server());
    let addr = server.http_addr.expect("the HTTP/JSON port is on");
    let json_like = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "[{}\\[\\]\":,0-9a-z \\\\.-]{0,60}".prop_map(String::into_bytes),
        (any::<i64>(), ".{0,20}").prop_map(|(uid, token)| {
            json!({ "uid": uid, "token": token })
                .to_string()
                .into_bytes()
        }),
    ];
    let mut runner = TestRunner::new(Config::with_cases(200));
    runner
        .run(&(json_like, any::<bool>()), |(body, to_login)| {
            let path = if to_login {
                "/v1/login"
            } else {
                "/v1/get-chat-server"
            };
            let mut request = format!(
                "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            let reply = runtime.block_on(http_exchange(addr, &request));
            prop_assert!(reply.status == 200 || reply.status == 400, "{reply:?}");
            let answer: Value = serde_json::from_str(&reply.body)
                .map_err(|err| TestCaseError::fail(format!("{err}: {reply:?}")))?;
            let key = if reply.status == 200 { "error" } else { "message" };
            prop_assert!(answer.get(key).is_some(), "{reply:?}");
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    drop(server);
}
