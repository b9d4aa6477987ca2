//! The load hash vanishing as a whole (docs/contract.md §5): with probing
//! on, chat servers that accept TCP connections keep serving with their last
//! counts until the hash is back; with probing off, nothing is alive.

use status_server::admin_proto::ListServersReq;
use status_server::proto::status_service_client::StatusServiceClient;
use testkit::*;
use tonic::Code;
use tonic::transport::Channel;

/// A port that accepts TCP connections (the probes') until the test ends:
/// an accept loop on the test's runtime, so the backlog never fills.
async fn listening_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a listener on 127.0.0.1");
    let port = listener
        .local_addr()
        .expect("a bound listener's address")
        .port();
    tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            drop(connection);
        }
    });
    port
}

/// The port GetChatServer placed `uid` on; the call must succeed.
async fn placed(client: &mut StatusServiceClient<Channel>, uid: i32) -> String {
    placed_port(client, uid)
        .await
        .unwrap_or_else(|status| panic!("uid {uid} is not placed: {status:?}"))
}

/// `DEL logincount`: the hash is gone as a whole, as after a Redis restart
/// without persistence.
async fn delete_load_hash(redis: &RedisServer) {
    redis
        .query::<i64>(redis::cmd("DEL").arg("logincount"))
        .await;
}

/// The value of `status_load_hash_present` in `/metrics`.
async fn hash_present_gauge(server: &TestServer) -> Option<f64> {
    let (_, text) = server.http_get("/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix("status_load_hash_present "))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits until `/metrics` says the hash is `present` (1) or not (0).
async fn wait_for_hash_gauge(server: &TestServer, present: f64) {
    eventually(&format!("status_load_hash_present {present}"), || async {
        (hash_present_gauge(server).await == Some(present)).then_some(())
    })
    .await;
}

/// Probing on: "busy" (count 100) and "idle" (count 0) accept TCP
/// connections; "closed" (count 0) does not.
async fn probed_servers() -> (RedisServer, TestServer, [u16; 3]) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("busy", "100"), ("idle", "0"), ("closed", "0")]).await;
    let ports = [listening_port().await, listening_port().await, free_port()];
    let mut config = TestConfig::new(
        &redis,
        chat_servers(&[("busy", ports[0]), ("idle", ports[1]), ("closed", ports[2])]),
    );
    config.probe_interval_ms = 100;
    let server = TestServer::start(&config).await;
    (redis, server, ports)
}

#[tokio::test]
async fn with_probing_a_vanished_hash_keeps_reachable_servers_with_their_last_counts() {
    let (redis, server, [busy, idle, _closed]) = probed_servers().await;
    let mut client = server.client().await;
    assert_eq!(placed(&mut client, 1).await, idle.to_string());
    assert_eq!(hash_present_gauge(&server).await, Some(1.0));

    delete_load_hash(&redis).await;
    wait_for_hash_gauge(&server, 0.0).await;
    // idle keeps its 0 and busy its 100, so 20 users all go to idle; the
    // unreachable server stays out although it had a count.
    for uid in 2..=21 {
        assert_eq!(
            placed(&mut client, uid).await,
            idle.to_string(),
            "uid {uid}"
        );
    }
    let mut admin = server.admin().await;
    let listed = admin
        .list_servers(ListServersReq {})
        .await
        .expect("ListServers")
        .into_inner();
    assert!(!listed.load_hash_present);
    let state: Vec<_> = listed
        .servers
        .iter()
        .map(|s| (s.name.as_str(), s.polled_count, s.alive))
        .collect();
    assert_eq!(
        state,
        [
            ("busy", Some(100), true),
            ("idle", Some(0), true),
            ("closed", Some(0), false)
        ]
    );

    // Back, with the counts the other way round: they are followed again.
    set_loads(&redis, &[("busy", "0"), ("idle", "100"), ("closed", "0")]).await;
    wait_for_hash_gauge(&server, 1.0).await;
    assert_eq!(placed(&mut client, 22).await, busy.to_string());
}

