//! Redis over TLS (docs/contract.md §6): `rediss://` with a CA of our own, with a client
//! certificate for a Redis that asks for one, a foreign CA refused, CA files replaced by a
//! reload, bad files refused at start; a cluster and a Sentinel set whose nodes speak TLS.

use std::time::{Duration, Instant};

use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use testkit::{
    ChatServerEntry, RedisCluster, RedisNode, RedisServer, SentinelSet, TestCa, TestConfig,
    TestServer, TlsRedisServer, run_to_exit, set_loads,
};
use tonic::Code;
use tonic::transport::Channel;

/// A config for `redis` (reached with its CA, and its client certificate when
/// `client_cert`), with one chat server that the test sets alive.
fn config(redis: &TlsRedisServer, client_cert: bool) -> TestConfig {
    TestConfig::located(
        redis.redis_location(client_cert),
        vec![ChatServerEntry::new("chat1", 8090)],
    )
}

/// GetChatServer then Login for `uid`; the token must be the one Redis holds.
async fn place_and_log_in(
    client: &mut StatusServiceClient<Channel>,
    redis: &TlsRedisServer,
    uid: i32,
) {
    let placed = client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .expect("GetChatServer through the TLS Redis")
        .into_inner();
    assert_eq!((placed.error, placed.port.as_str()), (0, "8090"));
    assert_eq!(redis.stored_token(uid).await, Some(placed.token.clone()));
    let login = client
        .login(LoginReq {
            uid,
            token: placed.token.clone(),
        })
        .await
        .expect("Login through the TLS Redis")
        .into_inner();
    assert_eq!(
        (login.error, login.uid, login.token),
        (0, uid, placed.token)
    );
}

/// The gRPC code of a GetChatServer that must fail.
async fn refused_code(client: &mut StatusServiceClient<Channel>) -> Code {
    client
        .get_chat_server(GetChatServerReq { uid: 9 })
        .await
        .expect_err("Redis must not be reachable")
        .code()
}

/// Mean time of `n` GetChatServer calls, one after the other.
async fn mean_call(client: &mut StatusServiceClient<Channel>, n: u32) -> Duration {
    let started = Instant::now();
    for uid in 1..=n {
        let uid = i32::try_from(uid).expect("a small uid");
        client
            .get_chat_server(GetChatServerReq { uid })
            .await
            .expect("placed");
    }
    started.elapsed() / n
}

#[tokio::test]
async fn calls_go_through_a_tls_redis_trusted_by_its_ca() {
    let redis = TlsRedisServer::start(false).await;
    redis.set_loads(&[("chat1", "0")]).await;
    let server = TestServer::start(&config(&redis, false)).await;
    let mut client = server.client().await;
    place_and_log_in(&mut client, &redis, 42).await;

    // What TLS costs a call, printed for the README (`--nocapture`); never asserted.
    let plain = RedisServer::start().await;
    set_loads(&plain, &[("chat1", "0")]).await;
    let plain_server = TestServer::start(&TestConfig::new(
        &plain,
        vec![ChatServerEntry::new("chat1", 8090)],
    ))
    .await;
    let mut plain_client = plain_server.client().await;
    mean_call(&mut plain_client, 20).await;
    mean_call(&mut client, 20).await;
    let (over_plain, over_tls) = (
        mean_call(&mut plain_client, 200).await,
        mean_call(&mut client, 200).await,
    );
    eprintln!("GetChatServer, 200 in a row: plain Redis {over_plain:?}, TLS Redis {over_tls:?}");
}

#[tokio::test]
async fn a_redis_that_asks_for_client_certificates_gets_ours() {
    let redis = TlsRedisServer::start(true).await;
    redis.set_loads(&[("chat1", "0")]).await;
    let server = TestServer::start(&config(&redis, true)).await;
    place_and_log_in(&mut server.client().await, &redis, 43).await;

    // Without one, the same Redis lets us in no more: as if it were down (docs/contract.md §3).
    let without = TestServer::start(&config(&redis, false)).await;
    assert_eq!(
        refused_code(&mut without.client().await).await,
        Code::Unavailable
    );
}

