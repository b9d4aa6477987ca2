//! Live reload on SIGHUP: what changes, what stays, and no dropped request.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use status_server::proto::GetChatServerReq;
use status_server::proto::status_service_client::StatusServiceClient;
use tonic::transport::Channel;

async fn port_for(client: &mut StatusServiceClient<Channel>, uid: i32) -> String {
    client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .expect("placed")
        .into_inner()
        .port
}

/// Sends SIGHUP and waits until the `n`-th reload of this server finished.
async fn reload(server: &mut StatusServer, n: usize) {
    server.signal("HUP");
    server
        .wait_for_nth_log(n, |l| {
            l.contains("config reloaded") || l.contains("reload failed")
        })
        .await;
}

#[tokio::test]
async fn servers_added_removed_and_moved_apply_live() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "100"), ("c", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("a", 7001),
            ChatServerEntry::new("b", 7002),
        ],
    );
    let mut server = StatusServer::start(&config).await;
    let mut client = server.client().await;
    assert_eq!(port_for(&mut client, 1).await, "7001");

    // a leaves, c joins, b moves to a new port and becomes the emptiest.
    set_loads(&redis, &[("b", "0"), ("c", "50")]).await;
    config.servers = vec![
        ChatServerEntry::new("b", 7102),
        ChatServerEntry::new("c", 7003),
    ];
    server.rewrite_config(&config.to_toml());
    reload(&mut server, 1).await;

    let ports: HashSet<String> = {
        let mut ports = HashSet::new();
        for uid in 10..40 {
            ports.insert(port_for(&mut client, uid).await);
        }
        ports
    };
    assert!(
        !ports.contains("7001"),
        "removed server still chosen: {ports:?}"
    );
    assert!(
        !ports.contains("7002"),
        "moved server's old port still used: {ports:?}"
    );
    assert!(ports.contains("7102"), "moved server not chosen: {ports:?}");
}

#[tokio::test]
async fn ttl_change_applies_and_a_bad_file_keeps_the_running_config() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("a", 7001)]);
    config.token_ttl_secs = 1000;
    let mut server = StatusServer::start(&config).await;
    let mut client = server.client().await;

    config.token_ttl_secs = 50;
    server.rewrite_config(&config.to_toml());
    reload(&mut server, 1).await;
    port_for(&mut client, 5).await;
    let ttl: i64 = redis::cmd("TTL")
        .arg("utoken_5")
        .query_async(&mut redis.conn().await)
        .await
        .expect("TTL");
    assert!((45..=50).contains(&ttl), "new TTL applies: {ttl}");

    server.rewrite_config("[redis]\ntoken_ttl_secs = \"soon\"\n");
    reload(&mut server, 2).await;
    let line = server.wait_for_log("reload failed").await;
    assert!(line.contains("keeping the running config"), "{line}");
    assert!(line.contains("token_ttl_secs"), "{line}");
    port_for(&mut client, 6).await;
    let ttl: i64 = redis::cmd("TTL")
        .arg("utoken_6")
        .query_async(&mut redis.conn().await)
        .await
        .expect("TTL");
    assert!((45..=50).contains(&ttl), "running config kept: {ttl}");
}

#[tokio::test]
async fn listen_change_needs_a_restart() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("a", 7001)]);
    let mut server = StatusServer::start(&config).await;
    let text = config
        .to_toml()
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    server.rewrite_config(&text);
    reload(&mut server, 1).await;
    server
        .wait_for_log("server.listen (127.0.0.1:0 -> 127.0.0.1:1)")
        .await;
    // Still serving on the old address.
    port_for(&mut server.client().await, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_drop_no_request() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("a", 7001),
            ChatServerEntry::new("b", 7002),
        ],
    );
    let mut server = StatusServer::start(&config).await;
    let client = server.client().await;

    // Workers call in a loop until every reload is done.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let mut client = client.clone();
            let stop = Arc::clone(&stop);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                let mut uid = w * 100_000 + 1;
                while !stop.load(Ordering::Relaxed) {
                    match client.get_chat_server(GetChatServerReq { uid }).await {
                        Ok(_) => ok += 1,
                        Err(status) => failed.push(status),
                    }
                    uid += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (ok, failed)
            })
        })
        .collect();
    let calls_past = |n: usize| {
        let done = Arc::clone(&done);
        move || {
            let count = done.load(Ordering::Relaxed);
            async move { (count >= n).then_some(count) }
        }
    };
    eventually("the load to run", calls_past(100)).await;
    for (n, ttl) in [(1, 100), (2, 200), (3, 300)] {
        config.token_ttl_secs = ttl;
        server.rewrite_config(&config.to_toml());
        reload(&mut server, n).await;
    }
    let after_reloads = done.load(Ordering::Relaxed);
    eventually(
        "the load to go on after the reloads",
        calls_past(after_reloads + 100),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for worker in workers {
        let (n, f) = worker.await.expect("worker task");
        ok += n;
        failed.extend(f);
    }
    println!("{ok} calls across 3 reloads, none failed");
    assert!(
        failed.is_empty(),
        "{} calls failed: {:?}",
        failed.len(),
        failed.first()
    );
}
