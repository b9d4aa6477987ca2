//! Accepted connections that end if they never spoke: at drain time, or
//! once their handshake deadline has passed.
//!
//! tonic's graceful shutdown sends GOAWAY and waits for every connection to
//! close, but a connection that never sent the HTTP/2 preface cannot be told
//! to go away: it would hold the drain open until `shutdown_grace_ms` and
//! turn a clean stop into exit 1. And a peer that connects and says nothing
//! would hold a connection slot (and a file descriptor) forever.
//! [`SilentUntilDrain`] wraps each accepted socket and reports end-of-stream
//! to the server once draining starts, or [`HANDSHAKE_DEADLINE`] after the
//! accept, if the peer has not sent a preface's worth of bytes yet.
//! Connections that have spoken are untouched: they get GOAWAY and finish
//! their requests as usual. Each holds its slot under `server.max_connections`
//! until it is dropped.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Duration, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::drain::DrainSignal;

/// Completes once draining has started.
type DrainStarted = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long a connection may take to send the HTTP/2 preface.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Bytes a peer has to send to count as having spoken: the HTTP/2 client
/// preface's length, so a peer that sends a byte and stalls is still silent.
const PREFACE_BYTES: usize = 24;

/// An accepted socket that reads as closed at drain time or past its
/// handshake deadline if it never spoke.
pub struct SilentUntilDrain {
    inner: TcpStream,
    /// Bytes the peer has sent, counted up to [`PREFACE_BYTES`].
    heard: usize,
    /// `None` once draining was seen (a finished future must not be polled).
    drain_started: Option<DrainStarted>,
    /// When a silent peer's connection ends.
    handshake_deadline: Pin<Box<Sleep>>,
    /// This connection's place under `server.max_connections`, freed on drop.
    _slot: OwnedSemaphorePermit,
}

impl SilentUntilDrain {
    pub fn new(inner: TcpStream, slot: OwnedSemaphorePermit, drain: DrainSignal) -> Self {
        let drain_started = Box::pin(drain.started());
        SilentUntilDrain {
            inner,
            heard: 0,
            drain_started: Some(drain_started),
            handshake_deadline: Box::pin(tokio::time::sleep(HANDSHAKE_DEADLINE)),
            _slot: slot,
        }
    }

    fn spoke(&self) -> bool {
        self.heard >= PREFACE_BYTES
    }
}

impl AsyncRead for SilentUntilDrain {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.spoke() {
            if this.handshake_deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            match this.drain_started.as_mut() {
                // Draining started before the peer said anything: end of stream.
                None => return Poll::Ready(Ok(())),
                Some(started) => {
                    if started.as_mut().poll(cx).is_ready() {
                        this.drain_started = None;
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
        let filled = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.heard = this
            .heard
            .saturating_add(buf.filled().len() - filled)
            .min(PREFACE_BYTES);
        if this.spoke() {
            // No need to watch the drain any more.
            this.drain_started = None;
        }
        read
    }
}

impl AsyncWrite for SilentUntilDrain {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connected for SilentUntilDrain {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain::drain_channel;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn slot() -> OwnedSemaphorePermit {
        std::sync::Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("a fresh semaphore has a permit")
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    #[tokio::test]
    async fn silent_peer_reads_as_closed_once_draining() {
        let (_client, server) = pair().await;
        let (drain, draining) = drain_channel();
        let mut stream = SilentUntilDrain::new(server, slot(), draining);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            stream.read(&mut buf).await.expect("read")
        });
        drain.start();
        assert_eq!(reader.await.expect("reader task"), 0, "end of stream");
    }

    #[tokio::test]
    async fn a_peer_that_spoke_keeps_its_connection_through_the_drain() {
        let (mut client, server) = pair().await;
        let (drain, draining) = drain_channel();
        let mut stream = SilentUntilDrain::new(server, slot(), draining);
        let preface = [b'P'; PREFACE_BYTES];
        client.write_all(&preface).await.expect("write");
        let mut buf = [0u8; PREFACE_BYTES];
        stream.read_exact(&mut buf).await.expect("first bytes");
        drain.start();
        client.write_all(b"more").await.expect("write");
        let mut more = [0u8; 4];
        stream
            .read_exact(&mut more)
            .await
            .expect("read after drain");
        assert_eq!(&more, b"more");
    }

    #[tokio::test]
    async fn a_peer_that_stalls_before_its_preface_reads_as_closed_at_the_deadline() {
        let (mut client, server) = pair().await;
        let (_drain, draining) = drain_channel();
        let mut stream = SilentUntilDrain::new(server, slot(), draining);
        client.write_all(b"PRI").await.expect("write");
        let mut buf = [0u8; 16];
        assert_eq!(stream.read(&mut buf).await.expect("read"), 3);
        let started = tokio::time::Instant::now();
        assert_eq!(
            stream.read(&mut buf).await.expect("read"),
            0,
            "end of stream"
        );
        assert!(started.elapsed() >= HANDSHAKE_DEADLINE - Duration::from_millis(1));
    }
}
