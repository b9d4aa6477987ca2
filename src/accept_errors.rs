//! Accept errors backed off and logged once per run of failures.
//!
//! At the file-descriptor limit `accept` fails at once, every time: a loop
//! that retries at once spins a core and logs each failure (hundreds of
//! thousands of lines a second), starving the probes and everyone else.
//! [`AcceptErrors`] makes a listener wait [`ACCEPT_RETRY`] after each failure,
//! and log the first failure of a run and, once it accepts again, its end.

use std::io;
use std::time::Duration;

/// How long a listener waits after a failed accept: long enough not to spin,
/// short enough that a freed descriptor is used soon.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// One listener's run of failed accepts.
#[derive(Debug)]
pub struct AcceptErrors {
    /// Names the listener in the log.
    listener: &'static str,
    /// Failed accepts since the last successful one.
    failures: u64,
}

impl AcceptErrors {
    pub fn new(listener: &'static str) -> Self {
        AcceptErrors {
            listener,
            failures: 0,
        }
    }

    /// An accept failed: logs it if it starts a run, then waits [`ACCEPT_RETRY`].
    pub async fn failed(&mut self, err: &io::Error) {
        if self.failures == 0 {
            log::warn!(
                "{}: accept failed: {err}; retrying every {} ms, logged again when it accepts",
                self.listener,
                ACCEPT_RETRY.as_millis()
            );
        }
        self.failures += 1;
        tokio::time::sleep(ACCEPT_RETRY).await;
    }

    /// An accept succeeded: logs the end of a run of failures, if one was going on.
    pub fn accepted(&mut self) {
        if self.failures > 0 {
            log::info!(
                "{}: accepting again after {} failed accepts",
                self.listener,
                self.failures
            );
            self.failures = 0;
        }
    }
}
