//! Hostile input on the wire: malformed protobuf, junk instead of HTTP/2, a
//! flood of idle connections. Each gets a clean answer (or a closed
//! connection) and the server keeps serving everyone else.

use status_server::proto::GetChatServerReq;
use testkit::*;
use tokio::io::AsyncWriteExt;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::ProstCodec;

/// GetChatServerReq with field 1 sent as a string: wire type 2 where the
/// contract has a varint, which no valid encoder produces.
#[derive(Clone, PartialEq, prost::Message)]
struct MalformedReq {
    #[prost(string, tag = "1")]
    uid: String,
}

async fn still_serving(server: &TestServer) {
    let rsp = server
        .client()
        .await
        .get_chat_server(GetChatServerReq { uid: 1 })
        .await
        .expect("a normal call still works")
        .into_inner();
    assert_eq!(rsp.error, 0);
}

#[tokio::test]
async fn malformed_protobuf_is_a_clean_error() {
    let (_redis, server) = server_with_one_chat_server().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("channel ready");
    let status = grpc
        .unary(
            tonic::Request::new(MalformedReq {
                uid: "x".repeat(100),
            }),
            PathAndQuery::from_static("/message.StatusService/GetChatServer"),
            ProstCodec::<MalformedReq, status_server::proto::GetChatServerRsp>::default(),
        )
        .await
        .expect_err("the request does not decode");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("decode"), "{status:?}");
    still_serving(&server).await;
}

#[tokio::test]
async fn junk_instead_of_http2_and_idle_connection_floods_do_not_stop_service() {
    let (_redis, server) = server_with_one_chat_server().await;
    // 200 connections that send junk, 300 that send nothing at all.
    let mut junk = Vec::new();
    for i in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        let bytes: Vec<u8> = (0..4096u32).map(|b| (b * 31 + i) as u8).collect();
        let _ = stream.write_all(&bytes).await;
        junk.push(stream);
    }
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("connect"),
        );
    }
    still_serving(&server).await;
    drop(junk);
    drop(idle);
    still_serving(&server).await;
}

#[tokio::test]
async fn unknown_method_is_unimplemented() {
    let (_redis, server) = server_with_one_chat_server().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("channel ready");
    let status = grpc
        .unary(
            tonic::Request::new(GetChatServerReq { uid: 1 }),
            PathAndQuery::from_static("/message.StatusService/NoSuchMethod"),
            ProstCodec::<GetChatServerReq, status_server::proto::GetChatServerRsp>::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), Code::Unimplemented);
    still_serving(&server).await;
}

#[tokio::test]
async fn a_connection_that_never_spoke_does_not_hold_shutdown() {
    let (_redis, server) = server_with_one_chat_server().await;
    let _silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    still_serving(&server).await;
    let sent = std::time::Instant::now();
    // What SIGTERM asks for; the process-level signal path is tested in process.rs.
    let exit = server.stop().await.expect("the server ran");
    assert_eq!(exit, status_server::server::Exit::Drained);
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
}
