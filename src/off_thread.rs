//! Reading files on a thread of its own, given up after a deadline.
//!
//! Reloads read the config file and the TLS files while the server serves; with every call
//! on one thread (`server.threads = 1`), a read that hangs (a hung file system) there would
//! stall them all. So each read runs on a plain thread of its own, and the caller waits for
//! it at most `deadline`. A read given up keeps its thread until the file system answers;
//! nothing waits for it, not even the exit (tokio's blocking pool would hold the runtime's
//! shutdown until the read returns).

use std::fmt;
use std::time::Duration;

/// Why a read on its own thread gave no answer.
#[derive(Debug)]
pub enum OffThreadFailure {
    /// The OS refused a thread.
    NoThread(std::io::Error),
    /// The reading thread panicked.
    Failed,
    /// No answer within the deadline.
    TimedOut(Duration),
}

impl fmt::Display for OffThreadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffThreadFailure::NoThread(err) => {
                write!(f, "cannot read: no thread to read it on: {err}")
            }
            OffThreadFailure::Failed => f.write_str("cannot read: the reading thread failed"),
            OffThreadFailure::TimedOut(deadline) => write!(
                f,
                "cannot read: timed out reading after {} s",
                deadline.as_secs()
            ),
        }
    }
}

/// Runs `read` on a thread named `name` and waits for its answer at most `deadline`.
pub async fn read_off_thread<T: Send + 'static>(
    name: &str,
    deadline: Duration,
    read: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OffThreadFailure> {
    let (tx, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        // The caller may have given up: nobody to tell.
        .spawn(move || drop(tx.send(read())))
        .map_err(OffThreadFailure::NoThread)?;
    match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(OffThreadFailure::Failed),
        Err(_) => Err(OffThreadFailure::TimedOut(deadline)),
    }
}
