//! `get-server` and `login`: one call of the deployed `message.StatusService`, its reply
//! printed as `key: value` lines or as a JSON object with the reply's fields.
//!
//! The reply is printed whatever its `error`; a business error (`error != 0`) then also
//! prints `statusctl: error: ...` on stderr and exits 1.

use serde::Serialize;
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
    let mut client = StatusServiceClient::new(target.connect().await?);
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

pub async fn login(target: &Target, json: bool, uid: i32, token: String) -> Result<(), Failure> {
    let mut client = StatusServiceClient::new(target.connect().await?);
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
