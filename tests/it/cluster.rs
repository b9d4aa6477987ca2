//! `redis.mode = "cluster"` against a real Redis Cluster (3 masters + 3
//! replicas; docs/contract.md §5): token keys land wherever the cluster
//! hashes them, exactly one command per call summed over the nodes, and a
//! killed master's promoted replica serves again within the bound.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use status_server::proto::{GetChatServerReq, LoginReq};
use testkit::*;

const COMMAND_TIMEOUT_MS: u64 = 500;

async fn serve_on(cluster: &RedisCluster) -> TestServer {
    let hash_node = RedisNode::new(cluster.master_of_key("logincount").await);
    hash_node
        .query::<()>(redis::cmd("HSET").arg("logincount").arg("chat1").arg(0))
        .await;
    let mut config = TestConfig::located(
        cluster.redis_location(),
        vec![ChatServerEntry::new("chat1", 8090)],
    );
    config.command_timeout_ms = COMMAND_TIMEOUT_MS;
    // Polls are counted apart from the calls below.
    config.poll_interval_ms = 60_000;
    TestServer::start(&config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_spread_over_the_masters_one_command_per_call_and_a_failover_is_followed() {
    let mut cluster = RedisCluster::start().await;
    let server = serve_on(&cluster).await;
    let mut client = server.client().await;
    // The first call also waits for the start-up poll to have connected.
    let first = client
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await
        .expect("placed")
        .into_inner();
    assert_eq!(first.error, 0);

    cluster.reset_stats().await;
    let calls = 300;
    let mut tokens = Vec::new();
    let placed = (1..=calls).map(|uid| {
        let mut client = client.clone();
        async move {
            let rsp = client
                .get_chat_server(GetChatServerReq { uid })
                .await
                .unwrap_or_else(|status| panic!("uid {uid}: {status:?}"))
                .into_inner();
            (uid, rsp.token)
        }
    });
    tokens.extend(futures_util::future::join_all(placed).await);
    for (uid, token) in &tokens {
        let rsp = client
            .login(LoginReq {
                uid: *uid,
                token: token.clone(),
            })
            .await
            .expect("Login")
            .into_inner();
        assert_eq!(rsp.error, 0, "uid {uid}");
    }
    let calls_seen = cluster.master_command_calls().await;
    println!("commands on the masters for {calls} GetChatServer + {calls} Login: {calls_seen:?}");
    assert_eq!(
        calls_seen.get("set").copied(),
        Some(calls as u64),
        "{calls_seen:?}"
    );
    assert_eq!(
        calls_seen.get("get").copied(),
        Some(calls as u64),
        "{calls_seen:?}"
    );

    let mut owners = HashSet::new();
    for (uid, _) in &tokens {
        owners.insert(cluster.master_of_key(&format!("utoken_{uid}")).await);
    }
    assert_eq!(owners.len(), 3, "token keys on every master: {owners:?}");

    // Kill the master of one uid's slot (not the load hash's, so placing
    // still works meanwhile for other slots), and wait for its promotion.
    let hash_owner = cluster.master_of_key("logincount").await;
    let (victim_uid, victim) = {
        let mut found = None;
        for (uid, _) in &tokens {
            let owner = cluster.master_of_key(&format!("utoken_{uid}")).await;
            if owner != hash_owner {
                found = Some((*uid, owner));
                break;
            }
        }
        found.expect("a uid whose key is not on the load hash's master")
    };
    cluster.kill_master(victim).await;
    let (promoted, took) = cluster.wait_for_promotion(victim).await;
    let promoted_at = Instant::now();
    let recovered = eventually("GetChatServer on the failed slot to succeed again", || {
        let mut client = client.clone();
        async move {
            client
                .get_chat_server(GetChatServerReq { uid: victim_uid })
                .await
                .ok()
                .map(|_| promoted_at.elapsed())
        }
    })
    .await;
    println!(
        "cluster failover: master {victim} -> {promoted} promoted after {took:?}; \
         calls on its slots succeed again {recovered:?} after the promotion"
    );
    let bound = Duration::from_millis(COMMAND_TIMEOUT_MS) + Duration::from_secs(2);
    assert!(
        recovered <= bound,
        "recovered within {bound:?}: {recovered:?}"
    );
}
