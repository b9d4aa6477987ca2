//! What one client can take from everyone else: streams on one connection,
//! half-sent requests, connections past the cap. Each test misbehaves in miniature with a raw
//! HTTP/2 client and checks a fresh client is still served at once.

use std::time::{Duration, Instant};

use bytes::Bytes;
use status_server::MAX_STREAMS_PER_CONNECTION;
use status_server::proto::GetChatServerReq;
use testkit::*;
use tokio::io::AsyncReadExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A fresh client's GetChatServer, with how long it took.
async fn fresh_call(server: &TestServer) -> Duration {
    let started = Instant::now();
    let rsp = server
        .client()
        .await
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await
        .expect("a fresh client is served")
        .into_inner();
    assert_eq!(rsp.error, 0);
    started.elapsed()
}

/// A gRPC request's headers for `path`, its body still to come.
fn grpc_request(path: &str) -> tonic::codegen::http::Request<()> {
    tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(format!("http://status{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("a valid request")
}

#[tokio::test]
async fn one_connection_cannot_take_the_in_flight_budget() {
    let (_redis, server) = server_with_one_chat_server().await;
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (mut sender, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let (limit_tx, limit_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut connection = connection;
        // The server's SETTINGS arrive with its first frames.
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut connection).await;
        let _ = limit_tx.send(connection.max_concurrent_send_streams());
        let _ = connection.await;
    });
    let advertised = limit_rx.await.expect("the connection task reports");
    assert_eq!(advertised, MAX_STREAMS_PER_CONNECTION as usize);

    // More streams than the whole in-flight budget, each with a body one byte
    // short: a 5-byte gRPC frame header announcing 2 bytes, then 1 byte. The
    // client queues what the server's limit does not let it open.
    let mut held = Vec::new();
    for _ in 0..(status_server::MAX_IN_FLIGHT + 100) {
        let (response, mut body) = sender
            .send_request(grpc_request("/message.StatusService/GetChatServer"), false)
            .expect("the request is queued");
        let _ = body.send_data(Bytes::from_static(&[0, 0, 0, 0, 2, 8]), false);
        held.push((response, body));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let latency = fresh_call(&server).await;
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
    drop(held);
}

#[tokio::test]
async fn one_connection_cannot_open_more_health_watches_than_its_stream_limit() {
    let (_redis, server) = server_with_one_chat_server().await;
    let channel = server.channel().await;
    let watches = MAX_STREAMS_PER_CONNECTION as usize + 50;
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(watches);
    for _ in 0..watches {
        let mut health = HealthClient::new(channel.clone());
        let opened = opened_tx.clone();
        tokio::spawn(async move {
            let mut stream = health
                .watch(HealthCheckRequest {
                    service: String::new(),
                })
                .await?
                .into_inner();
            if stream.message().await?.is_some() {
                let _ = opened.send(()).await;
            }
            // Held open until the test ends.
            while stream.message().await?.is_some() {}
            Ok::<_, tonic::Status>(())
        });
    }
    let mut opened = 0;
    while let Ok(Some(())) = tokio::time::timeout(Duration::from_secs(2), opened_rx.recv()).await {
        opened += 1;
    }
    assert_eq!(opened, MAX_STREAMS_PER_CONNECTION as usize);
    let latency = fresh_call(&server).await;
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
}

#[tokio::test]
async fn a_half_sent_request_gives_its_permit_back_at_the_deadline() {
    let (_redis, server) = server_with_one_chat_server().await;
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (mut sender, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let (response, mut body) = sender
        .send_request(grpc_request("/message.StatusService/GetChatServer"), false)
        .expect("the request is sent");
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 2, 8]), false)
        .expect("the partial body is sent");
    let started = Instant::now();
    let response = tokio::time::timeout(
        status_server::REQUEST_DEADLINE + Duration::from_secs(5),
        response,
    )
    .await
    .expect("the server answers by its deadline")
    .expect("a response");
    assert!(started.elapsed() >= status_server::REQUEST_DEADLINE - Duration::from_secs(1));
    // CANCELLED (1), in the headers of a trailers-only reply.
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(code.as_deref(), Some("1"), "{response:?}");
    fresh_call(&server).await;
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_the_open_ones_served() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let text = config
        .to_toml()
        .replacen("[server]\n", "[server]\nmax_connections = 20\n", 1);
    let server = TestServer::start_with_config_text(&text).await;
    let mut client = server.client().await;
    client
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await
        .expect("the first client is served");
    let silent = silent_connections(server.addr, 19).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    closed_at_once(server.addr, Duration::from_secs(2)).await;

    let started = Instant::now();
    client
        .get_chat_server(GetChatServerReq { uid: 2 })
        .await
        .expect("an open connection is still served");
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(silent);
    tokio::time::sleep(Duration::from_millis(300)).await;
    fresh_call(&server).await;
}

