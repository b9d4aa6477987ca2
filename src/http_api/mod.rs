//! The HTTP/JSON port on `server.http_listen` (docs/contract.md §9):
//! `POST /v1/get-chat-server` and `POST /v1/login`, the same calls as the gRPC port's
//! ([`crate::calls`]), as JSON over HTTP/1.1 with keep-alive; only over TLS when
//! `[server.tls]` is set (§6), with the gRPC port's certificates, the handshake bounded by
//! [`HANDSHAKE_TIMEOUT`] in the connection's own task.
//!
//! [`routes`] turns a request into its answer, [`json`] holds the bodies; this file is
//! the listener and its bounds:
//! - a request's header must arrive within [`HEADER_READ_TIMEOUT`] and fit in
//!   [`MAX_HEADER_BYTES`]; the same timeout closes a keep-alive connection left idle;
//! - a body is read through a 64 KiB limit within [`routes::BODY_READ_DEADLINE`];
//! - at most [`MAX_CONNECTIONS`] connections are open (fewer when the open-file limit cannot
//!   hold them: `fd_budget`); further ones wait in the listen backlog until one closes.
//!   HTTP/1.1 carries one request at a time per connection, so this also bounds the
//!   requests in flight, as the gRPC port's in-flight limit does.
//!
//! On drain the listener closes at once, idle connections close, and requests in flight
//! run to their answer (sent with `Connection: close`); [`serve`] returns once the last
//! connection has ended, so the server loop bounds it by `shutdown_grace_ms` as it does
//! the gRPC port. Dropping it cuts off the connections still open.

mod json;
mod routes;

use std::convert::Infallible;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::accept_errors::AcceptErrors;
use crate::calls::StatusCalls;
use crate::drain::DrainSignal;
use crate::grpc::connections::HANDSHAKE_TIMEOUT;
use crate::tls::{Port, TlsAcceptor};

/// Connections open at once, unless the open-file limit lowers it (`fd_budget`). Each
/// costs a task and its buffers (a few tens of KiB at most), so memory stays far below
/// 200 MiB even at the cap; far above the few hundred in flight that 2 cores serve well.
pub const MAX_CONNECTIONS: usize = 4096;

/// How long a request's header may take to arrive, counted from the end of the previous
/// request on a keep-alive connection; slow or idle clients are closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request header; real ones are a few hundred bytes (hyper answers 431 beyond).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Serves until draining starts, then until the last connection has ended, with at most
/// `max_connections` open. With `tls`, every connection must handshake first.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    calls: StatusCalls,
    max_connections: usize,
    drain: DrainSignal,
) {
    let drain_started = drain.clone().started();
    tokio::pin!(drain_started);
    let mut connections = JoinSet::new();
    let mut accept_errors = AcceptErrors::new("HTTP/JSON listener");
    loop {
        let stream = tokio::select! {
            () = &mut drain_started => break,
            Some(ended) = connections.join_next() => {
                if let Err(err) = ended {
                    log::error!("HTTP/JSON connection task failed: {err}");
                }
                continue;
            }
            accepted = listener.accept(), if connections.len() < max_connections => {
                match accepted {
                    Ok((stream, _peer)) => {
                        accept_errors.accepted();
                        stream
                    }
                    Err(err) => {
                        accept_errors.failed(&err).await;
                        continue;
                    }
                }
            }
        };
        // Replies are small and awaited: send each at once.
        if let Err(err) = stream.set_nodelay(true) {
            log::debug!("HTTP/JSON connection: cannot set TCP_NODELAY: {err}");
        }
        let (calls, drain) = (calls.clone(), drain.clone());
        match &tls {
            None => connections.spawn(serve_connection(stream, calls, drain)),
            Some(tls) => connections.spawn(handshake_then_serve(
                tls.current(Port::Http),
                stream,
                calls,
                drain,
            )),
        };
    }
    drop(listener);
    while let Some(ended) = connections.join_next().await {
        if let Err(err) = ended {
            log::error!("HTTP/JSON connection task failed: {err}");
        }
    }
}

/// The TLS handshake (given up when it outlasts its timeout or draining starts), then
/// the connection.
async fn handshake_then_serve(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    calls: StatusCalls,
    drain: DrainSignal,
) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let session = tokio::select! {
        done = handshake => done,
        () = drain.clone().started() => return,
    };
    match session {
        Ok(Ok(session)) => serve_connection(session, calls, drain).await,
        Ok(Err(err)) => log::debug!("HTTP/JSON connection: TLS handshake failed: {err}"),
        Err(_) => log::debug!("HTTP/JSON connection: TLS handshake timed out"),
    }
}

/// One connection, until the client closes it, a bound ends it, or draining does.
async fn serve_connection<S>(stream: S, calls: StatusCalls, drain: DrainSignal)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let calls = calls.clone();
        async move { Ok::<_, Infallible>(routes::respond(&calls, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let drain_started = drain.started();
    tokio::pin!(drain_started);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = &mut drain_started => {
            // Closes an idle connection now, a busy one after its answer.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = served {
        log::debug!("HTTP/JSON connection: {err}");
    }
}