#[tokio::test]
async fn a_redis_whose_certificate_a_foreign_ca_signed_is_refused() {
    let redis = TlsRedisServer::start(false).await;
    redis.set_loads(&[("chat1", "0")]).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let foreign = dir.path().join("foreign-ca.crt");
    std::fs::write(&foreign, TestCa::new("someone else's CA").pem()).expect("writing the CA");
    let location = format!("url = \"{}\"\ntls_ca = {foreign:?}", redis.url());
    let server = TestServer::start(&TestConfig::located(
        location,
        vec![ChatServerEntry::new("chat1", 8090)],
    ))
    .await;
    let mut client = server.client().await;
    assert_eq!(refused_code(&mut client).await, Code::Unavailable);

    // The right CA written over the file, then a reload: the file is read again and, as
    // it holds another CA now, a new connection uses it.
    std::fs::copy(redis.path("ca.crt"), &foreign).expect("replacing the CA file");
    let outcome = server.reload().await;
    assert!(outcome.applied, "{outcome:?}");
    testkit::eventually("calls through the TLS Redis after the reload", || {
        let mut client = client.clone();
        async move {
            client
                .get_chat_server(GetChatServerReq { uid: 44 })
                .await
                .ok()
        }
    })
    .await;
    place_and_log_in(&mut client, &redis, 45).await;

    // A CA file that no longer loads: the reload is refused and the running link stays.
    std::fs::write(&foreign, "not a certificate").expect("spoiling the CA file");
    let outcome = server.reload().await;
    assert!(!outcome.applied, "{outcome:?}");
    assert!(
        outcome.message.contains("redis.tls_ca") && outcome.message.contains("foreign-ca.crt"),
        "{outcome:?}"
    );
    place_and_log_in(&mut client, &redis, 46).await;
}

#[test]
fn bad_tls_files_stop_the_start_with_one_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let not_pem = dir.path().join("not-pem.crt");
    std::fs::write(&not_pem, "hello").expect("writing a file");
    let ca = TestCa::new("a CA");
    let (cert, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
    let leaf = ca.client("status-server");
    std::fs::write(&cert, &leaf.cert_pem).expect("writing the certificate");
    // Another certificate's key.
    std::fs::write(&key, ca.client("someone else").key_pem).expect("writing the key");
    let missing = dir.path().join("missing.crt");
    // A FIFO: opening it would wait for a writer for ever.
    let fifo = dir.path().join("fifo.crt");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {fifo:?}");
    for (lines, key_name, file) in [
        (format!("tls_ca = {not_pem:?}"), "redis.tls_ca", &not_pem),
        (format!("tls_ca = {missing:?}"), "redis.tls_ca", &missing),
        (format!("tls_ca = {fifo:?}"), "redis.tls_ca", &fifo),
        (
            format!("tls_cert = {not_pem:?}\ntls_key = {key:?}"),
            "redis.tls_cert",
            &not_pem,
        ),
        (
            format!("tls_cert = {cert:?}\ntls_key = {key:?}"),
            "redis.tls_key",
            &key,
        ),
    ] {
        let config = TestConfig::located(
            format!("url = \"rediss://127.0.0.1:1\"\n{lines}"),
            vec![ChatServerEntry::new("chat1", 8090)],
        )
        .to_toml();
        let (status, stderr) = run_to_exit(&config);
        assert_eq!(status.code(), Some(1), "{lines}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{lines}: one error line: {stderr}");
        assert!(
            errors[0].contains(key_name) && errors[0].contains(&*file.to_string_lossy()),
            "{lines}: names {key_name} and its file: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_calls_on_every_master() {
    let cluster = RedisCluster::start_tls().await;
    RedisNode::new(cluster.master_of_key("logincount").await)
        .query::<()>(redis::cmd("HSET").arg("logincount").arg("chat1").arg(0))
        .await;
    // Only the TLS ports: the slots the cluster hands out over TLS are TLS ports too.
    let server = TestServer::start(&TestConfig::located(
        cluster.redis_location(),
        vec![ChatServerEntry::new("chat1", 8090)],
    ))
    .await;
    let mut client = server.client().await;
    cluster
        .places_and_logs_in_on_every_master(&mut client, "through the TLS cluster")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_sentinel_set_names_a_master_reached_over_tls() {
    let set = SentinelSet::start_tls().await;
    let master = set.master().await;
    master
        .query::<()>(redis::cmd("HSET").arg("logincount").arg("chat1").arg(0))
        .await;
    // The sentinels' TLS ports only; they name the master by its TLS port.
    let server = TestServer::start(&TestConfig::located(
        set.redis_location(),
        vec![ChatServerEntry::new("chat1", 8090)],
    ))
    .await;
    let mut client = server.client().await;
    let placed = client
        .get_chat_server(GetChatServerReq { uid: 61 })
        .await
        .expect("GetChatServer through the TLS master")
        .into_inner();
    assert_eq!(master.stored_token(61).await, Some(placed.token.clone()));
    let login = client
        .login(LoginReq {
            uid: 61,
            token: placed.token,
        })
        .await
        .expect("Login through the TLS master")
        .into_inner();
    assert_eq!(login.error, 0);
}
