//! The JSON bodies of the HTTP/JSON port (docs/contract.md §9): the requests as they
//! decode, and the replies and refusals as they encode.
//!
//! The fields and their names are the protobuf messages' (§1), so a JSON client and a gRPC
//! client see the same call. A request body must be a JSON object with every field, each
//! of its type (`uid` an integer that fits in int32, `token` a string); fields beyond
//! those are ignored, as protobuf ignores unknown fields.

use serde::{Deserialize, Serialize};

use crate::proto::{GetChatServerRsp, LoginRsp};

/// `POST /v1/get-chat-server`.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct GetChatServerBody {
    pub uid: i32,
}

/// `POST /v1/login`.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct LoginBody {
    pub uid: i32,
    pub token: String,
}

/// Why a body is not a request.
#[derive(Debug)]
pub enum DecodeError {
    /// Valid or not, the JSON is not an object (serde would take `[42]` for `{"uid":42}`).
    NotAnObject,
    /// The JSON does not parse, or a field is missing or of the wrong type; serde_json's
    /// text, with line and column.
    Json(serde_json::Error),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NotAnObject => f.write_str("not a valid request body: not a JSON object"),
            DecodeError::Json(err) => write!(f, "not a valid request body: {err}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a request body of type `T`, which must be a JSON object.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    // JSON's whitespace is exactly these four bytes.
    let first = body
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(DecodeError::NotAnObject);
    }
    serde_json::from_slice(body).map_err(DecodeError::Json)
}

#[derive(Serialize)]
struct GetChatServerReply<'a> {
    error: i32,
    host: &'a str,
    port: &'a str,
    token: &'a str,
}

#[derive(Serialize)]
struct LoginReply<'a> {
    error: i32,
    uid: i32,
    token: &'a str,
}

#[derive(Serialize)]
struct Message<'a> {
    message: &'a str,
}

fn encode(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("a struct of strings and integers always encodes")
}

/// `{"error":0,"host":"..","port":"..","token":".."}`
pub fn get_chat_server_reply(reply: &GetChatServerRsp) -> Vec<u8> {
    encode(&GetChatServerReply {
        error: reply.error,
        host: &reply.host,
        port: &reply.port,
        token: &reply.token,
    })
}

/// `{"error":0,"uid":42,"token":".."}`
pub fn login_reply(reply: &LoginRsp) -> Vec<u8> {
    encode(&LoginReply {
        error: reply.error,
        uid: reply.uid,
        token: &reply.token,
    })
}

/// `{"message":".."}`: the body of every answer that is not a reply.
pub fn message(text: &str) -> Vec<u8> {
    encode(&Message { message: text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replies_have_the_contract_fields_in_order() {
        let reply = GetChatServerRsp {
            error: 0,
            host: "10.0.0.1".into(),
            port: "8090".into(),
            token: "t\"k".into(),
        };
        assert_eq!(
            String::from_utf8(get_chat_server_reply(&reply)).expect("JSON is UTF-8"),
            r#"{"error":0,"host":"10.0.0.1","port":"8090","token":"t\"k"}"#
        );
        let reply = LoginRsp {
            error: 1010,
            uid: 0,
            token: String::new(),
        };
        assert_eq!(
            String::from_utf8(login_reply(&reply)).expect("JSON is UTF-8"),
            r#"{"error":1010,"uid":0,"token":""}"#
        );
        assert_eq!(message("no"), br#"{"message":"no"}"#);
    }

    #[test]
    fn wrong_types_missing_fields_and_bad_json_are_refused() {
        for body in [
            "",
            "{",
            "null",
            "[42]",
            " \n[42, \"t\"]",
            "{}",
            r#"{"uid":"42"}"#,
            r#"{"uid":42.5}"#,
            r#"{"uid":2147483648}"#,
            r#"{"uid":null}"#,
            r#"{"uid":1,"uid":2}"#,
            "{\"uid\":1}\u{0}",
        ] {
            assert!(
                decode::<GetChatServerBody>(body.as_bytes()).is_err(),
                "{body:?} was accepted"
            );
        }
        for body in [
            r#"{"uid":42}"#,
            r#"{"uid":42,"token":7}"#,
            r#"{"uid":42,"token":"\ud800"}"#,
        ] {
            assert!(decode::<LoginBody>(body.as_bytes()).is_err(), "{body:?}");
        }
    }

    #[test]
    fn valid_bodies_decode_and_extra_fields_are_ignored() {
        assert_eq!(
            decode::<GetChatServerBody>(br#" {"uid": -7, "trace": [1]} "#).expect("valid"),
            GetChatServerBody { uid: -7 }
        );
        assert_eq!(
            decode::<LoginBody>(br#"{"token":"a\u00e9","uid":42}"#).expect("valid"),
            LoginBody {
                uid: 42,
                token: "a\u{e9}".into()
            }
        );
    }

    proptest! {
        /// Any bytes: a request or an error, never a panic; a uid and token written as
        /// JSON always come back as they were.
        #[test]
        fn decoding_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<GetChatServerBody>(&body);
            let _ = decode::<LoginBody>(&body);
        }

        #[test]
        fn encoded_requests_round_trip(uid in any::<i32>(), token in ".{0,64}") {
            let body = serde_json::json!({ "uid": uid, "token": token }).to_string();
            let decoded = decode::<LoginBody>(body.as_bytes()).expect("valid request");
            prop_assert_eq!(decoded, LoginBody { uid, token });
        }
    }
}
