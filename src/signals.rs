//! The signals operators send: SIGTERM or SIGINT to stop, SIGHUP to reload.
//!
//! Handlers are installed at start-up, before anything slow runs, so a signal
//! that arrives early is not lost and never kills the process half-way.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The three signals, installed once and awaited as often as needed.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next of the three.
    pub async fn next(&mut self) -> SignalEvent {
        tokio::select! {
            _ = self.term.recv() => SignalEvent::Stop("SIGTERM"),
            _ = self.int.recv() => SignalEvent::Stop("SIGINT"),
            _ = self.hup.recv() => SignalEvent::Reload,
        }
    }
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGTERM or SIGINT (named): drain and stop.
    Stop(&'static str),
    /// SIGHUP: re-read the config.
    Reload,
}
