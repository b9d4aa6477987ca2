//! GetChatServer against a real Redis, through a tonic client (docs/contract.md §3).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use status_server::proto::{GetChatServerReq, GetChatServerRsp};
use testkit::*;
use tonic::Code;

async fn get(
    client: &mut status_server::proto::status_service_client::StatusServiceClient<
        tonic::transport::Channel,
    >,
    uid: i32,
) -> Result<GetChatServerRsp, tonic::Status> {
    client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn places_user_and_stores_token_with_ttl() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    config.token_ttl_secs = 600;
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;

    let rsp = get(&mut client, 42).await.expect("GetChatServer succeeds");
    assert_eq!(rsp.error, 0);
    assert_eq!(rsp.host, "127.0.0.1");
    assert_eq!(rsp.port, "8090");
    assert_eq!(rsp.token.len(), 36);
    let uuid = uuid::Uuid::parse_str(&rsp.token).expect("token is a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(rsp.token, rsp.token.to_lowercase());

    assert_eq!(
        redis.stored_token(42).await.as_deref(),
        Some(rsp.token.as_str())
    );
    let ttl = redis.ttl("utoken_42").await;
    assert!((590..=600).contains(&ttl), "TTL {ttl} should be about 600");
}

#[tokio::test]
async fn ttl_zero_stores_token_without_expiry() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    config.token_ttl_secs = 0;
    let server = TestServer::start(&config).await;

    let rsp = get(&mut server.client().await, 7)
        .await
        .expect("GetChatServer succeeds");
    assert_eq!(rsp.error, 0);
    assert_eq!(redis.ttl("utoken_7").await, -1, "no expiry");
}

#[tokio::test]
async fn second_call_replaces_the_token() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;

    let first = get(&mut client, 5).await.expect("first call").token;
    let second = get(&mut client, 5).await.expect("second call").token;
    assert_ne!(first, second);
    assert_eq!(redis.stored_token(5).await, Some(second));
}

#[tokio::test]
async fn invalid_uid_is_1011_and_touches_no_redis_key() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;
    redis.reset_stats().await;

    for uid in [0, -1, i32::MIN] {
        let rsp = get(&mut client, uid)
            .await
            .expect("a business error, not a status");
        assert_eq!(
            rsp,
            GetChatServerRsp {
                error: 1011,
                ..Default::default()
            },
            "uid {uid}"
        );
    }
    let calls = redis.command_calls().await;
    assert_eq!(calls.get("set"), None, "no SET for invalid uids: {calls:?}");
}

#[tokio::test]
async fn chooses_least_loaded_and_follows_hash_updates() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "10"), ("chat2", "0")]).await;
    let config = TestConfig::new(&redis, chat_servers(&[("chat1", 8001), ("chat2", 8002)]));
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;
    assert_eq!(get(&mut client, 1).await.expect("placed").port, "8002");

    // chat2 fills up; within two poll intervals the choice must follow.
    set_loads(&redis, &[("chat1", "0"), ("chat2", "50")]).await;
    let changed_at = Instant::now();
    let mut uid = 2;
    eventually("placements to move to chat1", || {
        uid += 1;
        let mut client = client.clone();
        async move { (get(&mut client, uid).await.ok()?.port == "8001").then_some(()) }
    })
    .await;
    let followed = changed_at.elapsed();
    assert!(
        followed <= Duration::from_millis(2 * config.poll_interval_ms + 150),
        "took {followed:?} to follow the hash"
    );
}

