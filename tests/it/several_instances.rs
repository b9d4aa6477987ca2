//! Several status-server instances sharing one Redis (docs/contract.md §5):
//! tokens are shared through Redis, and the load split stays even although
//! each instance counts only its own assignments since its own last poll.
//!
//! The chat servers are idle: their counts in the hash stay 0, as no
//! ChatServer updates them. Every poll of an instance thus forgets its
//! assignments, yet its equal servers keep taking turns, so each instance
//! splits its own third of the calls evenly, and so does the sum.

use std::collections::HashMap;

use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq, LoginRsp};
use testkit::*;
use tonic::transport::Channel;

/// Three in-process instances with the same config on one Redis where
/// chat servers `a`, `b`, `c` (ports 9001-9003) are alive and idle (count 0).
async fn three_instances() -> (RedisServer, Vec<TestServer>) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "0"), ("c", "0")]).await;
    let config = TestConfig::new(
        &redis,
        chat_servers(&[("a", 9001), ("b", 9002), ("c", 9003)]),
    );
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(TestServer::start(&config).await);
    }
    (redis, instances)
}

async fn clients_of(instances: &[TestServer]) -> Vec<StatusServiceClient<Channel>> {
    let mut clients = Vec::new();
    for instance in instances {
        clients.push(instance.client().await);
    }
    clients
}

#[tokio::test]
async fn a_token_minted_by_one_instance_logs_in_on_every_other() {
    let (_redis, instances) = three_instances().await;
    let mut clients = clients_of(&instances).await;
    for minter in 0..clients.len() {
        let uid = i32::try_from(minter + 1).expect("three instances");
        let token = clients[minter]
            .get_chat_server(GetChatServerReq { uid })
            .await
            .expect("placed")
            .into_inner()
            .token;
        for (checker, client) in clients.iter_mut().enumerate() {
            let rsp = client
                .login(LoginReq {
                    uid,
                    token: token.clone(),
                })
                .await
                .expect("Login answers")
                .into_inner();
            assert_eq!(
                rsp,
                LoginRsp {
                    error: 0,
                    uid,
                    token: token.clone()
                },
                "token of instance {minter} checked by instance {checker}"
            );
        }
    }
}

/// The instance that call `uid` goes to: round-robin over `clients`.
fn instance_for(
    clients: &[StatusServiceClient<Channel>],
    uid: i32,
) -> StatusServiceClient<Channel> {
    let index = usize::try_from(uid).expect("uids are positive") % clients.len();
    clients[index].clone()
}

/// Asserts that 600 placements put 200 +- 20 users on each of a, b and c.
fn assert_even_split(ports: Vec<Result<String, tonic::Status>>, what: &str) {
    let mut per_port: HashMap<String, usize> = HashMap::new();
    for port in ports {
        *per_port
            .entry(port.expect("every call is placed"))
            .or_default() += 1;
    }
    println!("{what}: {per_port:?}");
    for port in ["9001", "9002", "9003"] {
        let n = per_port.get(port).copied().unwrap_or(0);
        assert!(
            (180..=220).contains(&n),
            "{what}: port {port} got {n}: {per_port:?}"
        );
    }
}

#[tokio::test]
async fn calls_one_at_a_time_round_robin_over_three_instances_spread_evenly() {
    let (_redis, instances) = three_instances().await;
    let clients = clients_of(&instances).await;
    let mut ports = Vec::new();
    for uid in 1..=600 {
        ports.push(placed_port(&mut instance_for(&clients, uid), uid).await);
    }
    assert_even_split(
        ports,
        "600 calls one at a time, round-robin over 3 instances",
    );
}

#[tokio::test]
async fn calls_all_at_once_round_robin_over_three_instances_spread_evenly() {
    let (_redis, instances) = three_instances().await;
    let clients = clients_of(&instances).await;
    // Each instance balances its own 200 calls while they are in flight.
    let calls = (1..=600).map(|uid| {
        let mut client = instance_for(&clients, uid);
        async move { placed_port(&mut client, uid).await }
    });
    let ports = futures_util::future::join_all(calls).await;
    assert_even_split(ports, "600 calls at once, round-robin over 3 instances");
}