/// `n` connections to `addr` that never say a word.
async fn silent_connections(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut silent = Vec::with_capacity(n);
    for _ in 0..n {
        silent.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    silent
}

/// One more connection to `addr`, past its cap: the kernel accepts it, the server closes it
/// within `within` instead of leaving it open.
async fn closed_at_once(addr: std::net::SocketAddr, within: Duration) {
    let mut extra = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the kernel accepts; the server closes it");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(within, extra.read(&mut buf))
        .await
        .expect("past the cap a connection is closed at once, not left open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

/// A config with `listen` only (no Admin, no HTTP/JSON port), for the open-file tests.
async fn listen_only(max_connections: usize) -> (RedisServer, String) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let text = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)])
        .to_toml()
        .replace("admin_listen = \"127.0.0.1:0\"", "admin_listen = \"\"")
        .replace("http_listen = \"127.0.0.1:0\"", "http_listen = \"\"")
        .replacen(
            "[server]\n",
            &format!("[server]\nmax_connections = {max_connections}\n"),
            1,
        );
    (redis, text)
}

/// A GetChatServer on a connection of its own, which may be refused.
async fn fresh_call_result(addr: std::net::SocketAddr) -> Result<(), String> {
    let mut client = status_server::proto::status_service_client::StatusServiceClient::connect(
        format!("http://{addr}"),
    )
    .await
    .map_err(|err| format!("connect: {err}"))?;
    client
        .get_chat_server(GetChatServerReq { uid: 3 })
        .await
        .map(drop)
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test]
async fn a_low_open_file_limit_lowers_the_cap_and_says_so() {
    let (_redis, text) = listen_only(10_000).await;
    let mut server = ServerProcess::start_with_open_files(&text, 200, 200).await;
    let warning = server.wait_for_log("open-file limit 200 ").await;
    assert!(
        warning.contains("server.max_connections = 10000"),
        "{warning}"
    );
    let cap: usize = warning
        .split("serving at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no lowered cap in {warning}"));
    assert!((1..200).contains(&cap), "{warning}");

    // One gRPC client, then silent connections up to the cap.
    let mut client = server.client().await;
    client
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await
        .expect("the first client is served");
    let mut silent = silent_connections(server.addr, cap - 1).await;
    // Accepted in order: once this one is closed, every one before it holds a slot.
    closed_at_once(server.addr, testkit::WAIT).await;
    server.wait_for_log("closing new ones until one ends").await;

    client
        .get_chat_server(GetChatServerReq { uid: 2 })
        .await
        .expect("an open connection is still served");
    // Once one closes, a fresh client gets its slot (when the server has seen the close).
    drop(silent.pop());
    eventually_ok("a fresh client served after a close", || {
        fresh_call_result(server.addr)
    })
    .await;
}

#[tokio::test]
async fn a_soft_open_file_limit_is_raised_for_the_caps() {
    let (_redis, text) = listen_only(1000).await;
    let mut server = ServerProcess::start_with_open_files(&text, 256, 2000).await;
    // 1000 connections, 64 kept free, one chat server to probe.
    let raised = server.wait_for_log("open-file limit raised").await;
    assert!(raised.contains("from 256 to 1065"), "{raised}");
    assert!(
        !server.log.iter().any(|l| l.contains("serving at most")),
        "the caps stay as configured: {:?}",
        server.log
    );
    fresh_call_result(server.addr)
        .await
        .expect("served after the raise");
}
