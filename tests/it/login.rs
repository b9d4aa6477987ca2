//! Login against a real Redis, through a tonic client (docs/contract.md §3).

use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq, LoginRsp};
use testkit::*;
use tonic::Code;
use tonic::transport::Channel;

async fn login(
    client: &mut StatusServiceClient<Channel>,
    uid: i32,
    token: &str,
) -> Result<LoginRsp, tonic::Status> {
    client
        .login(LoginReq {
            uid,
            token: token.to_string(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn rejected(error: i32) -> LoginRsp {
    LoginRsp {
        error,
        ..LoginRsp::default()
    }
}

#[tokio::test]
async fn issued_token_logs_in_and_is_echoed() {
    let (_redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    let token = client
        .get_chat_server(GetChatServerReq { uid: 77 })
        .await
        .expect("placed")
        .into_inner()
        .token;

    let rsp = login(&mut client, 77, &token).await.expect("Login answers");
    assert_eq!(
        rsp,
        LoginRsp {
            error: 0,
            uid: 77,
            token
        }
    );
}

#[tokio::test]
async fn wrong_token_is_1010_and_unknown_uid_is_1011() {
    let (redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    redis
        .query::<()>(redis::cmd("SET").arg("utoken_5").arg("the-right-token"))
        .await;

    let accepted = LoginRsp {
        error: 0,
        uid: 5,
        token: "the-right-token".into(),
    };
    for (uid, token, expected) in [
        (5, "the-wrong-token", rejected(1010)),
        // Same length, one byte off: still a mismatch.
        (5, "the-right-tokeN", rejected(1010)),
        (6, "the-right-token", rejected(1011)),
        (5, "the-right-token", accepted),
    ] {
        assert_eq!(
            login(&mut client, uid, token).await.expect("answers"),
            expected,
            "uid {uid}, token {token:?}"
        );
    }
}

#[tokio::test]
async fn invalid_input_is_rejected_without_reading_redis() {
    let (redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    redis.reset_stats().await;

    let long = "x".repeat(129);
    // uid is checked first, so a bad uid with a bad token is 1011.
    for (uid, token, error) in [
        (0, "t", 1011),
        (-5, "", 1011),
        (i32::MIN, long.as_str(), 1011),
        (1, "", 1010),
        (1, long.as_str(), 1010),
        (i32::MAX, long.as_str(), 1010),
    ] {
        assert_eq!(
            login(&mut client, uid, token).await.expect("answers"),
            rejected(error),
            "uid {uid}, token of {} bytes",
            token.len()
        );
    }
    let calls = redis.command_calls().await;
    assert_eq!(
        calls.get("get"),
        None,
        "no GET for rejected input: {calls:?}"
    );
}

#[tokio::test]
async fn token_of_128_bytes_is_looked_up() {
    let (redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    let token = "y".repeat(128);
    redis
        .query::<()>(redis::cmd("SET").arg("utoken_9").arg(&token))
        .await;
    assert_eq!(
        login(&mut client, 9, &token).await.expect("answers").error,
        0
    );
}

#[tokio::test]
async fn redis_down_is_unavailable() {
    let (mut redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    redis.kill();
    let status = login(&mut client, 1, "some-token")
        .await
        .expect_err("Redis is gone");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("redis"), "{}", status.message());
}

#[tokio::test]
async fn request_over_64_kib_is_refused_and_the_server_keeps_serving() {
    let (_redis, server) = server_with_one_chat_server().await;
    let mut client = server.client().await;
    let status = login(&mut client, 1, &"z".repeat(100 * 1024))
        .await
        .expect_err("a 100 KiB request is over the limit");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_eq!(
        login(&mut client, 1, "t")
            .await
            .expect("still serving")
            .error,
        1011
    );
}

#[tokio::test]
async fn a_token_key_of_another_type_is_1010_and_logged_once_not_an_outage() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    redis
        .query::<()>(redis::cmd("RPUSH").arg("utoken_5").arg("x"))
        .await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let mut server = ServerProcess::start(&config).await;
    let mut client = server.client().await;
    for _ in 0..5 {
        assert_eq!(
            login(&mut client, 5, "t").await.expect("Login answers"),
            rejected(1010)
        );
    }
    // Redis answers everything else meanwhile.
    assert_eq!(
        login(&mut client, 6, "t").await.expect("answers"),
        rejected(1011)
    );
    server.wait_for_log("holds another type").await;
    server.signal("TERM");
    server.wait_exit().await;
    let log = server.drain_log().await;
    let count = |needle: &str| log.iter().filter(|line| line.contains(needle)).count();
    assert_eq!(count("holds another type"), 1, "{log:#?}");
    assert_eq!(count("answering UNAVAILABLE"), 0, "{log:#?}");
    assert_eq!(count("Redis answers again"), 0, "{log:#?}");
}
