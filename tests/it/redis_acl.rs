//! Redis ACL users (docs/contract.md §6): the server logs in as the user of its URL, needs no
//! more than the commands and keys `ACL_RULES` grant, `STATUS_REDIS_PASSWORD` pairs with that
//! user, a wrong password answers UNAVAILABLE and says why, and no password ever shows in a
//! log line, in `/metrics` or in an Admin reply. In a cluster the user needs `CLUSTER SLOTS`
//! too.

use status_server::admin_proto::admin_client::AdminClient;
use status_server::admin_proto::{ListServersReq, ReloadReq, RevokeTokenReq};
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};
use testkit::{
    ChatServerEntry, RedisCluster, RedisNode, RedisServer, ServerProcess, TestConfig, TestServer,
    set_loads,
};
use tonic::Code;
use tonic::transport::Channel;

/// The rules of the `status` user: its own keys (tokens read and written, the load hash only
/// read) and the commands the server sends, nothing else. docs/security.md shows the same.
const ACL_RULES: &[&str] = &[
    "~utoken_*",
    "%R~logincount",
    "+get",
    "+set",
    "+del",
    "+exists",
    "+hmget",
    "+hstrlen",
    "+wait",
];

/// A Redis with chat1 alive, a `status` user with `password` and `ACL_RULES`, an `admin`
/// user for the test's own reads, and `default` off: nobody gets in without a user.
async fn acl_redis(password: &str) -> RedisServer {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let mut status = redis::cmd("ACL");
    status
        .arg("SETUSER")
        .arg("status")
        .arg("on")
        .arg(format!(">{password}"));
    for rule in ACL_RULES {
        status.arg(*rule);
    }
    redis.query::<()>(&status).await;
    redis
        .query::<()>(redis::cmd("ACL").arg(&[
            "SETUSER",
            "admin",
            "on",
            ">admin-pw",
            "~*",
            "&*",
            "+@all",
        ]))
        .await;
    redis
        .query::<()>(redis::cmd("ACL").arg(&["SETUSER", "default", "off"]))
        .await;
    assert!(
        redis
            .try_query::<String>(&redis::cmd("PING"))
            .await
            .is_none(),
        "default is off: a connection without a user gets nothing"
    );
    redis
}