#[tokio::test]
async fn with_probing_a_server_without_a_count_yet_serves_from_0_while_the_hash_is_gone() {
    let redis = RedisServer::start().await;
    // Never written: the hash does not exist from the start.
    let port = listening_port().await;
    let mut config = TestConfig::new(&redis, chat_servers(&[("fresh", port)]));
    config.probe_interval_ms = 100;
    let server = TestServer::start(&config).await;
    wait_for_hash_gauge(&server, 0.0).await;
    let mut client = server.client().await;
    assert_eq!(placed(&mut client, 1).await, port.to_string());
    let mut admin = server.admin().await;
    let listed = admin
        .list_servers(ListServersReq {})
        .await
        .expect("ListServers")
        .into_inner();
    assert_eq!(listed.servers[0].polled_count, Some(0));
    assert_eq!(
        listed.servers[0].load_field, "unknown",
        "no field ever read"
    );
}

#[tokio::test]
async fn without_probing_a_vanished_hash_leaves_no_server_alive() {
    let (redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    assert_eq!(placed(&mut client, 1).await, "8090".to_string());

    delete_load_hash(&redis).await;
    let status = eventually("GetChatServer to answer UNAVAILABLE", || {
        let mut client = client.clone();
        async move { placed_port(&mut client, 2).await.err() }
    })
    .await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("chat1: not in the load hash"),
        "{}",
        status.message()
    );
    assert_eq!(hash_present_gauge(&server).await, Some(0.0));

    set_loads(&redis, &[("chat1", "0")]).await;
    wait_for_hash_gauge(&server, 1.0).await;
    assert_eq!(placed(&mut client, 3).await, "8090".to_string());
}

#[tokio::test]
async fn a_vanished_hash_is_logged_once_per_episode() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let port = listening_port().await;
    let mut config = TestConfig::new(&redis, chat_servers(&[("chat1", port)]));
    config.probe_interval_ms = 100;
    let mut server = ServerProcess::start(&config).await;
    let vanished = |line: &str| line.contains("the load hash does not exist");

    delete_load_hash(&redis).await;
    server.wait_for_log("the load hash does not exist").await;
    // Five more polls find it gone (each sends one EXISTS)...
    redis.reset_stats().await;
    eventually("five polls without the hash", || async {
        let exists = redis.command_calls().await.get("exists").copied();
        (exists >= Some(5)).then_some(())
    })
    .await;
    let mut client = server.client().await;
    assert_eq!(placed(&mut client, 1).await, port.to_string());
    // ...and once it is back, every line of the episode has been read.
    set_loads(&redis, &[("chat1", "0")]).await;
    server.wait_for_log("the load hash exists again").await;
    let warnings = server.log.iter().filter(|line| vanished(line)).count();
    assert_eq!(warnings, 1, "log:\n{}", server.log.join("\n"));
    assert!(
        server
            .log
            .iter()
            .any(|line| vanished(line) && line.contains("WARN")),
        "a warning"
    );

    // A second episode is logged again.
    delete_load_hash(&redis).await;
    server.wait_for_nth_log(2, vanished).await;
}

/// Bytes Redis has sent to its clients so far (`INFO stats`).
async fn redis_output_bytes(redis: &RedisServer) -> u64 {
    let stats = redis.info("stats").await.expect("INFO stats");
    stats["total_net_output_bytes"]
        .parse()
        .expect("a byte count")
}

#[tokio::test]
async fn a_10_mb_load_field_is_not_a_count_read_once_and_warned_once() {
    let redis = RedisServer::start().await;
    let huge = "9".repeat(10 * 1024 * 1024);
    set_loads(&redis, &[("chat1", &huge), ("chat2", "0")]).await;
    let config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("chat1", 8090),
            ChatServerEntry::new("chat2", 8091),
        ],
    );
    let mut server = ServerProcess::start(&config).await;
    let mut client = server.client().await;
    // Polls every 100 ms: 20 polls in 2 s would move 200 MB if each read the field.
    let before = redis_output_bytes(&redis).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let sent = redis_output_bytes(&redis).await - before;
    assert!(
        sent < 1024 * 1024,
        "Redis sent {sent} bytes in 2 s of polls"
    );
    for uid in 1..=10 {
        assert_eq!(placed(&mut client, uid).await, "8091", "chat1 is not alive");
    }
    server.signal("TERM");
    server.wait_exit().await;
    let log = server.drain_log().await;
    let warnings: Vec<&String> = log
        .iter()
        .filter(|line| line.contains("chat1: load field holds"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("a value of 10485760 bytes"),
        "{}",
        warnings[0]
    );
}
