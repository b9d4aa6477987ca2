//! `statusbatch.v1.Batch` against a real Redis (docs/contract.md §9): each
//! item answers as its unary call would, a batch is one Redis round trip,
//! and what fails the unary call with a status fails the whole batch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use status_server::batch_proto::batch_client::BatchClient;
use status_server::batch_proto::{GetChatServersReq, LoginsReq};
use status_server::proto::{GetChatServerReq, GetChatServerRsp, LoginReq, LoginRsp};
use testkit::*;
use tonic::Code;
use tonic::transport::Channel;

/// Most reads one pipeline of about 100 commands (8 KiB) may take.
const READS_PER_PIPELINE: u64 = 3;

/// Long enough that no poll runs while a test counts Redis commands (the
/// first poll runs at start-up).
const NO_POLLS_MS: u64 = 600_000;

async fn batch_client(server: &TestServer) -> BatchClient<Channel> {
    BatchClient::new(server.channel().await)
}

async fn get_servers(
    client: &mut BatchClient<Channel>,
    uids: Vec<i32>,
) -> Result<Vec<GetChatServerRsp>, tonic::Status> {
    let rsp = client.get_chat_servers(GetChatServersReq { uids }).await?;
    Ok(rsp.into_inner().results)
}

async fn logins(
    client: &mut BatchClient<Channel>,
    requests: Vec<LoginReq>,
) -> Result<Vec<LoginRsp>, tonic::Status> {
    let rsp = client.logins(LoginsReq { requests }).await?;
    Ok(rsp.into_inner().results)
}

/// A counter of `INFO stats`, read on `conn`.
async fn info_stat(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(conn)
        .await
        .expect("INFO stats");
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO stats has no {name}"))
}

/// Reads Redis processed (socket read events, all clients) while `work`
/// ran: a round trip per command takes one read each; a pipeline takes one,
/// or a few when TCP hands it over in pieces (Redis reads at most 16 KiB at
/// once, and a busy machine may deliver a write in several segments).
async fn reads_during<T>(redis: &RedisServer, work: impl Future<Output = T>) -> (u64, T) {
    // One connection, opened before counting: the only read of its own is
    // the second INFO's.
    let mut conn = redis.conn().await;
    let before = info_stat(&mut conn, "total_reads_processed").await;
    let out = work.await;
    let after = info_stat(&mut conn, "total_reads_processed").await;
    (after - before - 1, out)
}

/// Three idle servers, no polls during the test.
async fn three_idle_servers() -> (RedisServer, TestServer) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0"), ("b", "0"), ("c", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        chat_servers(&[("a", 9001), ("b", 9002), ("c", 9003)]),
    );
    config.poll_interval_ms = NO_POLLS_MS;
    let server = TestServer::start(&config).await;
    (redis, server)
}

#[tokio::test]
async fn each_item_answers_as_its_unary_call_would() {
    let (redis, server) = server_with_one_chat_server().await;
    let mut client = batch_client(&server).await;

    let results = get_servers(&mut client, vec![5, 0, 6, -1])
        .await
        .expect("a business error per item, not a status");
    assert_eq!(results.len(), 4);
    for (i, uid) in [(0, 5), (2, 6)] {
        let rsp = &results[i];
        assert_eq!(
            (rsp.error, rsp.host.as_str(), rsp.port.as_str()),
            (0, "127.0.0.1", "8090")
        );
        assert_eq!(rsp.token.len(), 36);
        assert_eq!(
            redis.stored_token(uid).await.as_deref(),
            Some(rsp.token.as_str())
        );
    }
    let uid_invalid = GetChatServerRsp {
        error: 1011,
        ..Default::default()
    };
    assert_eq!((&results[1], &results[3]), (&uid_invalid, &uid_invalid));

    let token5 = results[0].token.clone();
    let requests = vec![
        LoginReq {
            uid: 5,
            token: token5.clone(),
        },
        LoginReq {
            uid: 6,
            token: token5.clone(),
        },
        LoginReq {
            uid: 0,
            token: token5.clone(),
        },
        LoginReq {
            uid: 77,
            token: token5.clone(),
        },
        LoginReq {
            uid: 5,
            token: String::new(),
        },
    ];
    // The same requests one by one, for comparison.
    let mut unary = server.client().await;
    let mut expected = Vec::new();
    for request in &requests {
        expected.push(
            unary
                .login(request.clone())
                .await
                .expect("unary")
                .into_inner(),
        );
    }
    let results = logins(&mut client, requests).await.expect("per-item codes");
    assert_eq!(results, expected);
    let codes: Vec<i32> = results.iter().map(|r| r.error).collect();
    assert_eq!(codes, [0, 1010, 1011, 1011, 1010]);
    assert_eq!(
        (results[0].uid, results[0].token.as_str()),
        (5, token5.as_str())
    );
}

