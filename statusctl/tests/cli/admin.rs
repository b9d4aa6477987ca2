//! The Admin commands (`servers`, `health`, `reload`, `drain`, `undrain`, `revoke`) and
//! `--admin-addr`.

use super::*;

#[tokio::test]
async fn servers_lists_the_configured_chat_servers_with_their_state() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("alpha", "3")]).await;
    let (alpha, beta) = (free_port(), free_port());
    let config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("alpha", alpha),
            ChatServerEntry::new("beta", beta),
        ],
    );
    let server = TestServer::start(&config).await;

    let run = ctl(&server, &["--json", "servers"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["probing"], false);
    assert_eq!(reply["redis_ok"], true);
    let servers = reply["servers"].as_array().expect("servers is a list");
    let names: Vec<&str> = servers.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let (a, b) = (&servers[0], &servers[1]);
    assert_eq!(a["host"], "127.0.0.1");
    assert_eq!(a["port"], alpha);
    assert_eq!(a["polled_count"], 3);
    assert_eq!(a["load_field"], "count");
    assert_eq!(a["alive"], true);
    assert!(a["last_poll_unix_ms"].as_u64().expect("last poll") > 0);
    assert_eq!(b["port"], beta);
    assert_eq!(b["polled_count"], Value::Null);
    assert_eq!(b["load_field"], "missing");
    assert_eq!(b["alive"], false);

    let run = ctl(&server, &["servers"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].contains("probing: off"), "{}", run.stdout);
    assert!(lines[1].starts_with("NAME"), "{}", run.stdout);
    let alpha_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        alpha_row[..3],
        ["alpha", &format!("127.0.0.1:{alpha}"), "3"]
    );
    assert_eq!(alpha_row[5], "yes");
    let beta_row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(beta_row[..3], ["beta", &format!("127.0.0.1:{beta}"), "-"]);
    assert_eq!(beta_row[5], "no");
}

