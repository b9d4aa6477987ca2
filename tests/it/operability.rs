//! What operators use: /metrics, /healthz, gRPC health, reflection and the
//! Admin API, against a real server and Redis.

use std::collections::HashMap;

use status_server::admin_proto::admin_client::AdminClient;
use status_server::admin_proto::{ListServersReq, ListServersRsp, ReloadReq, ReloadRsp};
use status_server::proto::GetChatServerReq;
use testkit::*;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Parses the Prometheus text format strictly enough to catch malformed
/// output: `# HELP`/`# TYPE` comments and `name{labels} value` samples.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split_whitespace().next();
            assert!(
                matches!(kind, Some("HELP" | "TYPE")),
                "bad comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

/// What the gRPC health `Check` answers for `service`.
async fn check(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let status = health
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .expect("Check")
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap_or_else(|_| panic!("unknown serving status {status}"))
}

/// A Redis where chat1 (count 0) and chat2 (count 7) are alive, and the config for both.
async fn two_alive_servers() -> (RedisServer, TestConfig) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0"), ("chat2", "7")]).await;
    let config = TestConfig::new(&redis, chat_servers(&[("chat1", 8001), ("chat2", 8002)]));
    (redis, config)
}

async fn started() -> (RedisServer, TestServer) {
    let (redis, config) = two_alive_servers().await;
    (redis, TestServer::start(&config).await)
}

/// As a process, for tests that read its log.
async fn started_process() -> (RedisServer, ServerProcess) {
    let (redis, config) = two_alive_servers().await;
    (redis, ServerProcess::start(&config).await)
}

