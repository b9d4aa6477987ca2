//! The signals operators send, turned into the server's control events:
//! SIGTERM or SIGINT to stop, SIGHUP to reload. Part of the binary only; the
//! library's server takes its control events from whoever runs it.
//!
//! Handlers are installed at start-up, before anything slow runs, so a signal
//! that arrives early is not lost (it waits in the control channel) and never
//! kills the process half-way.

use status_server::server::Control;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

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
    async fn next(&mut self) -> Control {
        tokio::select! {
            _ = self.term.recv() => Control::Stop("SIGTERM"),
            _ = self.int.recv() => Control::Stop("SIGINT"),
            _ = self.hup.recv() => Control::Reload(None),
        }
    }

    /// Sends every signal to `control` until the server stops listening.
    pub async fn forward(mut self, control: mpsc::Sender<Control>) {
        loop {
            let event = self.next().await;
            if control.send(event).await.is_err() {
                return;
            }
        }
    }
}
