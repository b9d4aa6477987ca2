//! `connect`: a user's whole login flow, end to end. GetChatServer places the user;
//! statusctl opens a TCP connection to that ChatServer and sends the login line
//! `<uid> <token>\n`; the ChatServer checks the pair with status-server's Login RPC and
//! answers one line: `OK` (the connection stays open), or `ERR ...` and closes. The line
//! protocol is the one `examples/chatserver.rs` documents for ChatServer authors.
//!
//! With `--hold` the connection stays open after `OK`, so it counts in the ChatServer's
//! load (to watch the balancing), until Ctrl-C (exit 0) or the ChatServer closes it (exit 3).
//!
//! The output names the token only by the excerpt status-server's log shows, to find the
//! placement there.

use serde::Serialize;
use status_server::contract::{error_code, token_prefix_for_log};
use status_server::proto::GetChatServerReq;
use status_server::proto::status_service_client::StatusServiceClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::signal::unix::{SignalKind, signal};

use crate::failure::{Failure, check_business, describe_code, one_line};
use crate::output;
use crate::target::Target;

/// Longest reply line read from a ChatServer (its replies are a few words).
const MAX_REPLY: u64 = 1024;

/// A ChatServer's answer to the login line.
#[derive(Debug, PartialEq, Eq)]
enum ChatReply {
    /// `OK`: Login accepted the token; the connection stays open.
    Accepted,
    /// `ERR <code>`: Login answered this business error.
    Refused(i32),
    /// `ERR unavailable <message>`: the ChatServer's Login call itself failed.
    LoginFailed(String),
    /// `ERR malformed`: the ChatServer could not read our login line.
    Malformed,
    /// Any other line: not a ChatServer of this protocol.
    Unexpected(String),
}

impl ChatReply {
    fn parse(line: &str) -> ChatReply {
        let Some(rest) = line.strip_prefix("ERR ") else {
            return if line == "OK" {
                ChatReply::Accepted
            } else {
                ChatReply::Unexpected(line.to_string())
            };
        };
        if rest == "malformed" {
            ChatReply::Malformed
        } else if let Some(message) = rest.strip_prefix("unavailable") {
            ChatReply::LoginFailed(message.trim_start().to_string())
        } else {
            match rest.parse() {
                Ok(code) if code != error_code::SUCCESS => ChatReply::Refused(code),
                _ => ChatReply::Unexpected(line.to_string()),
            }
        }
    }

    /// `Ok` for `OK`; otherwise the failure, with the ChatServer `chat` named.
    fn into_result(self, chat: &str) -> Result<(), Failure> {
        match self {
            ChatReply::Accepted => Ok(()),
            ChatReply::Refused(code) => Err(Failure::Refused(format!(
                "chat server {chat} refused the login: Login answered error {}",
                describe_code(code)
            ))),
            ChatReply::LoginFailed(message) => Err(Failure::Unreachable(format!(
                "chat server {chat} could not check the token: {message}"
            ))),
            ChatReply::Malformed => Err(Failure::Refused(format!(
                "chat server {chat} could not read the login line"
            ))),
            ChatReply::Unexpected(line) => Err(Failure::Refused(format!(
                "chat server {chat} answered {line:?}, neither OK nor ERR"
            ))),
        }
    }
}

/// What `connect` prints.
#[derive(Serialize)]
struct ConnectOut {
    uid: i32,
    host: String,
    port: u16,
    /// The start of the token, as status-server's log shows it.
    token_prefix: String,
    /// The ChatServer's reply line.
    reply: String,
}

