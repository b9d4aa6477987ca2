//! The RPC commands (`get-server`, `get-servers`, `login`): text and `--json` output, exit
//! codes for business errors, gRPC errors and no server; `--help` and usage errors.

use super::*;

#[tokio::test]
async fn get_server_and_login_print_the_reply_as_text_and_json() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;

    let run = ctl(&server, &["get-server", "--uid", "42"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let fields = run.fields();
    assert_eq!(fields["error"], "0");
    assert_eq!(fields["host"], "127.0.0.1");
    assert_eq!(fields["port"], port.to_string());
    assert_eq!(fields["token"].len(), 36, "{fields:?}");

    let run = ctl(&server, &["--json", "get-server", "--uid", "43"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["error"], 0);
    assert_eq!(reply["host"], "127.0.0.1");
    assert_eq!(reply["port"], port.to_string());
    let token = reply["token"]
        .as_str()
        .expect("token is a string")
        .to_string();
    assert_eq!(token.len(), 36);
    assert_eq!(redis.stored_token(43).await.as_deref(), Some(&*token));

    // Global options may also follow the command.
    let run = ctl(
        &server,
        &["login", "--uid", "43", "--token", &token, "--json"],
    );
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["error"], 0);
    assert_eq!(reply["uid"], 43);
    assert_eq!(reply["token"], token.as_str());

    let run = ctl(&server, &["login", "--uid", "43", "--token", &token]);
    run.assert_code(0);
    let fields = run.fields();
    assert_eq!(fields["error"], "0");
    assert_eq!(fields["uid"], "43");
    assert_eq!(fields["token"], token);
}

#[tokio::test]
async fn get_servers_places_a_batch_in_one_call_with_a_row_per_uid() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;

    let run = ctl(&server, &["get-servers", "--uids", "1,2,3"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header and a row per uid: {:?}", run.stdout);
    assert!(lines[0].starts_with("UID  ERROR  HOST"), "{}", lines[0]);
    for (line, uid) in lines[1..].iter().zip(1..) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells[..4],
            [&*uid.to_string(), "0", "127.0.0.1", &*port.to_string()]
        );
        assert_eq!(redis.stored_token(uid).await.as_deref(), Some(cells[4]));
    }

    // Compressed both ways, and JSON: an array in uid order, business errors per item.
    let run = ctl(
        &server,
        &[
            "--compress",
            "gzip",
            "--json",
            "get-servers",
            "--uids",
            "4,0",
        ],
    );
    run.assert_code(1);
    let items = run.json();
    assert_eq!(items[0]["uid"], 4);
    assert_eq!(items[0]["error"], 0);
    assert_eq!(items[1]["uid"], 0);
    assert_eq!(items[1]["error"], 1011);
    assert!(run.error_line().contains("uid 0"), "{}", run.stderr);

    let run = ctl(&server, &["get-servers", "--uids", "5,5"]);
    run.assert_code(3);
    assert!(
        run.error_line().contains("INVALID_ARGUMENT"),
        "{}",
        run.stderr
    );

    let run = ctl(&server, &["--compress", "zstd", "get-server", "--uid", "6"]);
    run.assert_code(0);
    assert_eq!(run.fields()["error"], "0");
}

#[tokio::test]
async fn business_errors_exit_1_with_the_reply_on_stdout() {
    let (_redis, server) = one_alive_server(free_port()).await;

    let run = ctl(&server, &["get-server", "--uid", "0"]);
    run.assert_code(1);
    assert_eq!(run.fields()["error"], "1011 (uid invalid)");
    assert_eq!(
        run.error_line(),
        "statusctl: error: GetChatServer answered error 1011 (uid invalid)"
    );

    let run = ctl(&server, &["--json", "get-server", "--uid", "-5"]);
    run.assert_code(1);
    let reply = run.json();
    assert_eq!(reply["error"], 1011);
    assert_eq!(reply["host"], "");
    assert_eq!(reply["token"], "");
    run.error_line();

    let placed = ctl(&server, &["--json", "get-server", "--uid", "7"]);
    placed.assert_code(0);
    let run = ctl(
        &server,
        &["--json", "login", "--uid", "7", "--token", "not-the-token"],
    );
    run.assert_code(1);
    assert_eq!(run.json()["error"], 1010);
    assert!(run.error_line().contains("1010 (token invalid)"));

    // No token stored for this uid.
    let run = ctl(&server, &["login", "--uid", "8", "--token", "whatever"]);
    run.assert_code(1);
    assert!(run.error_line().contains("1011"));
}

