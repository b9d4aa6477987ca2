//! Faults injected for real: Redis stops and comes back, a ChatServer stops
//! accepting, SIGTERM under continuous load.

use std::time::{Duration, Instant};

use testkit::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_logs_once_and_recovers_by_itself() {
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    set_loads(&redis, &[("chat1", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    config.command_timeout_ms = 300;
    let mut server = ServerProcess::start(&config).await;
    let mut client = server.client().await;
    placed_port(&mut client, 1)
        .await
        .expect("works while Redis is up");

    redis.kill();
    // Every call during the outage fails with UNAVAILABLE within the timeout.
    let mut slowest = Duration::ZERO;
    for uid in 2..50 {
        let started = Instant::now();
        let status = placed_port(&mut client, uid)
            .await
            .expect_err("Redis is down");
        slowest = slowest.max(started.elapsed());
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    assert!(
        slowest <= Duration::from_millis(300 + 500),
        "slowest failure took {slowest:?}"
    );
    server.wait_for_log("load poll failed").await;

    // Redis returns (empty: a restart without persistence, so the ChatServer
    // writes its count again, as deployed ones do when their count changes).
    let redis = RedisServer::start_on(port, &[]).await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let back = Instant::now();
    eventually("calls to succeed again after Redis returned", || {
        let mut client = client.clone();
        async move { placed_port(&mut client, 100).await.ok() }
    })
    .await;
    println!(
        "outage: slowest failure {slowest:?}; recovered {:?} after Redis returned",
        back.elapsed()
    );
    server.wait_for_log("Redis answers again").await;
    server.wait_for_log("load poll succeeds again").await;

    let count = |needle: &str| server.log.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(
        count("token store: redis"),
        1,
        "token errors logged once per outage"
    );
    assert_eq!(
        count("load poll failed"),
        1,
        "poll errors logged once per outage"
    );
}

#[tokio::test]
async fn chat_server_that_stops_accepting_is_skipped_until_it_accepts_again() {
    let redis = RedisServer::start().await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let busy_port = busy.local_addr().expect("addr").port();
    let quiet = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let quiet_port = quiet.local_addr().expect("addr").port();
    // "quiet" is the emptier one: it wins while it accepts.
    set_loads(&redis, &[("busy", "100"), ("quiet", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        chat_servers(&[("busy", busy_port), ("quiet", quiet_port)]),
    );
    config.probe_interval_ms = 100;
    let mut server = ServerProcess::start(&config).await;
    let mut client = server.client().await;
    assert_eq!(
        placed_port(&mut client, 1).await.expect("placed"),
        quiet_port.to_string()
    );

    // It dies without deleting its field: alive in the hash, unreachable.
    drop(quiet);
    server.wait_for_log("quiet: 127.0.0.1").await;
    for uid in 2..20 {
        assert_eq!(
            placed_port(&mut client, uid).await.expect("placed"),
            busy_port.to_string()
        );
    }

    let _quiet = std::net::TcpListener::bind(("127.0.0.1", quiet_port)).expect("rebinding");
    eventually("the server to be chosen again", || {
        let mut client = client.clone();
        async move {
            let port = placed_port(&mut client, 50).await.ok()?;
            (port == quiet_port.to_string()).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_accepted_request() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let mut server = ServerProcess::start(&config).await;
    let client = server.client().await;

    let load = LoadWorkers::start(client, 16, 1_000_000);
    load.wait_for_calls(200).await;

    server.signal("TERM");
    let status = server.wait_exit().await;
    let outcomes = load.stop().await;
    assert_eq!(status.code(), Some(0));
    let log = server.drain_log().await.join("\n");

    let (mut ok, mut refused) = (0, 0);
    for (uid, outcome) in outcomes {
        match outcome {
            Ok(_) => ok += 1,
            Err(status) => {
                // A failed call must be one the server never accepted.
                assert!(
                    !log.contains(&format!("uid {uid} -> ")),
                    "uid {uid} was accepted, then lost: {status:?}"
                );
                refused += 1;
            }
        }
    }
    println!("SIGTERM under load: {ok} succeeded, {refused} refused before acceptance, 0 lost");
    assert!(ok >= 200);
}

/// Sets a Redis config parameter on the test Redis.
async fn config_set(redis: &RedisServer, name: &str, value: &str) {
    let () = redis
        .query(redis::cmd("CONFIG").arg("SET").arg(name).arg(value))
        .await;
}

/// gRPC health `Check` for the whole server, and `/healthz`'s status code.
async fn both_health_surfaces(server: &TestServer) -> (i32, u16) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let grpc = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Check")
        .into_inner()
        .status;
    let (http, _) = server.http_get("/healthz").await;
    (grpc, http)
}

#[tokio::test]
async fn redis_refusing_writes_makes_both_health_surfaces_not_serving_until_it_takes_them() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let (redis, server) = server_with_one_chat_server().await;
    let serving = (ServingStatus::Serving as i32, 200);
    let not_serving = (ServingStatus::NotServing as i32, 503);
    assert_eq!(both_health_surfaces(&server).await, serving);

    // Out of memory with no eviction: reads work (the poll too), writes fail.
    config_set(&redis, "maxmemory-policy", "noeviction").await;
    config_set(&redis, "maxmemory", "1").await;
    let mut client = server.client().await;
    let status = placed_port(&mut client, 1)
        .await
        .expect_err("the token write is refused");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    eventually("both health surfaces to say not serving", || async {
        (both_health_surfaces(&server).await == not_serving).then_some(())
    })
    .await;

    // Writes are taken again: health comes back without any call arriving.
    config_set(&redis, "maxmemory", "0").await;
    eventually("both health surfaces to say serving again", || async {
        (both_health_surfaces(&server).await == serving).then_some(())
    })
    .await;
    placed_port(&mut client, 2).await.expect("calls work again");
}

#[tokio::test]
async fn successful_logins_do_not_hide_failing_token_writes_from_health() {
    use status_server::proto::LoginReq;
    use tonic_health::pb::health_check_response::ServingStatus;
    let (redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    let token = client
        .get_chat_server(status_server::proto::GetChatServerReq { uid: 1 })
        .await
        .expect("placed before the fault")
        .into_inner()
        .token;
    let login = |client: &mut status_server::proto::status_service_client::StatusServiceClient<
        tonic::transport::Channel,
    >| {
        let mut client = client.clone();
        let token = token.clone();
        async move { client.login(LoginReq { uid: 1, token }).await }
    };

    // Out of memory: Logins (reads) work, token writes fail.
    config_set(&redis, "maxmemory-policy", "noeviction").await;
    config_set(&redis, "maxmemory", "1").await;
    // Logins and GetChatServers at once, so batches mix reads that succeed
    // with writes that fail.
    let mixed = (2..=41).map(|uid| {
        let mut client = client.clone();
        let login = login(&mut client);
        async move {
            let placed = placed_port(&mut client, uid).await;
            (placed, login.await)
        }
    });
    for (placed, login) in futures_util::future::join_all(mixed).await {
        assert_eq!(placed.expect_err("writes fail").code(), Code::Unavailable);
        assert_eq!(login.expect("reads work").into_inner().error, 0);
    }
    let not_serving = (ServingStatus::NotServing as i32, 503);
    eventually("both health surfaces to say not serving", || async {
        (both_health_surfaces(&server).await == not_serving).then_some(())
    })
    .await;
    // Logins alone keep succeeding; they say nothing about writes.
    for _ in 0..20 {
        let reply = login(&mut client).await.expect("reads work");
        assert_eq!(reply.into_inner().error, 0);
    }
    assert_eq!(
        server.http_get("/healthz").await.0,
        503,
        "successful reads ended the write outage"
    );

    config_set(&redis, "maxmemory", "0").await;
    let serving = (ServingStatus::Serving as i32, 200);
    eventually("both health surfaces to say serving again", || async {
        (both_health_surfaces(&server).await == serving).then_some(())
    })
    .await;
}

#[tokio::test]
async fn logins_do_not_wait_behind_token_writes_that_wait_for_replicas() {
    use status_server::proto::{GetChatServerReq, LoginReq};
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let () = redis
        .query(redis::cmd("SET").arg("utoken_7").arg("seeded-token"))
        .await;
    // No replica will ever acknowledge: each token write holds its WAIT for 3 s.
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    config.min_replicas_ack = 1;
    config.command_timeout_ms = 3000;
    let server = TestServer::start(&config).await;
    let client = server.client().await;

    let mut placing = client.clone();
    let placed =
        tokio::spawn(async move { placing.get_chat_server(GetChatServerReq { uid: 8 }).await });
    eventually("Redis to hold the token write's WAIT", || async {
        let info: String = redis.query(redis::cmd("INFO").arg("clients")).await;
        info.contains("blocked_clients:1").then_some(())
    })
    .await;
    let login = client
        .clone()
        .login(LoginReq {
            uid: 7,
            token: "seeded-token".to_string(),
        })
        .await
        .expect("Login answers")
        .into_inner();
    assert_eq!(login.error, 0);
    assert!(
        !placed.is_finished(),
        "Login was answered only after the WAIT in front of it ended"
    );
    let refused = placed
        .await
        .expect("the GetChatServer task")
        .expect_err("no replica acknowledged the token");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
}
