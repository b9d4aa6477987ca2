//! `connect`: a user's whole login flow through a ChatServer (the stand-in, or a scripted one).

use super::*;

/// The load a ChatServer published (`HGET logincount <name>`).
async fn published_load(redis: &RedisServer, name: &str) -> Option<String> {
    redis
        .query(redis::cmd("HGET").arg("logincount").arg(name))
        .await
}

#[tokio::test]
async fn connect_runs_the_login_flow_through_a_chat_server() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;
    let _chat = StandInChatServer::start("chatserver1", port, &redis, Some(server.addr));

    let run = ctl(&server, &["connect", "--uid", "43"]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    let fields = run.fields();
    assert_eq!(fields["uid"], "43");
    assert_eq!(fields["chat server"], format!("127.0.0.1:{port}"));
    assert_eq!(fields["reply"], "OK");
    let token = redis.stored_token(43).await.expect("a token was stored");
    assert_eq!(fields["token prefix"], token[..LOGGED_TOKEN_PREFIX]);

    let run = ctl(&server, &["--json", "connect", "--uid", "44"]);
    run.assert_code(0);
    let reply = run.json();
    assert_eq!(reply["uid"], 44);
    assert_eq!(reply["host"], "127.0.0.1");
    assert_eq!(reply["port"], port);
    assert_eq!(reply["reply"], "OK");
    let token = redis.stored_token(44).await.expect("a token was stored");
    assert_eq!(reply["token_prefix"], &token[..LOGGED_TOKEN_PREFIX]);
    assert!(
        !run.stdout.contains(&token),
        "the whole token is never shown"
    );

    // GetChatServer refuses: no chat server is contacted, nothing on stdout.
    let run = ctl(&server, &["--json", "connect", "--uid", "0"]);
    run.assert_code(1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        "statusctl: error: GetChatServer answered error 1011 (uid invalid)"
    );
}

#[tokio::test]
async fn connect_hold_keeps_the_user_counted_until_ctrl_c() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;
    let _chat = StandInChatServer::start("chatserver1", port, &redis, Some(server.addr));

    let addr = format!("http://{}", server.addr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_statusctl"))
        .args([
            "--addr", &addr, "--json", "connect", "--uid", "45", "--hold",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning statusctl");
    let stdout = child.stdout.take().expect("stdout was piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).unwrap_or_default();
    let reply: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the reply line is not JSON ({e}): {line:?}"));
    assert_eq!(reply["reply"], "OK");

    eventually(
        "the held connection to count in the ChatServer's load",
        || {
            let load = published_load(&redis, "chatserver1");
            async move { (load.await.as_deref() == Some("1")).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        child.try_wait().expect("polling statusctl"),
        None,
        "still holding"
    );

    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(interrupt.success(), "kill -INT failed");
    let status = eventually("statusctl to exit after Ctrl-C", || {
        let status = child.try_wait().expect("waiting for statusctl");
        async move { status }
    })
    .await;
    assert_eq!(status.code(), Some(0), "Ctrl-C ends a hold successfully");
    eventually(
        "the closed connection to leave the ChatServer's load",
        || {
            let load = published_load(&redis, "chatserver1");
            async move { (load.await.as_deref() == Some("0")).then_some(()) }
        },
    )
    .await;
}

/// A ChatServer on `listener` that answers each of `replies` to one connection, in turn
/// (`""`: close without a reply); returns the login lines it received.
fn scripted_chat_server(
    listener: std::net::TcpListener,
    replies: &'static [&'static str],
) -> std::thread::JoinHandle<Vec<String>> {
    use std::io::{BufRead, BufReader, Write};
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for reply in replies {
            let (stream, _) = listener.accept().expect("accepting statusctl");
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).expect("reading the login line");
            reader
                .get_mut()
                .write_all(reply.as_bytes())
                .expect("sending the reply");
            lines.push(line);
        }
        lines
    })
}

#[tokio::test]
async fn connect_exits_1_when_the_chat_server_refuses_and_3_when_it_stays_silent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a chat port");
    let port = listener.local_addr().expect("bound address").port();
    let (redis, server) = one_alive_server(port).await;
    let chat = scripted_chat_server(listener, &["ERR 1010\n", ""]);

    let run = ctl(&server, &["connect", "--uid", "46"]);
    run.assert_code(1);
    assert_eq!(run.fields()["reply"], "ERR 1010");
    assert_eq!(
        run.error_line(),
        format!(
            "statusctl: error: chat server 127.0.0.1:{port} refused the login: \
             Login answered error 1010 (token invalid)"
        )
    );

    let run = ctl(&server, &["--json", "connect", "--uid", "47"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "", "no reply, no JSON");
    assert!(
        run.error_line()
            .ends_with("closed the connection without a reply"),
        "{}",
        run.stderr
    );

    // The login line is `<uid> <token>` with the token just stored.
    let lines = chat.join().expect("the scripted chat server");
    for (line, uid) in lines.iter().zip([46, 47]) {
        let token = redis.stored_token(uid).await.expect("a token was stored");
        assert_eq!(*line, format!("{uid} {token}\n"));
    }
}

#[tokio::test]
async fn connect_exits_3_when_the_chat_server_cannot_check_the_token_or_is_down() {
    let port = free_port();
    let (redis, server) = one_alive_server(port).await;
    // This ChatServer's Login calls go nowhere.
    let _chat = StandInChatServer::start("chatserver1", port, &redis, None);
    let run = ctl(&server, &["connect", "--uid", "48"]);
    run.assert_code(3);
    assert!(
        run.fields()["reply"].starts_with("ERR unavailable"),
        "{}",
        run.stdout
    );
    assert!(
        run.error_line().starts_with(&format!(
            "statusctl: error: chat server 127.0.0.1:{port} could not check the token: "
        )),
        "{}",
        run.stderr
    );

    // Alive in the load hash, but nobody listens on its port.
    let down = free_port();
    let (_redis, server) = one_alive_server(down).await;
    let run = ctl(&server, &["connect", "--uid", "49"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "");
    assert!(
        run.error_line().starts_with(&format!(
            "statusctl: error: cannot connect to chat server 127.0.0.1:{down}: "
        )),
        "{}",
        run.stderr
    );
}
