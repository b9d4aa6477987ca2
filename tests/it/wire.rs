//! The wire contract (docs/contract.md §1), checked independently of `proto/`.
//!
//! The messages below are written by hand from the contract's table (names,
//! field numbers, types) and sent to the full method paths, so a change to
//! `proto/message.proto` that deployed clients would notice fails here.

use testkit::*;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct GetChatServerReq {
    #[prost(int32, tag = "1")]
    uid: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetChatServerRsp {
    #[prost(int32, tag = "1")]
    error: i32,
    #[prost(string, tag = "2")]
    host: String,
    #[prost(string, tag = "3")]
    port: String,
    #[prost(string, tag = "4")]
    token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LoginReq {
    #[prost(int32, tag = "1")]
    uid: i32,
    #[prost(string, tag = "2")]
    token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LoginRsp {
    #[prost(int32, tag = "1")]
    error: i32,
    #[prost(int32, tag = "2")]
    uid: i32,
    #[prost(string, tag = "3")]
    token: String,
}

async fn unary<Req, Rsp>(addr: std::net::SocketAddr, path: &'static str, req: Req) -> Rsp
where
    Req: prost::Message + Send + Sync + 'static,
    Rsp: prost::Message + Default + Send + Sync + 'static,
{
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("connecting");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    grpc.unary(
        tonic::Request::new(req),
        PathAndQuery::from_static(path),
        ProstCodec::<Req, Rsp>::default(),
    )
    .await
    .unwrap_or_else(|status| panic!("{path} failed: {status:?}"))
    .into_inner()
}

#[tokio::test]
async fn replies_decode_with_the_contract_field_numbers() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let server = TestServer::start(&config).await;

    let placed: GetChatServerRsp = unary(
        server.addr,
        "/message.StatusService/GetChatServer",
        GetChatServerReq { uid: 31 },
    )
    .await;
    assert_eq!(placed.error, 0);
    assert_eq!(placed.host, "127.0.0.1");
    assert_eq!(placed.port, "8090");
    assert_eq!(placed.token.len(), 36);

    let logged_in: LoginRsp = unary(
        server.addr,
        "/message.StatusService/Login",
        LoginReq {
            uid: 31,
            token: placed.token.clone(),
        },
    )
    .await;
    assert_eq!(
        logged_in,
        LoginRsp {
            error: 0,
            uid: 31,
            token: placed.token
        }
    );

    let bad_uid: GetChatServerRsp = unary(
        server.addr,
        "/message.StatusService/GetChatServer",
        GetChatServerReq { uid: 0 },
    )
    .await;
    assert_eq!(bad_uid.error, 1011);
}

#[test]
fn proto_file_declares_the_contract_names() {
    let proto = include_str!("../../proto/message.proto");
    for needle in [
        "syntax = \"proto3\";",
        "package message;",
        "service StatusService",
        "rpc GetChatServer(GetChatServerReq) returns (GetChatServerRsp);",
        "rpc Login(LoginReq) returns (LoginRsp);",
    ] {
        assert!(
            proto.contains(needle),
            "proto/message.proto lacks {needle:?}"
        );
    }
}