/// `GET key` as the admin user.
async fn admin_get(redis: &RedisServer, key: &str) -> Option<String> {
    let client = redis::Client::open(format!("redis://admin:admin-pw@127.0.0.1:{}", redis.port))
        .expect("a redis:// URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("the admin user gets in");
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("GET as admin")
}

/// GetChatServer and Login for `uid`; the token must be the one Redis holds. Returns it.
async fn place_and_log_in(
    client: &mut StatusServiceClient<Channel>,
    redis: &RedisServer,
    uid: i32,
) -> String {
    let placed = client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .expect("GetChatServer as the ACL user")
        .into_inner();
    assert_eq!(placed.error, 0);
    assert_eq!(
        admin_get(redis, &format!("utoken_{uid}")).await,
        Some(placed.token.clone())
    );
    let login = client
        .login(LoginReq {
            uid,
            token: placed.token.clone(),
        })
        .await
        .expect("Login as the ACL user")
        .into_inner();
    assert_eq!(login.error, 0);
    placed.token
}

fn chat1() -> Vec<ChatServerEntry> {
    vec![ChatServerEntry::new("chat1", 8090)]
}

#[tokio::test]
async fn an_acl_user_with_just_the_commands_it_needs_serves_every_call() {
    let redis = acl_redis("secret").await;
    let url = format!("redis://status:secret@127.0.0.1:{}", redis.port);
    let server = TestServer::start(&TestConfig::at(&url, chat1())).await;
    let mut client = server.client().await;
    let token = place_and_log_in(&mut client, &redis, 51).await;

    // Admin RevokeToken is a DEL of the token key.
    let revoked = server
        .admin()
        .await
        .revoke_token(RevokeTokenReq { uid: 51 })
        .await
        .expect("RevokeToken as the ACL user")
        .into_inner();
    assert!(revoked.revoked);
    let login = client
        .login(LoginReq { uid: 51, token })
        .await
        .expect("Login answers")
        .into_inner();
    assert_eq!(login.error, 1011, "the token is gone");
}

#[tokio::test]
async fn a_wrong_password_answers_unavailable_and_the_log_says_why() {
    let redis = acl_redis("secret").await;
    let url = format!("redis://status:not-the-password@127.0.0.1:{}", redis.port);
    let mut server =
        ServerProcess::start_with_config_text(&TestConfig::at(&url, chat1()).to_toml()).await;
    let refused = server
        .client()
        .await
        .get_chat_server(GetChatServerReq { uid: 52 })
        .await
        .expect_err("no way into Redis");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let line = server.wait_for_log("load poll failed").await;
    assert!(
        line.to_lowercase().contains("authentication failed"),
        "the log says why: {line}"
    );
    assert!(!server.log.join("\n").contains("not-the-password"));
}

#[tokio::test]
async fn the_env_password_pairs_with_the_urls_user_and_no_password_shows_anywhere() {
    // Recognisable, so that any form of them in the output stands out.
    const ENV_PASSWORD: &str = "Env-Pa55w0rd-7Hq2";
    const URL_PASSWORD: &str = "Url-Pa55w0rd-K9zX";
    let mut redis = acl_redis(ENV_PASSWORD).await;
    // The URL's password is wrong: STATUS_REDIS_PASSWORD replaces it, for the URL's user.
    let url = format!("redis://status:{URL_PASSWORD}@127.0.0.1:{}", redis.port);
    let config = TestConfig::at(&url, chat1()).to_toml();
    let mut server = ServerProcess::start_with_env(
        "status.toml",
        &config,
        &[("STATUS_REDIS_PASSWORD", ENV_PASSWORD)],
    )
    .await;
    let mut client = server.client().await;
    place_and_log_in(&mut client, &redis, 53).await;

    let mut admin = AdminClient::new(
        testkit::channel_to(server.admin_addr.expect("the Admin port is on")).await,
    );
    let mut answers = vec![format!(
        "{:?}",
        admin
            .list_servers(ListServersReq {})
            .await
            .expect("ListServers")
    )];
    // A reload that fails on the URL, and one that works.
    server.rewrite_config(
        &config.replace(&format!("127.0.0.1:{}", redis.port), "127.0.0.1:not-a-port"),
    );
    answers.push(format!(
        "{:?}",
        admin.reload(ReloadReq {}).await.expect("Reload")
    ));
    server.rewrite_config(&config);
    answers.push(format!(
        "{:?}",
        admin.reload(ReloadReq {}).await.expect("Reload")
    ));
    let (status, metrics) = server.http_get("/metrics").await;
    assert_eq!(status, 200);
    // Redis gone: the outage is logged.
    redis.kill();
    server.wait_for_log("load poll failed").await;

    let log = server.log.join("\n");
    for (what, text) in [
        ("the log", &log),
        ("/metrics", &metrics),
        ("an Admin reply", &answers.join("\n")),
    ] {
        for secret in [ENV_PASSWORD, URL_PASSWORD] {
            for form in [
                secret.to_string(),
                secret.to_lowercase(),
                secret.to_uppercase(),
            ] {
                assert!(!text.contains(&form), "{what} shows a password: {text}");
            }
        }
    }
    // The Admin answer says where (docs/contract.md §6); the log says what, masked.
    assert!(
        answers[1].contains("applied: false") && answers[1].contains("line "),
        "the failed reload names the line: {}",
        answers[1]
    );
    assert!(
        log.contains("reload failed") && log.contains("status:***@"),
        "the log names the URL, masked: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_the_user_needs_cluster_slots_too() {
    let cluster = RedisCluster::start().await;
    let ports: Vec<u16> = cluster
        .node_urls()
        .iter()
        .map(|url| {
            url.rsplit(':')
                .next()
                .and_then(|port| port.parse().ok())
                .expect("redis://127.0.0.1:PORT")
        })
        .collect();
    for &port in &ports {
        let mut status = redis::cmd("ACL");
        status.arg(["SETUSER", "status", "on", ">secret", "+cluster|slots"].as_slice());
        for rule in ACL_RULES {
            status.arg(*rule);
        }
        RedisNode::new(port).query::<()>(&status).await;
    }
    RedisNode::new(cluster.master_of_key("logincount").await)
        .query::<()>(redis::cmd("HSET").arg("logincount").arg("chat1").arg(0))
        .await;
    let nodes: Vec<String> = ports
        .iter()
        .map(|port| format!("\"redis://status:secret@127.0.0.1:{port}\""))
        .collect();
    let location = format!("mode = \"cluster\"\nnodes = [{}]", nodes.join(", "));
    let server = TestServer::start(&TestConfig::located(location, chat1())).await;
    let mut client = server.client().await;
    cluster
        .places_and_logs_in_on_every_master(&mut client, "as the ACL user")
        .await;
}