#[tokio::test]
async fn metrics_parse_and_count_each_call() {
    let (_redis, server) = started().await;
    let series = "status_requests_total{outcome=\"ok\",protocol=\"grpc\",rpc=\"GetChatServer\"}";
    let before = parse_prometheus(&server.http_get("/metrics").await.1)
        .get(series)
        .copied()
        .unwrap_or(0.0);

    let mut client = server.client().await;
    for uid in 1..=25 {
        client
            .get_chat_server(GetChatServerReq { uid })
            .await
            .expect("placed");
    }
    let (status, text) = server.http_get("/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_prometheus(&text);
    assert_eq!(
        samples.get(series).copied().unwrap_or(0.0) - before,
        25.0,
        "{text}"
    );
    assert_eq!(
        samples.get("status_chat_server_polled_count{server=\"chat2\"}"),
        Some(&7.0)
    );
    assert_eq!(
        samples.get("status_chat_server_alive{server=\"chat1\"}"),
        Some(&1.0)
    );
    assert_eq!(samples.get("status_redis_up"), Some(&1.0));
    assert!(samples.contains_key(
        "status_request_duration_seconds_count{protocol=\"grpc\",rpc=\"GetChatServer\"}"
    ));
    assert!(samples.keys().any(|k| k.starts_with("status_build_info{")));
}

#[tokio::test]
async fn healthz_and_grpc_health_follow_redis() {
    let (mut redis, mut server) = started_process().await;
    let port = redis.port;
    let mut health = HealthClient::new(server.channel().await);

    assert_eq!(
        server.http_get("/healthz").await,
        (200, "ok: 2 of 2 chat servers alive\n".to_string())
    );
    for service in ["", "message.StatusService"] {
        assert_eq!(
            check(&mut health, service).await,
            ServingStatus::Serving,
            "{service:?}"
        );
    }

    redis.kill();
    server.wait_for_log("gRPC health: NotServing").await;
    let (status, body) = server.http_get("/healthz").await;
    assert_eq!(status, 503);
    assert!(
        body.starts_with("redis:") && body.lines().count() == 1,
        "{body:?}"
    );
    assert_eq!(check(&mut health, "").await, ServingStatus::NotServing);

    let _redis = RedisServer::start_on(port, &[]).await;
    set_loads(&_redis, &[("chat1", "0"), ("chat2", "7")]).await;
    server
        .wait_for_nth_log(2, |l| l.contains("gRPC health: Serving"))
        .await;
    assert_eq!(server.http_get("/healthz").await.0, 200);
    assert_eq!(
        check(&mut health, "message.StatusService").await,
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn health_watch_sees_not_serving_at_drain_and_does_not_hold_shutdown() {
    let (_redis, server) = started().await;
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Watch")
        .into_inner();
    let first = watch.message().await.expect("stream").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // What SIGTERM asks for; the signal itself is tested in process.rs.
    let stopped = tokio::spawn(server.stop());
    let next = watch
        .message()
        .await
        .expect("stream")
        .expect("a status at drain");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    let exit = stopped.await.expect("stop task").expect("the server ran");
    assert_eq!(
        exit,
        status_server::server::Exit::Drained,
        "the Watch stream ended, drain finished"
    );
}

/// One v1 reflection request on `channel`, and its answer (tonic's reflection ends the
/// stream with a status for a symbol it does not know).
async fn reflect(
    channel: Channel,
    request: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> Result<tonic_reflection::pb::v1::server_reflection_response::MessageResponse, tonic::Status> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let response = ServerReflectionClient::new(channel)
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner()
        .message()
        .await?
        .expect("a response");
    Ok(response
        .message_response
        .expect("a reflection response holds an answer"))
}

/// The services reflection lists on `channel`.
async fn listed_services(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    match reflect(channel, MessageRequest::ListServices(String::new())).await {
        Ok(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a service list: {other:?}"),
    }
}

#[tokio::test]
async fn reflection_lists_each_ports_services_and_only_those() {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (_redis, server) = started().await;
    let public = listed_services(server.channel().await).await;
    for expected in [
        "message.StatusService",
        "statusbatch.v1.Batch",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            public.iter().any(|n| n == expected),
            "{expected} missing from {public:?}"
        );
    }
    assert!(
        !public.iter().any(|n| n.starts_with("statusadmin.")),
        "listen lists the Admin API: {public:?}"
    );
    // Nor does it describe it to a client that knows the name.
    let described = reflect(
        server.channel().await,
        MessageRequest::FileContainingSymbol("statusadmin.v1.Admin".to_string()),
    )
    .await;
    assert!(
        matches!(described, Err(ref status) if status.code() == tonic::Code::NotFound),
        "{described:?}"
    );

    let admin_channel = channel_to(server.admin_addr.expect("the Admin port is on")).await;
    let admin = listed_services(admin_channel.clone()).await;
    assert!(
        admin.iter().any(|n| n == "statusadmin.v1.Admin"),
        "Admin missing from {admin:?}"
    );
    assert!(
        !admin.iter().any(|n| n == "message.StatusService"),
        "admin_listen lists what it does not serve: {admin:?}"
    );
    let described = reflect(
        admin_channel,
        MessageRequest::FileContainingSymbol("statusadmin.v1.Admin".to_string()),
    )
    .await;
    assert!(
        matches!(described, Ok(MessageResponse::FileDescriptorResponse(_))),
        "{described:?}"
    );
}

/// The Admin API's `ListServers`, which must answer.
async fn list_servers(admin: &mut AdminClient<Channel>) -> ListServersRsp {
    admin
        .list_servers(ListServersReq {})
        .await
        .expect("ListServers")
        .into_inner()
}

/// The Admin API's `Reload`, which must answer (whether it applied or not).
async fn reload(admin: &mut AdminClient<Channel>) -> ReloadRsp {
    admin
        .reload(ReloadReq {})
        .await
        .expect("Reload")
        .into_inner()
}

#[tokio::test]
async fn admin_lists_servers_and_reloads() {
    let (redis, mut server) = started_process().await;
    let admin_addr = server.admin_addr.expect("the Admin port is on");
    let mut admin = AdminClient::connect(format!("http://{admin_addr}"))
        .await
        .expect("connect");
    let list = list_servers(&mut admin).await;
    assert!(list.redis_ok);
    let chat2 = list
        .servers
        .iter()
        .find(|s| s.name == "chat2")
        .expect("chat2 listed");
    assert_eq!(
        (chat2.port, chat2.polled_count, chat2.alive),
        (8002, Some(7), true)
    );
    assert_eq!(chat2.load_field, "count");
    assert!(chat2.last_poll_unix_ms > 0);

    // Reload through the API: a third server appears.
    set_loads(&redis, &[("chat3", "1")]).await;
    let mut config = TestConfig::new(
        &redis,
        chat_servers(&[("chat1", 8001), ("chat2", 8002), ("chat3", 8003)]),
    );
    server.rewrite_config(&config.to_toml());
    let reloaded = reload(&mut admin).await;
    assert!(reloaded.applied, "{reloaded:?}");
    let list = list_servers(&mut admin).await;
    assert_eq!(list.servers.len(), 3);

    // A bad file is reported and changes nothing.
    config.servers.clear();
    server.rewrite_config(&config.to_toml());
    let refused = reload(&mut admin).await;
    assert!(!refused.applied);
    assert!(
        refused.message.starts_with("reload failed"),
        "{}",
        refused.message
    );
    let list = list_servers(&mut admin).await;
    assert_eq!(list.servers.len(), 3);
    server.wait_for_log("reload failed").await;
}

#[tokio::test]
async fn admin_is_served_on_admin_listen_only() {
    let (_redis, server) = started().await;
    // On the public port every Admin call is UNIMPLEMENTED, whoever asks.
    let mut public = AdminClient::new(server.channel().await);
    let listed = public.list_servers(ListServersReq {}).await;
    assert_eq!(
        listed.expect_err("Admin is not on listen").code(),
        tonic::Code::Unimplemented
    );
    let reloaded = public.reload(ReloadReq {}).await;
    assert_eq!(
        reloaded.expect_err("Admin is not on listen").code(),
        tonic::Code::Unimplemented
    );
    // The public port still serves the rest.
    let mut client = server.client().await;
    let placed = client
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await
        .expect("GetChatServer on listen")
        .into_inner();
    assert_eq!(placed.error, 0);
    // The Admin port answers Admin, and nothing else.
    let mut admin = server.admin().await;
    assert_eq!(list_servers(&mut admin).await.servers.len(), 2);
    let admin_addr = server.admin_addr.expect("the Admin port is on");
    let mut status_on_admin = testkit::client_of(admin_addr).await;
    let status = status_on_admin
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await;
    assert_eq!(
        status
            .expect_err("StatusService is not on admin_listen")
            .code(),
        tonic::Code::Unimplemented
    );
}

#[tokio::test]
async fn an_empty_admin_listen_serves_no_admin_port() {
    let (_redis, config) = two_alive_servers().await;
    let text = config
        .to_toml()
        .replace("admin_listen = \"127.0.0.1:0\"", "admin_listen = \"\"");
    let server = TestServer::start_with_config_text(&text).await;
    assert_eq!(server.admin_addr, None);
    let mut public = AdminClient::new(server.channel().await);
    let listed = public.list_servers(ListServersReq {}).await;
    assert_eq!(
        listed.expect_err("Admin is off").code(),
        tonic::Code::Unimplemented
    );
}
