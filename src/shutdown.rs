//! The shutdown signal: SIGTERM or SIGINT, as operators send them.
//!
//! Handlers are installed at start-up, before anything slow runs, so a signal
//! that arrives early is not lost and never kills the process half-way.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Both stop signals, installed once and awaited as often as needed.
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    pub fn install() -> std::io::Result<Self> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and says which it was.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
