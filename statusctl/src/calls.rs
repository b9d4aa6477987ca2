//! `get-server` and `login`: one call of the deployed `message.StatusService`, its reply
//! printed as `key: value` lines or as a JSON object with the reply's fields; and
//! `get-servers`: one `statusbatch.v1.Batch/GetChatServers` call, a table row (or JSON
//! object) per uid.
//!
//! The reply is printed whatever its `error`; a business error (`error != 0`) then also
//! prints `statusctl: error: ...` on stderr and exits 1.

use serde::Serialize;
use status_server::batch_proto::GetChatServersReq;
use status_server::batch_proto::batch_client::BatchClient;
use status_server::contract::error_code;
use status_server::proto::status_service_client::StatusServiceClient;
use status_server::proto::{GetChatServerReq, LoginReq};

use crate::failure::{Failure, check_business, describe_code};
use crate::output;
use crate::target::Target;

/// A GetChatServer reply (`port` stays the decimal string the wire carries).
#[derive(Serialize)]
struct ServerReply {
    error: i32,
    host: String,
    port: String,
    token: String,
}

/// One item of a GetChatServers reply, with the uid it answers.
#[derive(Serialize)]
struct BatchItem {
    uid: i32,
    #[serde(flatten)]
    reply: ServerReply,
}

/// A Login reply.
#[derive(Serialize)]
struct LoginReply {
    error: i32,
    uid: i32,
    token: String,
}

/// `0`, or the code with its meaning: `1011 (uid invalid)`.
fn error_text(code: i32) -> String {
    if code == error_code::SUCCESS {
        code.to_string()
    } else {
        describe_code(code)
    }
}

pub async fn get_server(target: &Target, json: bool, uid: i32) -> Result<(), Failure> {
    let mut client = crate::client!(target, StatusServiceClient, target.connect().await?);
    let rsp = client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .map_err(|status| Failure::grpc("GetChatServer", &status))?
        .into_inner();
    let reply = ServerReply {
        error: rsp.error,
        host: rsp.host,
        port: rsp.port,
        token: rsp.token,
    };
    if json {
        output::json(&reply);
    } else {
        output::emit(&output::fields(&[
            ("error", error_text(reply.error)),
            ("host", reply.host.clone()),
            ("port", reply.port.clone()),
            ("token", reply.token.clone()),
        ]));
    }
    check_business("GetChatServer", reply.error)
}

pub async fn get_servers(target: &Target, json: bool, uids: Vec<i32>) -> Result<(), Failure> {
    let mut client = crate::client!(target, BatchClient, target.connect().await?);
    let results = client
        .get_chat_servers(GetChatServersReq { uids: uids.clone() })
        .await
        .map_err(|status| Failure::grpc("GetChatServers", &status))?
        .into_inner()
        .results;
    let items: Vec<BatchItem> = uids
        .into_iter()
        .zip(results)
        .map(|(uid, rsp)| BatchItem {
            uid,
            reply: ServerReply {
                error: rsp.error,
                host: rsp.host,
                port: rsp.port,
                token: rsp.token,
            },
        })
        .collect();
    if json {
        output::json(&items);
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| {
                vec![
                    item.uid.to_string(),
                    error_text(item.reply.error),
                    item.reply.host.clone(),
                    item.reply.port.clone(),
                    item.reply.token.clone(),
                ]
            })
            .collect();
        output::emit(&output::table(
            &["UID", "ERROR", "HOST", "PORT", "TOKEN"],
            &rows,
        ));
    }
    match items
        .iter()
        .find(|item| item.reply.error != error_code::SUCCESS)
    {
        Some(item) => check_business(
            &format!("GetChatServers (uid {})", item.uid),
            item.reply.error,
        ),
        None => Ok(()),
    }
}

pub async fn login(target: &Target, json: bool, uid: i32, token: String) -> Result<(), Failure> {
    let mut client = crate::client!(target, StatusServiceClient, target.connect().await?);
    let rsp = client
        .login(LoginReq { uid, token })
        .await
        .map_err(|status| Failure::grpc("Login", &status))?
        .into_inner();
    let reply = LoginReply {
        error: rsp.error,
        uid: rsp.uid,
        token: rsp.token,
    };
    if json {
        output::json(&reply);
    } else {
        output::emit(&output::fields(&[
            ("error", error_text(reply.error)),
            ("uid", reply.uid.to_string()),
            ("token", reply.token.clone()),
        ]));
    }
    check_business("Login", reply.error)
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn error_codes_carry_their_meaning() {
        assert_eq!(error_text(0), "0");
        assert_eq!(error_text(1011), "1011 (uid invalid)");
        assert_eq!(error_text(1010), "1010 (token invalid)");
        assert_eq!(error_text(5), "5");
    }
}