#[tokio::test]
async fn a_grpc_error_exits_3_and_names_the_code() {
    let redis = RedisServer::start().await;
    // No load field for the only chat server: nothing is alive.
    let config = TestConfig::new(&redis, vec![ChatServerEntry::new("ghost", free_port())]);
    let server = TestServer::start(&config).await;
    let run = ctl(&server, &["--json", "get-server", "--uid", "1"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "", "no reply, no JSON");
    assert!(
        run.error_line()
            .starts_with("statusctl: error: GetChatServer: UNAVAILABLE: "),
        "{}",
        run.stderr
    );
}

#[test]
fn every_command_exits_3_when_no_server_listens() {
    let addr = format!("http://127.0.0.1:{}", free_port());
    for command in [
        &["get-server", "--uid", "1"][..],
        &["get-servers", "--uids", "1,2"],
        &["login", "--uid", "1", "--token", "t"],
        &["connect", "--uid", "1"],
        &["servers"],
        &["health"],
        &["reload"],
        &["drain", "chatserver1"],
        &["undrain", "chatserver1"],
        &["revoke", "--uid", "1"],
        &["bench", "--duration", "1"],
    ] {
        for json in [false, true] {
            // Both addresses lead nowhere: the Admin commands call --admin-addr.
            let mut args = vec!["--addr", &addr, "--admin-addr", &addr, "--timeout", "2"];
            if json {
                args.push("--json");
            }
            args.extend_from_slice(command);
            let run = statusctl(&args);
            run.assert_code(3);
            assert_eq!(run.stdout, "", "{command:?}: nothing on stdout");
            assert!(
                run.error_line()
                    .starts_with(&format!("statusctl: error: cannot connect to {addr}")),
                "{command:?}: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn help_of_every_command_exits_0_and_usage_errors_exit_2() {
    let run = statusctl(&["--help"]);
    run.assert_code(0);
    assert!(run.stdout.contains("Exit status"), "{}", run.stdout);
    assert!(run.stdout.contains("http://127.0.0.1:50052"));
    for command in [
        "get-server",
        "get-servers",
        "login",
        "connect",
        "servers",
        "health",
        "reload",
        "drain",
        "undrain",
        "revoke",
        "bench",
    ] {
        for flag in ["--help", "-h"] {
            let run = statusctl(&[command, flag]);
            run.assert_code(0);
            assert!(
                run.stdout.contains(&format!("Usage: statusctl {command}")),
                "{command} {flag}: {}",
                run.stdout
            );
            assert!(run.stdout.contains("Exit status"), "{command} {flag}");
        }
        statusctl(&["help", command]).assert_code(0);
    }
    assert!(
        statusctl(&["--version"])
            .assert_code(0)
            .stdout
            .contains("statusctl")
    );

    for bad in [
        &["get-server"][..],
        &["get-server", "--uid", "x"],
        &["get-servers"],
        &["get-servers", "--uids", "1,x"],
        &["--compress", "brotli", "servers"],
        &["--timeout", "0", "servers"],
        &["--addr", "ftp://secure:443", "servers"],
        &["bench", "--concurrency", "2", "--connections", "3"],
        &["bench", "--rpc", "nope"],
        &["drain"],
        &["revoke"],
        &["revoke", "--uid", "x"],
        &["--admin-addr", "ftp://secure:443", "servers"],
        &["nonsense"],
    ] {
        let run = statusctl(bad);
        run.assert_code(2);
        assert_eq!(run.stdout, "", "{bad:?}");
        run.error_line();
    }
}
