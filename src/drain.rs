//! The drain signal: shutdown, as an explicit value passed down to every task
//! that must react when draining starts (the gRPC listener, connections that
//! never spoke, the health reporter, the metrics listener, the HTTP/JSON
//! listener and its connections).

use tokio::sync::watch;

/// Starts the drain; held by the server loop.
pub struct DrainTrigger(watch::Sender<bool>);

/// Tells a task when draining has started; clone one per task.
#[derive(Clone)]
pub struct DrainSignal(watch::Receiver<bool>);

pub fn drain_channel() -> (DrainTrigger, DrainSignal) {
    let (trigger, signal) = watch::channel(false);
    (DrainTrigger(trigger), DrainSignal(signal))
}

impl DrainTrigger {
    pub fn start(&self) {
        self.0.send_replace(true);
    }
}

impl DrainSignal {
    /// Completes once draining has started (or the trigger is gone, which
    /// only happens when the server loop itself has ended).
    pub async fn started(mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_start() {
        let (trigger, signal) = drain_channel();
        let waiters: Vec<_> = (0..3)
            .map(|_| tokio::spawn(signal.clone().started()))
            .collect();
        trigger.start();
        for waiter in waiters {
            waiter.await.expect("waiter finished");
        }
        // A signal cloned after the start completes at once.
        signal.started().await;
    }
}
