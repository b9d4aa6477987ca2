//! Balancing an operator can steer (docs/contract.md §7), against a real Redis
//! and the server in-process: a capacity that holds under a burst, the weighted
//! split, drains by config and by Admin across a reload, token revocation, and a
//! strategy switched by reload under load.
//!
//! The chat servers are idle: their counts in the hash stay 0, as no ChatServer
//! updates them. Tests that count exact splits poll rarely, so that every call
//! falls between the same two polls, as the contract's figures assume (a poll
//! replaces this instance's assignments with the hash's count, 0 here).

use std::collections::HashMap;

use futures_util::future::join_all;
use status_server::admin_proto::admin_client::AdminClient;
use status_server::admin_proto::{
    ListServersReq, ListServersRsp, RevokeTokenReq, SetDrainingReq, SetDrainingRsp,
};
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use testkit::*;
use tonic::Code;
use tonic::transport::Channel;

/// A poll interval no test outlasts: the first poll, at start, is the only one.
const NO_POLL_DURING_THE_TEST_MS: u64 = 600_000;

async fn admin_of(server: &TestServer) -> AdminClient<Channel> {
    server.admin().await
}

async fn list(admin: &mut AdminClient<Channel>) -> ListServersRsp {
    admin
        .list_servers(ListServersReq {})
        .await
        .expect("ListServers")
        .into_inner()
}

async fn set_draining(
    admin: &mut AdminClient<Channel>,
    name: &str,
    draining: bool,
) -> Result<SetDrainingRsp, tonic::Status> {
    admin
        .set_draining(SetDrainingReq {
            name: name.to_string(),
            draining,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// `calls` GetChatServer calls all at once (uids from `first_uid`): how many
/// went to each port, and the refusals.
async fn burst(
    client: &StatusServiceClient<Channel>,
    first_uid: i32,
    calls: i32,
) -> (HashMap<String, usize>, Vec<tonic::Status>) {
    let placed = join_all((first_uid..first_uid + calls).map(|uid| {
        let mut client = client.clone();
        async move { placed_port(&mut client, uid).await }
    }))
    .await;
    let mut per_port = HashMap::new();
    let mut refused = Vec::new();
    for outcome in placed {
        match outcome {
            Ok(port) => *per_port.entry(port).or_default() += 1,
            Err(status) => refused.push(status),
        }
    }
    (per_port, refused)
}

/// The ports `calls` calls, one at a time, were placed on (uids from `first_uid`).
async fn one_at_a_time(
    client: &mut StatusServiceClient<Channel>,
    first_uid: i32,
    calls: i32,
) -> HashMap<String, usize> {
    let mut per_port = HashMap::new();
    for uid in first_uid..first_uid + calls {
        let port = placed_port(client, uid).await.expect("placed");
        *per_port.entry(port).or_default() += 1;
    }
    per_port
}

/// The value of one sample in the Prometheus text (`name{labels}` exactly).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

#[tokio::test]
async fn a_burst_of_100_onto_max_connections_10_places_exactly_10() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("small", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        vec![ChatServerEntry::new("small", 9101).max_connections(10)],
    );
    config.poll_interval_ms = NO_POLL_DURING_THE_TEST_MS;
    let server = TestServer::start(&config).await;
    let client = server.client().await;

    let (per_port, refused) = burst(&client, 1, 100).await;
    println!("100 calls at once onto max_connections = 10: {per_port:?}");
    assert_eq!(per_port.get("9101"), Some(&10), "{per_port:?}");
    assert_eq!(refused.len(), 90);
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(
            status.message(),
            "every chat server is full or draining (small: full: load 10 of max 10)"
        );
    }
    // Exactly the placed users have tokens: a refusal writes nothing.
    let calls = redis.command_calls().await;
    assert_eq!(calls.get("set"), Some(&10), "{calls:?}");

    let metrics = server.http_get("/metrics").await.1;
    assert_eq!(
        sample(&metrics, "status_placements_refused_full_total"),
        Some(90.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "status_requests_total{outcome=\"resource_exhausted\",protocol=\"grpc\",rpc=\"GetChatServer\"}"
        ),
        Some(90.0)
    );
    assert_eq!(
        sample(&metrics, "status_chat_server_capacity{server=\"small\"}"),
        Some(10.0)
    );
    let listed = list(&mut admin_of(&server).await).await;
    let small = &listed.servers[0];
    assert_eq!((small.max_connections, small.choosable), (10, false));
    assert_eq!(small.assigned_since_poll, 10);
}

#[tokio::test]
async fn weighted_splits_600_calls_100_200_300() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("w1", "0"), ("w2", "0"), ("w3", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("w1", 9201).weight(1),
            ChatServerEntry::new("w2", 9202).weight(2),
            ChatServerEntry::new("w3", 9203).weight(3),
        ],
    );
    config.strategy = Some("weighted".to_string());
    config.poll_interval_ms = NO_POLL_DURING_THE_TEST_MS;

    let assert_split = |per_port: &HashMap<String, usize>, what: &str| {
        println!("{what}: {per_port:?}");
        for (port, expected) in [("9201", 100), ("9202", 200), ("9203", 300)] {
            let n = per_port.get(port).copied().unwrap_or(0);
            assert!(
                n.abs_diff(expected) <= 10,
                "{what}: port {port} got {n}, expected {expected} +- 10: {per_port:?}"
            );
        }
    };
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;
    assert_split(
        &one_at_a_time(&mut client, 1, 600).await,
        "600 calls one at a time",
    );

    let server = TestServer::start(&config).await;
    let (per_port, refused) = burst(&server.client().await, 1, 600).await;
    assert!(refused.is_empty(), "{:?}", refused.first());
    assert_split(&per_port, "600 calls at once");
}