pub async fn run(target: &Target, json: bool, uid: i32, hold: bool) -> Result<(), Failure> {
    let mut client = crate::client!(target, StatusServiceClient, target.connect().await?);
    let placed = client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .map_err(|status| Failure::grpc("GetChatServer", &status))?
        .into_inner();
    check_business("GetChatServer", placed.error)?;
    let port: u16 = placed.port.parse().map_err(|_| {
        Failure::Refused(format!(
            "GetChatServer answered the port {:?}, not a TCP port",
            placed.port
        ))
    })?;
    let chat = format!("{}:{port}", placed.host);

    let stream = match tokio::time::timeout(
        target.timeout,
        TcpStream::connect((placed.host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            return Err(Failure::Unreachable(format!(
                "cannot connect to chat server {chat}: {err}"
            )));
        }
        Err(_) => {
            return Err(Failure::Unreachable(format!(
                "cannot connect to chat server {chat}: no answer within {:?}",
                target.timeout
            )));
        }
    };
    let mut chat_conn = BufReader::new(stream);
    chat_conn
        .get_mut()
        .write_all(format!("{uid} {}\n", placed.token).as_bytes())
        .await
        .map_err(|err| {
            Failure::Unreachable(format!("cannot send the login line to {chat}: {err}"))
        })?;
    let reply = read_reply(&mut chat_conn, &chat, target).await?;

    // Registered before the output appears, so a Ctrl-C sent once the reply is seen
    // always finds the handler.
    let mut interrupt = if hold {
        Some(
            signal(SignalKind::interrupt())
                .map_err(|err| Failure::Unreachable(format!("cannot wait for Ctrl-C: {err}")))?,
        )
    } else {
        None
    };
    let out = ConnectOut {
        uid,
        host: placed.host,
        port,
        token_prefix: token_prefix_for_log(&placed.token).to_string(),
        reply,
    };
    if json {
        output::json(&out);
    } else {
        output::emit(&output::fields(&[
            ("uid", out.uid.to_string()),
            ("chat server", chat.clone()),
            ("token prefix", out.token_prefix.clone()),
            ("reply", out.reply.clone()),
        ]));
    }
    ChatReply::parse(&out.reply).into_result(&chat)?;

    let Some(interrupt) = interrupt.as_mut() else {
        return Ok(());
    };
    let mut discard = tokio::io::sink();
    tokio::select! {
        _ = interrupt.recv() => Ok(()),
        // The ChatServer sends nothing after OK; reading only notices the close.
        read = tokio::io::copy(&mut chat_conn, &mut discard) => {
            Err(Failure::Unreachable(match read {
                Ok(_) => format!("chat server {chat} closed the connection"),
                Err(err) => format!("lost the connection to chat server {chat}: {err}"),
            }))
        }
    }
}

/// The ChatServer's reply line, without its line break, within the timeout.
async fn read_reply(
    chat_conn: &mut BufReader<TcpStream>,
    chat: &str,
    target: &Target,
) -> Result<String, Failure> {
    let mut line = Vec::new();
    let mut limited = chat_conn.take(MAX_REPLY);
    let read = limited.read_until(b'\n', &mut line);
    match tokio::time::timeout(target.timeout, read).await {
        Ok(Ok(_)) if line.is_empty() => Err(Failure::Unreachable(format!(
            "chat server {chat} closed the connection without a reply"
        ))),
        Ok(Ok(_)) => Ok(one_line(&String::from_utf8_lossy(&line))),
        Ok(Err(err)) => Err(Failure::Unreachable(format!(
            "cannot read the reply of chat server {chat}: {err}"
        ))),
        Err(_) => Err(Failure::Unreachable(format!(
            "chat server {chat} sent no reply within {:?}",
            target.timeout
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_server_replies_parse() {
        assert_eq!(ChatReply::parse("OK"), ChatReply::Accepted);
        assert_eq!(ChatReply::parse("ERR 1010"), ChatReply::Refused(1010));
        assert_eq!(ChatReply::parse("ERR 1011"), ChatReply::Refused(1011));
        assert_eq!(
            ChatReply::parse("ERR unavailable transport error: connection refused"),
            ChatReply::LoginFailed("transport error: connection refused".into())
        );
        assert_eq!(
            ChatReply::parse("ERR unavailable"),
            ChatReply::LoginFailed(String::new())
        );
        assert_eq!(ChatReply::parse("ERR malformed"), ChatReply::Malformed);
        for odd in ["ok", "ERR", "ERR 0", "ERR later", "HELLO", ""] {
            assert_eq!(
                ChatReply::parse(odd),
                ChatReply::Unexpected(odd.into()),
                "{odd:?}"
            );
        }
    }

    #[test]
    fn refusals_exit_1_and_login_failures_exit_3() {
        let chat = "127.0.0.1:8090";
        assert!(ChatReply::Accepted.into_result(chat).is_ok());
        let refused = ChatReply::Refused(1010).into_result(chat).unwrap_err();
        assert_eq!(refused.exit_code(), crate::failure::EXIT_REFUSED);
        assert_eq!(
            refused.to_string(),
            "chat server 127.0.0.1:8090 refused the login: Login answered error 1010 (token invalid)"
        );
        let failed = ChatReply::LoginFailed("no route".into())
            .into_result(chat)
            .unwrap_err();
        assert_eq!(failed.exit_code(), crate::failure::EXIT_UNREACHABLE);
        assert_eq!(
            failed.to_string(),
            "chat server 127.0.0.1:8090 could not check the token: no route"
        );
        for refusal in [ChatReply::Malformed, ChatReply::Unexpected("HELLO".into())] {
            let failure = refusal.into_result(chat).unwrap_err();
            assert_eq!(failure.exit_code(), crate::failure::EXIT_REFUSED);
        }
    }
}
