//! TLS and mTLS on the gRPC ports (docs/contract.md §6), with certificates the tests make:
//! calls over TLS, plaintext and wrong client certificates refused on `listen` and
//! `admin_listen`, certificates rotated by a reload, bad files refused at start.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use status_server::admin_proto::ListServersReq;
use status_server::admin_proto::admin_client::AdminClient;
use status_server::proto::GetChatServerReq;
use status_server::proto::status_service_client::StatusServiceClient;
use testkit::{
    ChatServerEntry, Leaf, RedisServer, TestCa, TestConfig, TestServer, TlsDir, parse_http_reply,
    run_to_exit, set_loads,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, ClientTlsConfig};

/// A Redis with one live chat server, and a config for it with `[server.tls]` from `tls`.
async fn tls_config(tls: &TlsDir, client_ca: bool) -> (RedisServer, String) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chat1", "0")]).await;
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("chat1", 8090)]).to_toml();
    (redis, format!("{config}{}", tls.section(client_ca)))
}

/// A fresh TLS channel to `addr`, configured by `tls`.
async fn tls_channel(addr: SocketAddr, tls: ClientTlsConfig) -> Result<Channel, String> {
    Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .expect("a valid URI")
        .tls_config(tls)
        .map_err(|err| err.to_string())?
        .connect()
        .await
        .map_err(|err| format!("connect: {err:?}"))
}

/// One GetChatServer over a fresh TLS channel configured by `tls`.
async fn call_over_tls(addr: SocketAddr, tls: ClientTlsConfig) -> Result<i32, String> {
    StatusServiceClient::new(tls_channel(addr, tls).await?)
        .get_chat_server(GetChatServerReq { uid: 7 })
        .await
        .map(|reply| reply.into_inner().error)
        .map_err(|status| format!("{status:?}"))
}

/// A fresh TLS connection to `addr`, trusting `ca`.
async fn tls_connect(
    addr: SocketAddr,
    ca: &TestCa,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("the CA's PEM"))
        .expect("a usable CA");
    let config = rustls::ClientConfig::builder_with_provider(status_server::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("a DNS name"), tcp)
        .await
        .expect("TLS handshake")
}

/// The certificate the server presents to a fresh connection, trusting `ca`.
async fn presented_certificate(addr: SocketAddr, ca: &TestCa) -> CertificateDer<'static> {
    tls_connect(addr, ca)
        .await
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .expect("the server presents a certificate")
        .clone()
        .into_owned()
}

fn der_of(leaf: &Leaf) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("the leaf's PEM")
}

#[tokio::test]
async fn get_chat_server_over_tls() {
    let tls = TlsDir::new();
    let (_redis, config) = tls_config(&tls, false).await;
    let server = TestServer::start_with_config_text(&config).await;
    let error = call_over_tls(server.addr, tls.client_config(None)).await;
    assert_eq!(error, Ok(0), "a call over TLS is served");
}

#[tokio::test]
async fn the_http_json_port_speaks_tls_too() {
    let tls = TlsDir::new();
    let (_redis, config) = tls_config(&tls, false).await;
    let server = TestServer::start_with_config_text(&config).await;
    let addr = server.http_addr.expect("http_listen is on");
    let body = r#"{"uid": 7}"#;
    let request = format!(
        "POST /v1/get-chat-server HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut session = tls_connect(addr, &tls.ca).await;
    session.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    // The server closes after its answer (Connection: close); some close without notify.
    let _ = session.read_to_string(&mut response).await;
    let reply = parse_http_reply(&response);
    assert_eq!(reply.status, 200, "{response}");

    let mut plaintext = tokio::net::TcpStream::connect(addr).await.expect("connect");
    plaintext.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    // Closed either way; a reset (the request unread) counts as closed too.
    let _closed_or_reset = tokio::time::timeout(testkit::WAIT, plaintext.read_to_end(&mut answer))
        .await
        .expect("a plaintext request is closed, not left hanging");
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "no HTTP answer in plaintext"
    );
}

#[tokio::test]
async fn a_plaintext_client_is_refused() {
    let tls = TlsDir::new();
    let (_redis, config) = tls_config(&tls, false).await;
    let server = TestServer::start_with_config_text(&config).await;
    let plaintext = async {
        let channel = Channel::from_shared(format!("http://{}", server.addr))
            .expect("a valid URI")
            .connect()
            .await
            .map_err(|err| format!("{err:?}"))?;
        StatusServiceClient::new(channel)
            .get_chat_server(GetChatServerReq { uid: 7 })
            .await
            .map_err(|status| format!("{status:?}"))
    };
    assert!(plaintext.await.is_err(), "plaintext gets no reply");
    // The port still serves TLS clients after refusing one.
    assert_eq!(
        call_over_tls(server.addr, tls.client_config(None)).await,
        Ok(0)
    );
}

