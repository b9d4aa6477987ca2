//! The gRPC port's accepted connections: plaintext, or TLS when `[server.tls]` is set
//! (docs/contract.md §6), each wrapped in [`SilentUntilDrain`] under the TLS layer so that a
//! peer that never spoke (not even a ClientHello) still ends at drain time.
//!
//! TLS handshakes run each in a task of its own: done in the accept loop, one slow or silent
//! client would hold every other one at the door. A handshake that does not finish within
//! [`HANDSHAKE_TIMEOUT`] or fails (plaintext, no client certificate under mTLS, a foreign CA)
//! closes that connection and is logged at debug level: it is the client's problem, and an
//! attacker must not be able to fill the log.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::connection_cap::admitted;
use super::silent_connections::SilentUntilDrain;
use crate::drain::DrainSignal;
use crate::tls::{Port, TlsAcceptor};

/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for tonic to take them.
const READY_QUEUE: usize = 64;

/// One accepted connection, as tonic reads it.
pub enum Connection {
    Plain(SilentUntilDrain),
    // Boxed: a TLS session is a few KiB, a plain socket a few words.
    Tls(Box<tokio_rustls::server::TlsStream<SilentUntilDrain>>),
}

/// The connections accepted on `listener` (at most `max_connections` open), until drain
/// starts.
pub fn incoming(
    listener: TcpListener,
    max_connections: usize,
    tls: Option<TlsAcceptor>,
    drain: DrainSignal,
) -> Pin<Box<dyn Stream<Item = io::Result<Connection>> + Send>> {
    // Under the connection cap, accept errors backed off: see `connection_cap`.
    let accepted = admitted(listener, max_connections, drain.clone())
        .map(|admitted| admitted.map_err(|never| match never {}));
    let Some(tls) = tls else {
        return Box::pin(accepted.map(|stream| stream.map(Connection::Plain)));
    };
    let (ready, mut handshaken) = mpsc::channel(READY_QUEUE);
    tokio::spawn(accept_tls(Box::pin(accepted), tls, ready, drain));
    Box::pin(futures_util::stream::poll_fn(move |cx| {
        handshaken.poll_recv(cx)
    }))
}

/// Accepts until drain starts or tonic stops taking connections, handshaking each in a task.
async fn accept_tls(
    mut accepted: Pin<Box<dyn Stream<Item = io::Result<SilentUntilDrain>> + Send>>,
    tls: TlsAcceptor,
    ready: mpsc::Sender<io::Result<Connection>>,
    drain: DrainSignal,
) {
    let drain_started = drain.started();
    tokio::pin!(drain_started);
    loop {
        let stream = tokio::select! {
            () = &mut drain_started => return,
            () = ready.closed() => return,
            next = accepted.next() => match next {
                None => return,
                Some(Err(err)) => {
                    // Handed on: tonic logs accept errors and goes on.
                    if ready.send(Err(err)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Ok(stream)) => stream,
            },
        };
        let acceptor = tls.current(Port::Grpc);
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(session)) => {
                    let _ = ready.send(Ok(Connection::Tls(Box::new(session)))).await;
                }
                Ok(Err(err)) => log::debug!("TLS handshake failed: {err}"),
                Err(_) => log::debug!(
                    "TLS handshake not done within {} s: closed",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            }
        });
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(stream) => stream.is_write_vectored(),
            Connection::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            Connection::Plain(stream) => stream.connect_info(),
            Connection::Tls(stream) => stream.get_ref().0.connect_info(),
        }
    }
}
