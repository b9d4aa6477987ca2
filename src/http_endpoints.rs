//! The HTTP listener on `server.metrics_listen`: `/metrics` (Prometheus text)
//! and `/healthz` (200 or 503 with a one-line reason).
//!
//! HTTP/1.1 only, read-only, and separate from the gRPC port so it can stay
//! on a private address. It closes when the server starts draining. Accept
//! errors are backed off (`accept_errors`), and a client that does not send
//! its headers in time is dropped.

use std::convert::Infallible;
use std::sync::Arc;

use actix::Addr;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use status_actors::server_registry::ServerRegistry;
use status_actors::token_actor::TokenActor;
use tokio::net::TcpListener;

use crate::accept_errors::AcceptErrors;
use crate::drain::DrainSignal;
use crate::health::{HealthInputs, healthz};
use crate::http_api::HEADER_READ_TIMEOUT;
use crate::metrics::Metrics;

/// What the endpoints read.
#[derive(Clone)]
pub struct Endpoints {
    pub registry: Addr<ServerRegistry>,
    pub tokens: Addr<TokenActor>,
    pub metrics: Arc<Metrics>,
}

/// Serves until draining starts.
pub async fn serve(listener: TcpListener, endpoints: Endpoints, drain: DrainSignal) {
    let drain_started = drain.started();
    tokio::pin!(drain_started);
    let mut accept_errors = AcceptErrors::new("metrics listener");
    loop {
        let stream = tokio::select! {
            () = &mut drain_started => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    accept_errors.accepted();
                    stream
                }
                Err(err) => {
                    accept_errors.failed(&err).await;
                    continue;
                }
            },
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(respond(&endpoints, &request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                // A client that never finishes its headers is dropped, as on the HTTP/JSON port.
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                log::debug!("metrics connection: {err}");
            }
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn respond(endpoints: &Endpoints, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_string());
    }
    let path = request.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return text(
            StatusCode::NOT_FOUND,
            "try /metrics or /healthz\n".to_string(),
        );
    }
    let Some(inputs) = HealthInputs::ask(&endpoints.registry, &endpoints.tokens).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_string(),
        );
    };
    if path == "/healthz" {
        return match healthz(&inputs) {
            Ok(summary) => text(StatusCode::OK, summary + "\n"),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, reason + "\n"),
        };
    }
    text(
        StatusCode::OK,
        endpoints.metrics.render(&inputs.snapshot, inputs.tokens),
    )
}
