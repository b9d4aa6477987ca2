//! The gRPC port's accept loop: at most `server.max_connections` connections
//! open at once, and accept errors that cannot spin.
//!
//! tonic's own loop retries a failed accept at once; at the file-descriptor
//! limit that spins a core. And without a cap, enough idle connections take
//! every descriptor, so the server's probes of the chat servers fail and
//! every server looks dead. Here a connection past the cap is closed at once
//! (logged once until one is admitted again), and failed accepts are backed
//! off ([`AcceptErrors`]). Each admitted connection holds its slot until it
//! closes.
//!
//! Every admitted socket gets TCP keepalive and `TCP_USER_TIMEOUT` ([`tune`]): a peer
//! whose host vanished (no FIN, no RST: a crash, a cut cable, a NAT entry gone) is found
//! [`DEAD_PEER_AFTER`] later, idle or with replies stuck unacknowledged, and its
//! connection closed, so it does not hold a slot forever. The kernel does this at no
//! cost per call.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::silent_connections::SilentUntilDrain;
use crate::accept_errors::AcceptErrors;
use crate::drain::DrainSignal;

/// Idle time before the first keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Time between unanswered keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Unanswered probes after which the kernel closes the connection.
const KEEPALIVE_PROBES: u32 = 2;

/// How long a dead peer's connection lives: idle, the probes' time; with data sent and
/// not acknowledged, the same bound (`TCP_USER_TIMEOUT`), not the kernel's ~15 minutes of
/// retransmissions.
const DEAD_PEER_AFTER: Duration = Duration::from_secs(50);

/// Sets the socket options of an admitted connection: replies are small and awaited, so
/// each is sent at once (`TCP_NODELAY`), and dead peers are found (module doc).
fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let socket = SockRef::from(stream);
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(DEAD_PEER_AFTER))
}

/// What the loop carries from one accepted connection to the next.
struct AcceptLoop {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_connections: usize,
    errors: AcceptErrors,
    /// Connections closed since the cap was reached.
    refused: u64,
    drain: DrainSignal,
}

impl AcceptLoop {
    /// The next connection admitted under the cap.
    async fn next(&mut self) -> SilentUntilDrain {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    self.errors.failed(&err).await;
                    continue;
                }
            };
            self.errors.accepted();
            let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                if self.refused == 0 {
                    log::warn!(
                        "gRPC listener: {} connections open (server.max_connections); \
                         closing new ones until one ends",
                        self.max_connections
                    );
                }
                self.refused += 1;
                drop(stream);
                continue;
            };
            if self.refused > 0 {
                log::info!(
                    "gRPC listener: admitting connections again; {} were closed at the cap",
                    self.refused
                );
                self.refused = 0;
            }
            if let Err(err) = tune(&stream) {
                log::debug!("gRPC connection: cannot set its socket options: {err}");
            }
            return SilentUntilDrain::new(stream, slot, self.drain.clone());
        }
    }
}

/// The connections `listener` accepts, at most `max_connections` open at once.
pub fn admitted(
    listener: TcpListener,
    max_connections: usize,
    drain: DrainSignal,
) -> impl Stream<Item = Result<SilentUntilDrain, Infallible>> {
    let state = AcceptLoop {
        listener,
        slots: Arc::new(Semaphore::new(max_connections)),
        max_connections,
        errors: AcceptErrors::new("gRPC listener"),
        refused: 0,
        drain,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        let connection = state.next().await;
        Some((Ok(connection), state))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admitted_sockets_find_dead_peers_within_the_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("bound");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let _client = client.expect("connect");
        let (stream, _) = accepted.expect("accept");
        tune(&stream).expect("options set");

        let socket = SockRef::from(&stream);
        assert!(stream.nodelay().expect("read TCP_NODELAY"));
        assert!(socket.keepalive().expect("read SO_KEEPALIVE"));
        assert_eq!(socket.tcp_keepalive_time().expect("read"), KEEPALIVE_IDLE);
        assert_eq!(
            socket.tcp_keepalive_interval().expect("read"),
            KEEPALIVE_INTERVAL
        );
        assert_eq!(
            socket.tcp_keepalive_retries().expect("read"),
            KEEPALIVE_PROBES
        );
        assert_eq!(
            socket.tcp_user_timeout().expect("read"),
            Some(DEAD_PEER_AFTER)
        );
        // An idle dead peer is closed after the idle time and the unanswered probes.
        assert_eq!(
            KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES,
            DEAD_PEER_AFTER
        );
    }
}
