//! `https://` addresses with `--tls-ca`, and `--tls-cert` / `--tls-key` against a server with
//! mTLS; TLS flags that do not fit the address are one error line.

use super::*;

/// A status-server with `[server.tls]` (mTLS when `client_ca`) and one alive chat server.
async fn tls_server(tls: &TlsDir, client_ca: bool) -> (RedisServer, TestServer) {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("chatserver1", "0")]).await;
    let config = TestConfig::new(
        &redis,
        vec![ChatServerEntry::new("chatserver1", free_port())],
    );
    let text = format!("{}{}", config.to_toml(), tls.section(client_ca));
    let server = TestServer::start_with_config_text(&text).await;
    (redis, server)
}

fn https(server: &TestServer) -> String {
    format!("https://localhost:{}", server.addr.port())
}

#[tokio::test]
async fn get_server_over_https_with_the_servers_ca() {
    let tls = TlsDir::new();
    let (_redis, server) = tls_server(&tls, false).await;
    let ca = tls.path("ca.crt");
    let addr = https(&server);
    let ca = ca.to_str().expect("a UTF-8 temp path");
    let run = statusctl(&["--addr", &addr, "--tls-ca", ca, "get-server", "--uid", "5"]);
    run.assert_code(0);
    assert_eq!(run.fields()["error"], "0");

    let run = statusctl(&["--addr", &addr, "get-server", "--uid", "5"]);
    run.assert_code(1);
    assert!(run.error_line().contains("--tls-ca"), "{}", run.stderr);
}

#[tokio::test]
async fn a_client_certificate_opens_an_mtls_server() {
    let tls = TlsDir::new();
    let (_redis, server) = tls_server(&tls, true).await;
    let client = tls.ca.client("statusctl");
    tls.write("client.crt", &client.cert_pem);
    tls.write("client.key", &client.key_pem);
    let path = |name: &str| {
        tls.path(name)
            .to_str()
            .expect("a UTF-8 temp path")
            .to_string()
    };
    let (ca, cert, key) = (path("ca.crt"), path("client.crt"), path("client.key"));
    let addr = https(&server);

    let run = statusctl(&[
        "--addr",
        &addr,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "health",
    ]);
    run.assert_code(0);

    let run = statusctl(&["--addr", &addr, "--tls-ca", &ca, "health"]);
    run.assert_code(3);
    run.error_line();

    let run = statusctl(&[
        "--addr",
        &addr,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "health",
    ]);
    run.assert_code(1);
    assert!(run.error_line().contains("go together"), "{}", run.stderr);
}
