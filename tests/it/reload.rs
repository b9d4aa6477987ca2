//! Live reload (SIGHUP, the Admin API's Reload, or the control event they become): what
//! changes, what stays, and no dropped request. In-process, except the tests that read the
//! log line a bad file leaves.

use std::collections::HashSet;

use status_server::admin_proto::ReloadReq;
use status_server::admin_proto::admin_client::AdminClient;
use status_server::proto::status_service_client::StatusServiceClient;
use testkit::*;
use tonic::transport::Channel;

async fn port_for(client: &mut StatusServiceClient<Channel>, uid: i32) -> String {
    placed_port(client, uid).await.expect("placed")
}

/// Sends SIGHUP and waits until the `n`-th reload of this server finished.
async fn reload_process(server: &mut ServerProcess, n: usize) {
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
    let mut config = TestConfig::new(&redis, chat_servers(&[("a", 7001), ("b", 7002)]));
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;
    assert_eq!(port_for(&mut client, 1).await, "7001");

    // a leaves, c joins, b moves to a new port and becomes the emptiest.
    set_loads(&redis, &[("b", "0"), ("c", "50")]).await;
    config.servers = chat_servers(&[("b", 7102), ("c", 7003)]);
    server.rewrite_config(&config.to_toml());
    assert!(server.reload().await.applied);

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
    let mut server = ServerProcess::start(&config).await;
    let mut client = server.client().await;

    config.token_ttl_secs = 50;
    server.rewrite_config(&config.to_toml());
    reload_process(&mut server, 1).await;
    port_for(&mut client, 5).await;
    let ttl = redis.ttl("utoken_5").await;
    assert!((45..=50).contains(&ttl), "new TTL applies: {ttl}");

    server.rewrite_config("[redis]\ntoken_ttl_secs = \"soon\"\n");
    reload_process(&mut server, 2).await;
    let line = server.wait_for_log("reload failed").await;
    assert!(line.contains("keeping the running config"), "{line}");
    assert!(line.contains("token_ttl_secs"), "{line}");
    port_for(&mut client, 6).await;
    let ttl = redis.ttl("utoken_6").await;
    assert!((45..=50).contains(&ttl), "running config kept: {ttl}");
}

#[tokio::test]
async fn a_failed_admin_reload_answers_where_and_only_the_log_says_what() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("a", 7001)]);
    let mut server = ServerProcess::start(&config).await;
    let mut admin =
        AdminClient::new(channel_to(server.admin_addr.expect("the Admin port is on")).await);

    // What a file may hold that no Admin caller should read, on its line 2.
    const SECRET: &str = "s3cret-in-the-file";
    server.rewrite_config(&format!("[redis]\ntoken_ttl_secs = \"{SECRET}\"\n"));
    let answer = admin
        .reload(ReloadReq {})
        .await
        .expect("Reload answers")
        .into_inner();
    let path = server.config_path().display().to_string();
    assert!(!answer.applied);
    assert!(
        answer.message.starts_with("reload failed"),
        "{}",
        answer.message
    );
    assert!(
        answer.message.contains(&format!("{path}: line 2: ")),
        "{}",
        answer.message
    );
    assert!(
        !answer.message.contains(SECRET) && !answer.message.contains("token_ttl_secs"),
        "{}",
        answer.message
    );

    let logged = server.wait_for_log("reload failed").await;
    for expected in [path.as_str(), "line 2", "token_ttl_secs", SECRET] {
        assert!(logged.contains(expected), "{expected} not in {logged}");
    }
    port_for(&mut server.client().await, 1).await;
}

#[tokio::test]
async fn listen_change_needs_a_restart() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("a", 7001)]);
    let server = TestServer::start(&config).await;
    let text = config
        .to_toml()
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    server.rewrite_config(&text);
    let outcome = server.reload().await;
    assert!(outcome.applied, "{outcome:?}");
    assert!(
        outcome
            .restart_needed
            .iter()
            .any(|key| key.contains("server.listen (127.0.0.1:0 -> 127.0.0.1:1)")),
        "{outcome:?}"
    );
    // Still serving on the old address.
    port_for(&mut server.client().await, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_drop_no_request() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "0")]).await;
    let mut config = TestConfig::new(&redis, chat_servers(&[("a", 7001), ("b", 7002)]));
    let server = TestServer::start(&config).await;
    let client = server.client().await;

    // Workers call in a loop until every reload is done.
    let load = LoadWorkers::start(client, 16, 100_000);
    load.wait_for_calls(100).await;
    for (n, ttl) in [(1, 100), (2, 200), (3, 300)] {
        config.token_ttl_secs = ttl;
        server.rewrite_config(&config.to_toml());
        let outcome = server.reload().await;
        assert!(outcome.applied, "reload {n}: {outcome:?}");
    }
    load.wait_for_calls(load.calls_done() + 100).await;
    let outcomes = load.stop().await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|(uid, outcome)| Some((uid, outcome.as_ref().err()?)))
        .collect();
    println!("{} calls across 3 reloads, none failed", outcomes.len());
    assert!(
        failed.is_empty(),
        "{} calls failed: {:?}",
        failed.len(),
        failed.first()
    );
}

/// Replaces the file at `path` with a FIFO that nobody writes: opening it for reading would
/// wait for a writer forever.
fn replace_with_fifo(path: &std::path::Path) {
    std::fs::remove_file(path).expect("removing the config file");
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("running mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[tokio::test]
async fn a_fifo_as_config_is_refused_and_the_server_keeps_serving_and_stops() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("a", 7001)]);
    let server = TestServer::start(&config).await;
    replace_with_fifo(server.config_path());

    let outcome = server.reload().await;
    assert!(!outcome.applied, "{outcome:?}");
    assert!(
        outcome.message.ends_with("cannot read: not a regular file"),
        "{outcome:?}"
    );
    // A fresh client is served at once, and a stop is honoured.
    let started = std::time::Instant::now();
    port_for(&mut server.client().await, 1).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(server.stop().await.is_ok());
}

#[tokio::test]
async fn sighup_on_a_fifo_config_then_sigterm_stops_the_process() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("a", 7001)]);
    let mut server = ServerProcess::start(&config).await;
    replace_with_fifo(server.config_path());
    reload_process(&mut server, 1).await;
    let line = server.wait_for_log("reload failed").await;
    assert!(line.contains("not a regular file"), "{line}");
    port_for(&mut server.client().await, 1).await;
    server.signal("TERM");
    let status = server.wait_exit().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_config_over_1_mib_is_refused_and_the_running_one_kept() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("a", 7001)]);
    config.token_ttl_secs = 1000;
    let server = TestServer::start(&config).await;
    let mut client = server.client().await;

    // A valid config, padded past the cap with a comment.
    config.token_ttl_secs = 50;
    let padded = format!("{}\n#{}\n", config.to_toml(), "x".repeat(1024 * 1024));
    server.rewrite_config(&padded);
    let outcome = server.reload().await;
    assert!(!outcome.applied, "{outcome:?}");
    assert!(
        outcome.message.ends_with("cannot read: larger than 1 MiB"),
        "{outcome:?}"
    );
    port_for(&mut client, 5).await;
    let ttl = redis.ttl("utoken_5").await;
    assert!((995..=1000).contains(&ttl), "running config kept: {ttl}");
}