#[tokio::test]
async fn burst_of_300_spreads_over_three_equal_servers() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "0"), ("c", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        chat_servers(&[("a", 9001), ("b", 9002), ("c", 9003)]),
    );
    // Polls reset the per-poll assignment counts; include some in the burst.
    config.poll_interval_ms = 50;
    let server = TestServer::start(&config).await;
    let client = server.client().await;

    let calls = (1..=300).map(|uid| {
        let mut client = client.clone();
        async move { get(&mut client, uid).await }
    });
    let replies = futures_util::future::join_all(calls).await;
    let mut per_port: HashMap<String, usize> = HashMap::new();
    for reply in replies {
        *per_port
            .entry(reply.expect("every burst call succeeds").port)
            .or_default() += 1;
    }
    println!("burst of 300 over 3 equal servers: {per_port:?}");
    for port in ["9001", "9002", "9003"] {
        let n = per_port.get(port).copied().unwrap_or(0);
        assert!((80..=120).contains(&n), "port {port} got {n}: {per_port:?}");
    }
}

#[tokio::test]
async fn the_worker_thread_layout_places_and_checks_alike() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "0")]).await;
    let mut config = TestConfig::new(&redis, chat_servers(&[("a", 9001), ("b", 9002)]));
    // Connections on worker threads, actors on their own: every call crosses threads.
    config.threads = 3;
    let server = TestServer::start(&config).await;
    let client = server.client().await;

    let calls = (1..=200).map(|uid| {
        let mut client = client.clone();
        async move { (uid, get(&mut client, uid).await) }
    });
    let mut per_port: HashMap<String, usize> = HashMap::new();
    for (uid, reply) in futures_util::future::join_all(calls).await {
        let reply = reply.expect("every call succeeds");
        assert_eq!(
            redis.stored_token(uid).await.as_deref(),
            Some(reply.token.as_str()),
            "uid {uid}'s token is stored"
        );
        let login = client
            .clone()
            .login(status_server::proto::LoginReq {
                uid,
                token: reply.token,
            })
            .await
            .expect("Login answers")
            .into_inner();
        assert_eq!(login.error, 0, "uid {uid}'s token passes Login");
        *per_port.entry(reply.port).or_default() += 1;
    }
    assert_eq!(per_port.get("9001"), Some(&100), "{per_port:?}");
    assert_eq!(per_port.get("9002"), Some(&100), "{per_port:?}");
}

#[tokio::test]
async fn missing_or_invalid_load_field_is_not_alive() {
    let redis = RedisServer::start().await;
    // "gone" has no field; "broken" holds junk; only "ok" may be chosen.
    set_loads(&redis, &[("broken", "lots"), ("ok", "1000")]).await;
    let config = TestConfig::new(
        &redis,
        chat_servers(&[("gone", 7001), ("broken", 7002), ("ok", 7003)]),
    );
    let mut server = ServerProcess::start(&config).await;
    let mut client = server.client().await;
    for uid in 1..=10 {
        assert_eq!(get(&mut client, uid).await.expect("placed").port, "7003");
    }
    server
        .wait_for_log("broken: load field holds \"lots\"")
        .await;
}

#[tokio::test]
async fn no_alive_server_is_unavailable() {
    let redis = RedisServer::start().await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let server = TestServer::start(&config).await;
    redis.reset_stats().await;

    let status = get(&mut server.client().await, 1)
        .await
        .expect_err("no server is alive");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("no chat server is alive"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("chat1"), "{}", status.message());
    assert_eq!(
        redis.command_calls().await.get("set"),
        None,
        "no token was stored"
    );
}