#[tokio::test]
async fn mtls_refuses_clients_without_a_certificate_of_its_ca() {
    let tls = TlsDir::new();
    let (_redis, config) = tls_config(&tls, true).await;
    let server = TestServer::start_with_config_text(&config).await;

    let without = call_over_tls(server.addr, tls.client_config(None)).await;
    assert!(without.is_err(), "no client certificate: {without:?}");

    let foreign = TestCa::new("someone else's CA").client("intruder");
    let with_foreign = call_over_tls(server.addr, tls.client_config(Some(&foreign))).await;
    assert!(with_foreign.is_err(), "foreign CA: {with_foreign:?}");

    let ours = tls.ca.client("statusctl");
    let with_ours = call_over_tls(server.addr, tls.client_config(Some(&ours))).await;
    assert_eq!(
        with_ours,
        Ok(0),
        "a certificate of the configured CA is accepted"
    );
}

/// One Admin ListServers over a fresh TLS channel configured by `tls`: how many servers.
async fn list_over_tls(addr: SocketAddr, tls: ClientTlsConfig) -> Result<usize, String> {
    AdminClient::new(tls_channel(addr, tls).await?)
        .list_servers(ListServersReq {})
        .await
        .map(|reply| reply.into_inner().servers.len())
        .map_err(|status| format!("{status:?}"))
}

#[tokio::test]
async fn mtls_guards_the_admin_port_too() {
    let tls = TlsDir::new();
    let (_redis, config) = tls_config(&tls, true).await;
    let server = TestServer::start_with_config_text(&config).await;
    let admin = server.admin_addr.expect("the Admin port is on");

    let without = list_over_tls(admin, tls.client_config(None)).await;
    assert!(without.is_err(), "no client certificate: {without:?}");

    let foreign = TestCa::new("someone else's CA").client("intruder");
    let with_foreign = list_over_tls(admin, tls.client_config(Some(&foreign))).await;
    assert!(with_foreign.is_err(), "foreign CA: {with_foreign:?}");

    let plaintext = async {
        let channel = Channel::from_shared(format!("http://{admin}"))
            .expect("a valid URI")
            .connect()
            .await
            .map_err(|err| format!("{err:?}"))?;
        AdminClient::new(channel)
            .list_servers(ListServersReq {})
            .await
            .map_err(|status| format!("{status:?}"))
    };
    assert!(plaintext.await.is_err(), "plaintext gets no reply");

    let ours = tls.ca.client("operator");
    let with_ours = list_over_tls(admin, tls.client_config(Some(&ours))).await;
    assert_eq!(
        with_ours,
        Ok(1),
        "a certificate of the configured CA is accepted"
    );
}

#[tokio::test]
async fn a_reload_rotates_the_certificate_for_new_connections() {
    let tls = TlsDir::new();
    let (_redis, config) = tls_config(&tls, false).await;
    let server = TestServer::start_with_config_text(&config).await;
    let first = presented_certificate(server.addr, &tls.ca).await;

    // An open connection goes on across the rotation.
    let open = Channel::from_shared(format!("https://localhost:{}", server.addr.port()))
        .expect("a valid URI")
        .tls_config(tls.client_config(None))
        .expect("a client TLS config")
        .connect()
        .await
        .expect("connect over TLS");
    let mut open = StatusServiceClient::new(open);

    let rotated = tls.ca.server(2);
    tls.install_server(&rotated);
    let outcome = server.reload().await;
    assert!(outcome.applied, "{}", outcome.message);
    let second = presented_certificate(server.addr, &tls.ca).await;
    assert_ne!(first, second, "a new connection sees the new certificate");
    assert_eq!(second, der_of(&rotated));

    let reply = open
        .get_chat_server(GetChatServerReq { uid: 8 })
        .await
        .expect("the open connection still serves");
    assert_eq!(reply.into_inner().error, 0);
}

#[tokio::test]
async fn a_reload_with_bad_files_keeps_the_running_certificate() {
    let tls = TlsDir::new();
    let (_redis, config) = tls_config(&tls, false).await;
    let server = TestServer::start_with_config_text(&config).await;
    let running = presented_certificate(server.addr, &tls.ca).await;

    tls.write("server.crt", "not a certificate\n");
    let outcome = server.reload().await;
    assert!(
        outcome.message.contains("reload failed") && outcome.message.contains("server.crt"),
        "{}",
        outcome.message
    );
    assert_eq!(presented_certificate(server.addr, &tls.ca).await, running);
}

#[tokio::test]
async fn bad_tls_files_stop_the_start_naming_the_file() {
    let tls = TlsDir::new();
    let (_redis, config) = tls_config(&tls, true).await;
    let other_key = tls.ca.server(9).key_pem;
    let cases: [(&str, &str, Option<&str>); 4] = [
        ("missing", "ca.crt", None),
        ("not PEM", "server.crt", Some("garbage\n")),
        ("no key", "server.key", Some("")),
        ("key of another certificate", "server.key", Some(&other_key)),
    ];
    for (case, file, content) in cases {
        let fresh = TlsDir::new();
        match content {
            None => std::fs::remove_file(fresh.path(file)).expect("removing a test file"),
            Some(text) => fresh.write(file, text),
        }
        let config = config.replace(
            tls.dir().to_str().expect("a UTF-8 temp path"),
            fresh.dir().to_str().expect("a UTF-8 temp path"),
        );
        let (status, stderr) = run_to_exit(&config);
        assert_eq!(status.code(), Some(1), "{case}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(lines.len(), 1, "{case}: one error line: {stderr}");
        assert!(
            lines[0].contains(&*fresh.path(file).to_string_lossy()),
            "{case}: names {file}: {stderr}"
        );
    }
}