#[tokio::test]
async fn drains_by_config_and_by_admin_survive_a_reload_and_leave_login_alone() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "0"), ("c", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("a", 9301).draining(true),
            ChatServerEntry::new("b", 9302),
            ChatServerEntry::new("c", 9303),
        ],
    );
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;
    let mut admin = admin_of(&server).await;

    // A user placed before any Admin drain, whose token must keep working.
    let placed_on_b = client
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await
        .expect("placed")
        .into_inner();
    let ports = one_at_a_time(&mut client, 2, 40).await;
    assert!(!ports.contains_key("9301"), "a drains by config: {ports:?}");

    let drained = set_draining(&mut admin, "b", true).await.expect("b exists");
    assert_eq!(
        (
            drained.draining,
            drained.drain_from_config,
            drained.drain_from_admin
        ),
        (true, false, true)
    );
    let ports = one_at_a_time(&mut client, 100, 20).await;
    assert_eq!(ports.keys().collect::<Vec<_>>(), ["9303"], "{ports:?}");
    let listed = list(&mut admin).await;
    let drains: Vec<(&str, bool, bool, bool)> = listed
        .servers
        .iter()
        .map(|s| {
            let from = (s.drain_from_config, s.drain_from_admin);
            (s.name.as_str(), s.draining, from.0, from.1)
        })
        .collect();
    assert_eq!(
        drains,
        [
            ("a", true, true, false),
            ("b", true, false, true),
            ("c", false, false, false)
        ]
    );
    let metrics = server.http_get("/metrics").await.1;
    assert_eq!(
        sample(&metrics, "status_chat_server_draining{server=\"b\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "status_chat_server_draining{server=\"c\"}"),
        Some(0.0)
    );

    // Login is unaffected by draining.
    let login = client
        .login(LoginReq {
            uid: 1,
            token: placed_on_b.token.clone(),
        })
        .await
        .expect("Login answers")
        .into_inner();
    assert_eq!(login.error, 0, "{login:?}");

    // The config stops draining a; the Admin drain of b survives the reload.
    config.servers[0].draining = Some(false);
    server.rewrite_config(&config.to_toml());
    assert!(server.reload().await.applied);
    let ports = one_at_a_time(&mut client, 200, 40).await;
    assert!(!ports.contains_key("9302"), "b still drains: {ports:?}");
    assert!(ports.contains_key("9301"), "a takes users again: {ports:?}");
    let b = list(&mut admin).await.servers.remove(1);
    assert_eq!((b.name.as_str(), b.drain_from_admin), ("b", true));

    // Everything drained: RESOURCE_EXHAUSTED naming each server and why.
    for name in ["a", "c"] {
        set_draining(&mut admin, name, true).await.expect("exists");
    }
    let refused = placed_port(&mut client, 300).await.expect_err("all drain");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(
        refused.message(),
        "every chat server is full or draining (a: draining (admin); b: draining (admin); \
         c: draining (admin))"
    );

    let undrained = set_draining(&mut admin, "b", false).await.expect("exists");
    assert!(!undrained.draining);
    assert_eq!(
        placed_port(&mut client, 301).await.expect("b again"),
        "9302"
    );

    let unknown = set_draining(&mut admin, "nope", true)
        .await
        .expect_err("not configured");
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(unknown.message(), "no chat server is named \"nope\"");
}