#[tokio::test]
async fn too_many_items_or_a_repeated_uid_is_invalid_argument() {
    let (redis, server) = server_with_one_chat_server().await;
    let mut client = batch_client(&server).await;
    redis.reset_stats().await;

    let status = get_servers(&mut client, (1..=1001).collect())
        .await
        .expect_err("1001 items");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = get_servers(&mut client, vec![1, 2, 1])
        .await
        .expect_err("uid 1 twice");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("uid 1"), "{status:?}");
    let login = LoginReq {
        uid: 1,
        token: "t".into(),
    };
    let status = logins(&mut client, vec![login; 1001])
        .await
        .expect_err("1001 items");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let calls = redis.command_calls().await;
    assert_eq!(
        (calls.get("set"), calls.get("get")),
        (None, None),
        "{calls:?}"
    );

    // The limit itself is fine, and a Logins batch may repeat a uid.
    let results = get_servers(&mut client, (1..=1000).collect())
        .await
        .expect("1000 items");
    assert!(results.iter().all(|r| r.error == 0));
    let login = LoginReq {
        uid: 1,
        token: results[0].token.clone(),
    };
    let results = logins(&mut client, vec![login; 2])
        .await
        .expect("a uid twice");
    assert_eq!(results.iter().map(|r| r.error).collect::<Vec<_>>(), [0, 0]);
}

#[tokio::test]
async fn a_batch_is_one_pipeline_with_one_command_per_item() {
    let (redis, server) = three_idle_servers().await;
    let mut client = batch_client(&server).await;
    redis.reset_stats().await;

    let (reads, results) = reads_during(
        &redis,
        get_servers(&mut client, (1..=100).chain([0]).collect()),
    )
    .await;
    let results = results.expect("placed");
    assert!(results[..100].iter().all(|r| r.error == 0));
    let calls = redis.command_calls().await;
    assert_eq!(
        calls.get("set"),
        Some(&100),
        "one SET per valid uid: {calls:?}"
    );
    assert!(reads <= READS_PER_PIPELINE, "one round trip, {reads} reads");

    let requests: Vec<LoginReq> = results[..100]
        .iter()
        .zip(1..)
        .map(|(rsp, uid)| LoginReq {
            uid,
            token: rsp.token.clone(),
        })
        .chain([LoginReq {
            uid: -3,
            token: "x".into(),
        }])
        .collect();
    let (reads, results) = reads_during(&redis, logins(&mut client, requests)).await;
    assert!(
        results.expect("checked")[..100]
            .iter()
            .all(|r| r.error == 0)
    );
    let calls = redis.command_calls().await;
    assert_eq!(
        calls.get("get"),
        Some(&100),
        "one GET per valid item: {calls:?}"
    );
    assert!(reads <= READS_PER_PIPELINE, "one round trip, {reads} reads");
}

#[tokio::test]
async fn a_batch_of_300_spreads_100_100_100_over_three_idle_servers() {
    let (_redis, server) = three_idle_servers().await;
    let results = get_servers(&mut batch_client(&server).await, (1..=300).collect())
        .await
        .expect("placed");
    let mut per_port: HashMap<String, usize> = HashMap::new();
    for rsp in results {
        *per_port.entry(rsp.port).or_default() += 1;
    }
    let expected: HashMap<String, usize> = ["9001", "9002", "9003"]
        .map(|port| (port.to_string(), 100))
        .into();
    assert_eq!(per_port, expected);
}

/// One idle chat server with `max_connections = 10` and no polls to reset its count.
async fn one_server_with_room_for_ten() -> (RedisServer, TestServer) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("a", "0")]).await;
    let mut config = TestConfig::new(
        &redis,
        vec![ChatServerEntry::new("a", 9001).max_connections(10)],
    );
    config.poll_interval_ms = NO_POLLS_MS;
    let server = TestServer::start(&config).await;
    (redis, server)
}

#[tokio::test]
async fn a_batch_past_capacity_is_resource_exhausted_and_places_none() {
    let (redis, server) = one_server_with_room_for_ten().await;
    let mut client = batch_client(&server).await;

    let status = get_servers(&mut client, (1..=11).collect())
        .await
        .expect_err("11 > 10");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(redis.stored_token(1).await, None, "no token written");
    // Nothing was kept in flight: the ten places are all still free.
    let results = get_servers(&mut client, (1..=10).collect())
        .await
        .expect("room for 10");
    assert!(results.iter().all(|r| r.error == 0));
    // Invalid uids alone need no server, as their unary calls need none.
    let results = get_servers(&mut client, vec![0, -1])
        .await
        .expect("1011 each");
    assert!(results.iter().all(|r| r.error == 1011));
}

