//! Compressed gRPC (docs/contract.md §9): every service takes requests
//! compressed with gzip, deflate or zstd; replies are compressed as
//! `server.compression` says, and only for clients that accept it.

use status_server::batch_proto::GetChatServersReq;
use status_server::batch_proto::batch_client::BatchClient;
use status_server::proto::GetChatServerReq;
use status_server::proto::status_service_client::StatusServiceClient;
use testkit::*;
use tonic::codec::CompressionEncoding;

/// A server with one idle chat server whose replies go out as `compression`.
async fn server_compressing(compression: &str) -> (RedisServer, TestServer) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]);
    let text = config.to_toml().replacen(
        "[server]\n",
        &format!("[server]\ncompression = \"{compression}\"\n"),
        1,
    );
    let server = TestServer::start_with_config_text(&text).await;
    (redis, server)
}

/// The `grpc-encoding` of a reply, if it has one.
fn reply_encoding<T>(reply: &tonic::Response<T>) -> Option<String> {
    let encoding = reply.metadata().get("grpc-encoding")?;
    Some(encoding.to_str().expect("an ASCII header").to_string())
}

#[tokio::test]
async fn compressed_requests_are_answered_by_every_service() {
    let (redis, server) = server_compressing("none").await;
    for (uid, encoding) in [
        (1, CompressionEncoding::Gzip),
        (2, CompressionEncoding::Deflate),
        (3, CompressionEncoding::Zstd),
    ] {
        let mut client = StatusServiceClient::new(server.channel().await).send_compressed(encoding);
        let reply = client
            .get_chat_server(GetChatServerReq { uid })
            .await
            .unwrap_or_else(|status| panic!("{encoding:?} request refused: {status:?}"));
        assert_eq!(
            reply_encoding(&reply),
            None,
            "replies stay uncompressed by default"
        );
        let reply = reply.into_inner();
        assert_eq!(reply.error, 0);
        assert_eq!(redis.stored_token(uid).await, Some(reply.token));

        let mut batch = BatchClient::new(server.channel().await).send_compressed(encoding);
        let uids = vec![uid + 10, uid + 20];
        let reply = batch
            .get_chat_servers(GetChatServersReq { uids })
            .await
            .unwrap_or_else(|status| panic!("{encoding:?} batch refused: {status:?}"));
        assert!(reply.into_inner().results.iter().all(|r| r.error == 0));
    }
}

#[tokio::test]
async fn replies_are_compressed_as_configured_when_the_client_accepts_it() {
    for (compression, encoding) in [
        ("gzip", CompressionEncoding::Gzip),
        ("zstd", CompressionEncoding::Zstd),
    ] {
        let (_redis, server) = server_compressing(compression).await;
        let mut accepting = StatusServiceClient::new(server.channel().await)
            .accept_compressed(encoding)
            .send_compressed(encoding);
        let reply = accepting
            .get_chat_server(GetChatServerReq { uid: 1 })
            .await
            .expect("answered");
        assert_eq!(reply_encoding(&reply).as_deref(), Some(compression));
        assert_eq!(reply.into_inner().token.len(), 36, "decoded by tonic");

        // A client that does not say it accepts the encoding gets plain replies.
        let mut plain = StatusServiceClient::new(server.channel().await);
        let reply = plain
            .get_chat_server(GetChatServerReq { uid: 2 })
            .await
            .expect("answered");
        assert_eq!(reply_encoding(&reply), None, "{compression}");
        assert_eq!(reply.into_inner().error, 0);
    }
}