#[tokio::test]
async fn unreachable_server_is_not_chosen_when_probing() {
    let redis = RedisServer::start().await;
    // Both are alive in the hash, but only one accepts TCP connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a listener");
    let open_port = listener.local_addr().expect("local addr").port();
    let closed_port = free_port();
    set_loads(&redis, &[("open", "100"), ("closed", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        chat_servers(&[("closed", closed_port), ("open", open_port)]),
    );
    config.probe_interval_ms = 200;
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;
    for uid in 1..=10 {
        let rsp = get(&mut client, uid)
            .await
            .expect("placed on the reachable server");
        assert_eq!(rsp.port, open_port.to_string());
    }
}

#[tokio::test]
async fn redis_down_at_start_then_unavailable_until_a_poll_succeeds() {
    let port = free_port();
    let mut config = TestConfig::at(
        &format!("redis://127.0.0.1:{port}"),
        vec![ChatServerEntry::new("chat1", 8090)],
    );
    config.command_timeout_ms = 500;
    config.token_ttl_secs = 60;
    config.shutdown_grace_ms = 5000;
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;
    let status = get(&mut client, 1).await.expect_err("no load data yet");
    assert_eq!(status.code(), Code::Unavailable);

    let redis = RedisServer::start_on(port, &[]).await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let rsp = eventually("service to recover once Redis is up", || {
        let mut client = client.clone();
        async move { get(&mut client, 1).await.ok() }
    })
    .await;
    assert_eq!(rsp.error, 0);
}

#[tokio::test]
async fn redis_failure_is_unavailable_within_the_timeout() {
    let mut redis = RedisServer::start_with_debug().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    config.command_timeout_ms = 300;
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;
    get(&mut client, 1).await.expect("works while Redis is up");

    // A hung Redis: the SET gets no answer within command_timeout_ms.
    let sleeper = redis.sleep_in_background(2.0).await;
    eventually("Redis to be asleep", || {
        let client = redis.client();
        async move {
            let probe = async {
                let mut c = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut c).await.ok()
            };
            tokio::time::timeout(Duration::from_millis(50), probe)
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;
    let started = Instant::now();
    let status = get(&mut client, 2).await.expect_err("Redis hangs");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(took <= Duration::from_millis(300 + 500), "took {took:?}");
    let _ = sleeper.await;

    // A dead Redis: refused connections also answer UNAVAILABLE in time.
    redis.kill();
    let started = Instant::now();
    let status = get(&mut client, 3).await.expect_err("Redis is gone");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() <= Duration::from_millis(300 + 500),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn one_redis_command_per_call_over_1000_calls() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0"), ("chat2", "0")]).await;
    let mut config = TestConfig::new(&redis, chat_servers(&[("chat1", 8001), ("chat2", 8002)]));
    config.poll_interval_ms = 1000;
    let server = TestServer::start(&config).await;
    let client = server.client().await;
    redis.reset_stats().await;

    let calls = (1..=1000).map(|uid| {
        let mut client = client.clone();
        async move { get(&mut client, uid).await.expect("placed") }
    });
    let replies = futures_util::future::join_all(calls).await;
    let after_get = redis.command_calls().await;

    redis.reset_stats().await;
    let logins = replies.into_iter().zip(1..).map(|(rsp, uid)| {
        let mut client = client.clone();
        async move {
            client
                .login(status_server::proto::LoginReq {
                    uid,
                    token: rsp.token,
                })
                .await
                .expect("login")
                .into_inner()
        }
    });
    let logged_in = futures_util::future::join_all(logins).await;
    assert!(logged_in.iter().all(|rsp| rsp.error == 0));
    let after_login = redis.command_calls().await;

    let non_poll = |calls: &HashMap<String, u64>| -> u64 {
        calls
            .iter()
            .filter(|(name, _)| {
                !["exists", "hstrlen", "hmget", "info", "config|resetstat"].contains(&name.as_str())
            })
            .map(|(_, n)| n)
            .sum()
    };
    println!(
        "1000 GetChatServer: {after_get:?} -> {:.3} commands/call besides polls; 1000 Login: {after_login:?} -> {:.3} commands/call besides polls",
        non_poll(&after_get) as f64 / 1000.0,
        non_poll(&after_login) as f64 / 1000.0,
    );
    assert_eq!(after_get.get("set"), Some(&1000));
    assert_eq!(non_poll(&after_get), 1000, "only SETs: {after_get:?}");
    assert_eq!(after_login.get("get"), Some(&1000));
    assert_eq!(non_poll(&after_login), 1000, "only GETs: {after_login:?}");
}