#[tokio::test]
async fn each_batch_counts_once_in_the_request_metrics() {
    // Kept alive to the end: the server needs its Redis.
    let (_redis, server) = one_server_with_room_for_ten().await;
    let mut client = batch_client(&server).await;

    let full = get_servers(&mut client, (1..=11).collect()).await;
    assert_eq!(full.expect_err("11 > 10").code(), Code::ResourceExhausted);
    get_servers(&mut client, (1..=10).collect())
        .await
        .expect("room for 10");
    get_servers(&mut client, vec![0, -1])
        .await
        .expect("1011 each, answered");
    let repeated = get_servers(&mut client, vec![5, 5]).await;
    assert_eq!(
        repeated.expect_err("uid twice").code(),
        Code::InvalidArgument
    );
    let wrong = LoginReq {
        uid: 1,
        token: "not the token".into(),
    };
    logins(&mut client, vec![wrong])
        .await
        .expect("1010, answered");

    let (status, text) = server.http_get("/metrics").await;
    assert_eq!(status, 200);
    let requests = |outcome: &str, rpc: &str| {
        format!("status_requests_total{{outcome=\"{outcome}\",protocol=\"grpc\",rpc=\"{rpc}\"}}")
    };
    // A refused INVALID_ARGUMENT never reached the actors: not a call answered.
    for (series, value) in [
        (requests("ok", "GetChatServers"), 2),
        (requests("resource_exhausted", "GetChatServers"), 1),
        (requests("ok", "Logins"), 1),
        (requests("ok", "GetChatServer"), 0),
        (
            "status_request_duration_seconds_count{protocol=\"grpc\",rpc=\"GetChatServers\"}"
                .to_string(),
            3,
        ),
        ("status_placements_refused_full_total".to_string(), 1),
    ] {
        let line = format!("{series} {value}");
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from {text}"
        );
    }
}

#[tokio::test]
async fn redis_down_fails_the_whole_batch_unavailable() {
    let (mut redis, server) = {
        let redis = RedisServer::start().await;
        set_loads(&redis, &[("chat1", "0")]).await;
        let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
        config.command_timeout_ms = 300;
        (redis, TestServer::start(&config).await)
    };
    let mut client = batch_client(&server).await;
    get_servers(&mut client, vec![1])
        .await
        .expect("works while Redis is up");
    redis.kill();

    let started = Instant::now();
    let status = get_servers(&mut client, vec![2, 0, 3])
        .await
        .expect_err("Redis is gone");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let login = LoginReq {
        uid: 2,
        token: "t".into(),
    };
    let status = logins(&mut client, vec![login])
        .await
        .expect_err("Redis is gone");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(started.elapsed() <= Duration::from_millis(2 * 300 + 500));
    // Items that need no Redis still answer without it, as unary calls do.
    let results = get_servers(&mut client, vec![0])
        .await
        .expect("no Redis needed");
    assert_eq!(results[0].error, 1011);
}

/// Figures for the README: a batch of 100 against 100 unary calls, one after
/// another and all at once: Redis reads (round trips) and wall time.
#[tokio::test]
async fn batch_of_100_against_100_unary_calls() {
    let (redis, server) = three_idle_servers().await;
    let mut batch = batch_client(&server).await;
    let unary = server.client().await;
    // Warm both paths once.
    get_servers(&mut batch, (1..=100).collect())
        .await
        .expect("warm-up");
    unary
        .clone()
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await
        .expect("warm-up");

    let started = Instant::now();
    let (batch_reads, placed) =
        reads_during(&redis, get_servers(&mut batch, (1..=100).collect())).await;
    let batch_time = started.elapsed();
    assert_eq!(placed.expect("placed").len(), 100);

    let started = Instant::now();
    let (sequential_reads, ()) = reads_during(&redis, async {
        for uid in 1..=100 {
            let mut client = unary.clone();
            client
                .get_chat_server(GetChatServerReq { uid })
                .await
                .expect("placed");
        }
    })
    .await;
    let sequential_time = started.elapsed();

    let started = Instant::now();
    let (concurrent_reads, placed) = reads_during(
        &redis,
        futures_util::future::join_all((1..=100).map(|uid| {
            let mut client = unary.clone();
            async move { client.get_chat_server(GetChatServerReq { uid }).await }
        })),
    )
    .await;
    let concurrent_time = started.elapsed();
    assert!(placed.iter().all(Result::is_ok));

    println!(
        "100 placements: batch {batch_reads} Redis reads in {batch_time:?}; \
         sequential unary {sequential_reads} in {sequential_time:?}; \
         concurrent unary {concurrent_reads} in {concurrent_time:?}"
    );
    assert!(batch_reads <= READS_PER_PIPELINE, "{batch_reads}");
    assert!(sequential_reads >= 100, "{sequential_reads}");
}