#[tokio::test]
async fn health_is_serving_while_redis_answers_and_exits_1_when_not() {
    let (mut redis, server) = one_alive_server(free_port()).await;

    let run = ctl(&server, &["health"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("message.StatusService  SERVING"),
        "{}",
        run.stdout
    );
    let run = ctl(&server, &["--json", "health"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["serving"], true);
    assert_eq!(reply["services"][""], "SERVING");
    assert_eq!(reply["services"]["message.StatusService"], "SERVING");

    // A service the server does not know is a gRPC error (NOT_FOUND).
    let run = ctl(&server, &["health", "--service", "no.such.Service"]);
    run.assert_code(3);
    assert!(run.error_line().contains("NOT_FOUND"), "{}", run.stderr);

    redis.kill();
    let run = eventually("health to report NOT_SERVING", || {
        let run = ctl(&server, &["--json", "health"]);
        async move { (run.code == 1).then_some(run) }
    })
    .await;
    let reply = run.json();
    assert_eq!(reply["serving"], false);
    assert_eq!(reply["services"]["message.StatusService"], "NOT_SERVING");
    assert!(run.error_line().contains("NOT_SERVING"));
}

#[tokio::test]
async fn reload_applies_an_edited_file_and_refuses_a_bad_one() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("alpha", "0"), ("gamma", "0")]).await;
    let mut config = TestConfig::new(&redis, vec![ChatServerEntry::new("alpha", free_port())]);
    let server = TestServer::start(&config).await;

    config
        .servers
        .push(ChatServerEntry::new("gamma", free_port()));
    server.rewrite_config(&config.to_toml());
    let run = ctl(&server, &["--json", "reload"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["applied"], true, "{reply}");
    assert_eq!(reply["restart_needed"], Value::Array(vec![]));
    let listed = ctl(&server, &["--json", "servers"]).json();
    let names: Vec<&str> = listed["servers"]
        .as_array()
        .expect("servers is a list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["alpha", "gamma"]);

    server.rewrite_config("[redis]\ntoken_ttl_secs = \"soon\"\n");
    let run = ctl(&server, &["reload"]);
    run.assert_code(1);
    let fields = run.fields();
    assert_eq!(fields["applied"], "false");
    assert!(!fields["message"].is_empty());
    assert!(
        run.error_line()
            .starts_with("statusctl: error: reload not applied: "),
        "{}",
        run.stderr
    );
    let run = ctl(&server, &["--json", "reload"]);
    run.assert_code(1);
    assert_eq!(run.json()["applied"], false);
    // The running config is kept.
    ctl(&server, &["get-server", "--uid", "1"]).assert_code(0);
}

/// `statusctl --addr <nowhere> --admin-addr http://<server> <args>`: the Admin commands
/// must use --admin-addr.
fn admin_ctl(server: &TestServer, args: &[&str]) -> Run {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let admin = format!(
        "http://{}",
        server.admin_addr.expect("the Admin port is on")
    );
    let mut all = vec!["--addr", &nowhere, "--admin-addr", &admin, "--timeout", "5"];
    all.extend_from_slice(args);
    statusctl(&all)
}

#[tokio::test]
async fn drain_and_undrain_steer_placements_and_say_who_drains() {
    let redis = RedisServer::start().await;
    set_loads(&redis, &[("alpha", "0"), ("beta", "0")]).await;
    let (alpha, beta) = (free_port(), free_port());
    let config = TestConfig::new(
        &redis,
        vec![
            ChatServerEntry::new("alpha", alpha),
            ChatServerEntry::new("beta", beta).draining(true),
        ],
    );
    let server = TestServer::start(&config).await;

    let run = admin_ctl(&server, &["drain", "alpha"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let fields = run.fields();
    assert_eq!(fields["name"], "alpha");
    assert_eq!(fields["draining"], "yes (admin)");
    // Both drain now: nobody can be placed.
    let run = ctl(&server, &["get-server", "--uid", "1"]);
    run.assert_code(3);
    assert!(
        run.error_line()
            .contains("RESOURCE_EXHAUSTED: every chat server is full or draining"),
        "{}",
        run.stderr
    );

    let run = admin_ctl(&server, &["--json", "servers"]);
    run.assert_code(0);
    let listed = run.json();
    assert_eq!(listed["strategy"], "least_loaded");
    let servers = listed["servers"].as_array().expect("servers is a list");
    assert_eq!(servers[0]["drain_from_admin"], true);
    assert_eq!(servers[0]["choosable"], false);
    assert_eq!(servers[1]["drain_from_config"], true);
    assert_eq!(servers[1]["weight"], 1);
    assert_eq!(servers[1]["max_connections"], 0);
    let run = admin_ctl(&server, &["servers"]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].ends_with("strategy: least_loaded"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].ends_with("WEIGHT  MAX-CONN  DRAINING"),
        "{}",
        run.stdout
    );
    let alpha_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(alpha_row[alpha_row.len() - 3..], ["1", "-", "admin"]);
    let beta_row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(beta_row.last(), Some(&"config"));

    let run = admin_ctl(&server, &["--json", "undrain", "alpha"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["name"], "alpha");
    assert_eq!(reply["draining"], false);
    let run = ctl(&server, &["get-server", "--uid", "2"]);
    run.assert_code(0);
    assert_eq!(run.fields()["port"], alpha.to_string());

    // The config's drain outlives an undrain: exit 1, saying why.
    let run = admin_ctl(&server, &["undrain", "beta"]);
    run.assert_code(1);
    assert_eq!(run.fields()["draining"], "yes (config)");
    assert_eq!(
        run.error_line(),
        "statusctl: error: beta still drains: its config says draining = true (edit it and reload)"
    );

    let run = admin_ctl(&server, &["drain", "gamma"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        "statusctl: error: SetDraining: NOT_FOUND: no chat server is named \"gamma\""
    );
}

#[tokio::test]
async fn revoke_deletes_the_token_so_login_answers_1011() {
    let (redis, server) = one_alive_server(free_port()).await;
    let run = ctl(&server, &["get-server", "--uid", "77"]);
    run.assert_code(0);
    let token = run.fields()["token"].clone();

    let run = admin_ctl(&server, &["revoke", "--uid", "77"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let fields = run.fields();
    assert_eq!(
        (fields["uid"].as_str(), fields["revoked"].as_str()),
        ("77", "yes")
    );
    assert_eq!(redis.stored_token(77).await, None);
    let run = ctl(&server, &["login", "--uid", "77", "--token", &token]);
    run.assert_code(1);
    assert_eq!(run.fields()["error"], "1011 (uid invalid)");

    // Nothing left: the server answered, but no.
    let run = admin_ctl(&server, &["--json", "revoke", "--uid", "77"]);
    run.assert_code(1);
    let reply = run.json();
    assert_eq!(
        (reply["uid"].as_i64(), reply["revoked"].as_bool()),
        (Some(77), Some(false))
    );
    assert_eq!(
        run.error_line(),
        "statusctl: error: no token was stored for uid 77"
    );

    let run = admin_ctl(&server, &["revoke", "--uid", "0"]);
    run.assert_code(3);
    assert_eq!(
        run.error_line(),
        "statusctl: error: RevokeToken: INVALID_ARGUMENT: uid must be positive"
    );
}

#[tokio::test]
async fn the_admin_commands_call_admin_addr_and_the_others_addr() {
    let (_redis, server) = one_alive_server(free_port()).await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let addr = format!("http://{}", server.addr);
    // The RPCs go to --addr, whatever --admin-addr says.
    let run = statusctl(&[
        "--addr",
        &addr,
        "--admin-addr",
        &nowhere,
        "get-server",
        "--uid",
        "3",
    ]);
    run.assert_code(0);
    for admin_command in [
        &["servers"][..],
        &["reload"],
        &["drain", "chatserver1"],
        &["revoke", "--uid", "3"],
    ] {
        let mut args = vec!["--addr", &addr, "--admin-addr", &nowhere, "--timeout", "2"];
        args.extend_from_slice(admin_command);
        let run = statusctl(&args);
        run.assert_code(3);
        assert!(
            run.error_line()
                .starts_with(&format!("statusctl: error: cannot connect to {nowhere}")),
            "{admin_command:?}: {}",
            run.stderr
        );
    }
}
