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

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::Stream;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::silent_connections::SilentUntilDrain;
use crate::accept_errors::AcceptErrors;
use crate::drain::DrainSignal;

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
            // Replies are small and awaited: send each at once.
            if let Err(err) = stream.set_nodelay(true) {
                log::debug!("gRPC connection: cannot set TCP_NODELAY: {err}");
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
