//! One HTTP request to one answer (docs/contract.md §9): the path and method pick the
//! call, the body is read within its bounds and decoded, the shared call runs, and its
//! reply or refusal becomes a status code with a JSON body.
//!
//! | answer | when |
//! |---|---|
//! | 200, the reply | the call answered, business errors (1010, 1011) included, as on gRPC |
//! | 503 `{"message"}` | the call refused: UNAVAILABLE |
//! | 429 `{"message"}` | the call refused: every alive chat server full or draining |
//! | 400 `{"message"}` | the body is not JSON, or a field is missing or of the wrong type |
//! | 413 `{"message"}` | the body is larger than 64 KiB (refused before it is read, when its length is declared) |
//! | 408 `{"message"}` | the body did not arrive within its deadline |
//! | 404 `{"message"}` | an unknown path |
//! | 405 `{"message"}`, `Allow: POST` | a known path with a method other than POST |

use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::json::{self, GetChatServerBody, LoginBody};
use crate::calls::{Refusal, StatusCalls};
use crate::grpc::MAX_REQUEST_BYTES;

/// How long a request's body may take to arrive once its header has.
pub const BODY_READ_DEADLINE: Duration = Duration::from_secs(10);

/// The calls, by path.
#[derive(Clone, Copy)]
enum Route {
    GetChatServer,
    Login,
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        match path {
            "/v1/get-chat-server" => Some(Route::GetChatServer),
            "/v1/login" => Some(Route::Login),
            _ => None,
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    json_response(status, json::message(text))
}

fn refused(refusal: &Refusal) -> Response<Full<Bytes>> {
    let status = match refusal {
        Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::Exhausted(_) => StatusCode::TOO_MANY_REQUESTS,
    };
    message(status, &refusal.to_string())
}

/// The answer to `request`.
pub async fn respond(calls: &StatusCalls, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(route) = Route::of(request.uri().path()) else {
        return message(
            StatusCode::NOT_FOUND,
            "no such endpoint; try POST /v1/get-chat-server or POST /v1/login",
        );
    };
    if request.method() != Method::POST {
        let mut response = message(StatusCode::METHOD_NOT_ALLOWED, "POST only");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(rejection) => return rejection,
    };
    let bad_request = |err: json::DecodeError| message(StatusCode::BAD_REQUEST, &err.to_string());
    match route {
        Route::GetChatServer => match json::decode::<GetChatServerBody>(&body) {
            Ok(GetChatServerBody { uid }) => match calls.get_chat_server(uid).await {
                Ok(reply) => json_response(StatusCode::OK, json::get_chat_server_reply(&reply)),
                Err(refusal) => refused(&refusal),
            },
            Err(err) => bad_request(err),
        },
        Route::Login => match json::decode::<LoginBody>(&body) {
            Ok(LoginBody { uid, token }) => match calls.login(uid, token).await {
                Ok(reply) => json_response(StatusCode::OK, json::login_reply(&reply)),
                Err(refusal) => refused(&refusal),
            },
            Err(err) => bad_request(err),
        },
    }
}

/// The whole body, read through a limit (never more than the limit plus one chunk is
/// buffered) and within [`BODY_READ_DEADLINE`]; or the answer that refuses it.
async fn read_body(body: Incoming) -> Result<Bytes, Response<Full<Bytes>>> {
    let too_large = || {
        message(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_REQUEST_BYTES} bytes"),
        )
    };
    // A declared length over the limit is refused without reading a byte.
    if body.size_hint().lower() > MAX_REQUEST_BYTES as u64 {
        return Err(too_large());
    }
    let collected = tokio::time::timeout(
        BODY_READ_DEADLINE,
        Limited::new(body, MAX_REQUEST_BYTES).collect(),
    )
    .await;
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(err)) => Err(message(
            StatusCode::BAD_REQUEST,
            &format!("reading the body: {err}"),
        )),
        Err(_elapsed) => Err(message(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the body did not arrive within {} s",
                BODY_READ_DEADLINE.as_secs()
            ),
        )),
    }
}