#[tokio::test]
async fn a_revoked_token_logs_in_as_1011_and_costs_one_del() {
    let (redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    let mut admin = admin_of(&server).await;
    let token = client
        .get_chat_server(GetChatServerReq { uid: 5 })
        .await
        .expect("placed")
        .into_inner()
        .token;
    let login = |client: &mut StatusServiceClient<Channel>| {
        let mut client = client.clone();
        let token = token.clone();
        async move {
            client
                .login(LoginReq { uid: 5, token })
                .await
                .expect("Login answers")
                .into_inner()
                .error
        }
    };
    assert_eq!(login(&mut client).await, 0);

    redis.reset_stats().await;
    let revoke = |uid| {
        let mut admin = admin.clone();
        async move { admin.revoke_token(RevokeTokenReq { uid }).await }
    };
    assert!(revoke(5).await.expect("RevokeToken").into_inner().revoked);
    assert_eq!(redis.stored_token(5).await, None);
    assert_eq!(login(&mut client).await, 1011);
    assert!(
        !revoke(5).await.expect("RevokeToken").into_inner().revoked,
        "nothing left to revoke"
    );
    let calls = redis.command_calls().await;
    assert_eq!(calls.get("del"), Some(&2), "one DEL per revoke: {calls:?}");

    for uid in [0, -1] {
        let status = revoke(uid).await.expect_err("uid <= 0");
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    assert_eq!(
        redis.command_calls().await.get("del"),
        Some(&2),
        "no DEL for uid <= 0"
    );
    assert!(
        list(&mut admin).await.servers[0].choosable,
        "revoking touches no server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_strategy_by_reload_under_load_fails_no_call() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "0"), ("c", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("a", 9401).weight(1),
            ChatServerEntry::new("b", 9402).weight(2),
            ChatServerEntry::new("c", 9403)
                .weight(3)
                .max_connections(1000),
        ],
    );
    let server = TestServer::start(&config).await;
    let mut admin = admin_of(&server).await;
    assert_eq!(list(&mut admin).await.strategy, "least_loaded");

    let load = LoadWorkers::start(server.client().await, 16, 100_000);
    load.wait_for_calls(100).await;
    for strategy in ["weighted", "p2c", "least_loaded", "p2c"] {
        config.strategy = Some(strategy.to_string());
        server.rewrite_config(&config.to_toml());
        let outcome = server.reload().await;
        assert!(outcome.applied, "{strategy}: {outcome:?}");
        assert_eq!(list(&mut admin).await.strategy, strategy);
        load.wait_for_calls(load.calls_done() + 100).await;
    }
    let outcomes = load.stop().await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|(uid, outcome)| Some((uid, outcome.as_ref().err()?)))
        .collect();
    println!(
        "{} calls across 4 strategy switches, none failed",
        outcomes.len()
    );
    assert!(
        failed.is_empty(),
        "{} calls failed: {:?}",
        failed.len(),
        failed.first()
    );
}
