//! `redis.mode = "cluster"` against a real Redis Cluster (3 masters + 3
//! replicas; docs/contract.md §5): token keys land wherever the cluster
//! hashes them, exactly one command per call summed over the nodes, and a
//! killed or frozen master's promoted replica serves again within the bound.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use testkit::*;
use tonic::transport::Channel;

/// Whether GetChatServer for `uid` placed it (`error = 0`).
async fn placed(mut client: StatusServiceClient<Channel>, uid: i32) -> bool {
    client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .is_ok_and(|rsp| rsp.get_ref().error == 0)
}

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

/// A frozen master (SIGSTOP, a hung host: its port accepts connections,
/// nothing answers) gives the link timeouts, never a connection error. With
/// calls running all along, calls on its slots must still reach the
/// promoted replica within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_masters_promoted_replica_serves_within_the_bound() {
    let mut cluster = RedisCluster::start().await;
    let server = serve_on(&cluster).await;
    let client = server.client().await;
    // A uid whose key is not on the load hash's master, so that the hash
    // stays readable.
    let hash_owner = cluster.master_of_key("logincount").await;
    let mut victim = None;
    for uid in 1..=100 {
        let owner = cluster.master_of_key(&format!("utoken_{uid}")).await;
        if owner != hash_owner {
            victim = Some((uid, owner));
            break;
        }
    }
    let (victim_uid, victim) = victim.expect("one of 100 uids hashes to another master");
    // Also waits for the start-up poll to have connected.
    eventually("a first GetChatServer on the victim's slot", || {
        let client = client.clone();
        async move { placed(client, victim_uid).await.then_some(()) }
    })
    .await;

    // Calls keep coming on the victim's slot before, during and after the
    // failover: their timeouts are what the link reacts to.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic: Vec<_> = (0..4)
        .map(|_| {
            let (client, stop, ok, failed) =
                (client.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let counter = if placed(client.clone(), victim_uid).await {
                        &ok
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    cluster.freeze_master(victim).await;
    // The promotion counts once every live node agrees on it; a rebuild
    // that read the slots from one that agreed earlier may be ahead of it.
    let (promoted, took) = cluster.wait_for_promotion(victim).await;
    let promoted_at = Instant::now();
    let bound = Duration::from_millis(COMMAND_TIMEOUT_MS) + Duration::from_secs(2);
    // Waits past the bound only by the last call's own deadline, so a link
    // that never recovers fails here within seconds.
    let recovered = loop {
        if placed(client.clone(), victim_uid).await {
            break promoted_at.elapsed();
        }
        assert!(
            promoted_at.elapsed() < bound,
            "calls on the slots of frozen master {victim} still fail {:?} after \
             {promoted} was promoted",
            promoted_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for task in traffic {
        task.await.expect("a traffic task ran to its end");
    }
    println!(
        "cluster freeze: master {victim} frozen -> {promoted} promoted after {took:?}; \
         calls on its slots succeed again {recovered:?} after the promotion, {:?} after \
         the freeze (calls of the traffic: {} ok, {} failed)",
        took + recovered,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert!(
        recovered <= bound,
        "recovered within {bound:?}: {recovered:?}"
    );
}
