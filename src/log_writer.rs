//! Where log lines go: to stderr from a thread of their own, never blocking the server.
//!
//! With one serving thread (`server.threads = 1`), a log line written straight to stderr
//! blocks every call while stderr's pipe is full: a log collector that falls behind, a
//! terminal paused with Ctrl-S or a supervisor that stopped reading would stall the whole
//! server on its next log line. Here a line only joins a queue (a channel to the writer
//! thread), bounded to [`MAX_QUEUED_BYTES`]: when stderr does not keep up and the queue is
//! full, lines are dropped and counted, and once a line gets through again the writer logs
//! how many were lost, so the gap shows in the log itself. At exit [`LogFlush::flush`] waits,
//! within a deadline, for what is queued to be written.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Bytes of log lines that may wait for stderr; beyond them, lines are dropped. At a few
/// hundred bytes a line, thousands of lines: more than a burst of the server's own logging,
/// and a bound on the memory a stalled stderr can cost.
pub const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// What the writer thread receives.
enum Message {
    /// One whole log record, as the logger formatted it.
    Line(Vec<u8>),
    /// Everything before this is written: say so.
    Flush(mpsc::SyncSender<()>),
}

/// What the logger and the writer thread both count.
#[derive(Default)]
struct Counters {
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// Lines dropped since the writer last reported drops.
    dropped: AtomicU64,
}

/// The logger's end: `io::Write` for `env_logger::Target::Pipe`, which writes each record
/// with one `write_all` (so one `write` here is one line).
pub struct LogQueue {
    lines: mpsc::Sender<Message>,
    counters: Arc<Counters>,
}

/// Waits for the queued lines to reach stderr (at exit).
pub struct LogFlush {
    lines: mpsc::Sender<Message>,
}

/// Starts the writer thread; `None` if the OS refuses a thread (the caller then logs to
/// stderr directly, as before).
pub fn spawn() -> Option<(LogQueue, LogFlush)> {
    let (lines, received) = mpsc::channel();
    let counters = Arc::new(Counters::default());
    let writer = Arc::clone(&counters);
    std::thread::Builder::new()
        .name("log writer".to_string())
        .spawn(move || write_lines(received, &writer))
        .ok()?;
    let flush = LogFlush {
        lines: lines.clone(),
    };
    Some((LogQueue { lines, counters }, flush))
}

/// The writer thread: each line to stderr, in order, until every sender is gone.
fn write_lines(received: mpsc::Receiver<Message>, counters: &Counters) {
    let mut stderr = io::stderr();
    for message in received {
        match message {
            Message::Line(line) => {
                // Nowhere to report a failed write to stderr: the line is lost either way.
                let _ = stderr.write_all(&line);
                counters.queued.fetch_sub(line.len(), Ordering::Relaxed);
                let dropped = counters.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    log::warn!(
                        "{dropped} log lines were dropped: stderr did not take them in time \
                         (more than {} MiB waited)",
                        MAX_QUEUED_BYTES / (1024 * 1024)
                    );
                }
            }
            Message::Flush(done) => {
                let _ = stderr.flush();
                let _ = done.send(());
            }
        }
    }
}

impl Write for LogQueue {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let queued = self
            .counters
            .queued
            .fetch_add(line.len(), Ordering::Relaxed);
        if queued + line.len() > MAX_QUEUED_BYTES
            || self.lines.send(Message::Line(line.to_vec())).is_err()
        {
            self.counters
                .queued
                .fetch_sub(line.len(), Ordering::Relaxed);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // Taken, written or not: the logger must never wait, nor fail the record.
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // The writer thread writes each line as it comes; nothing is held here.
        Ok(())
    }
}

impl LogFlush {
    /// Waits until the lines queued so far are written, at most `deadline` (a stalled
    /// stderr must not keep the process from exiting).
    pub fn flush(&self, deadline: Duration) {
        let (done, written) = mpsc::sync_channel(1);
        if self.lines.send(Message::Flush(done)).is_ok() {
            let _ = written.recv_timeout(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // A queue whose writer never runs: nothing is ever written, as with a stalled stderr.
        let (lines, _received) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let mut queue = LogQueue {
            lines,
            counters: Arc::clone(&counters),
        };
        let line = vec![b'x'; 1024];
        for _ in 0..MAX_QUEUED_BYTES / line.len() {
            assert_eq!(queue.write(&line).expect("never fails"), line.len());
        }
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(counters.queued.load(Ordering::Relaxed), MAX_QUEUED_BYTES);

        assert_eq!(queue.write(&line).expect("never fails"), line.len());
        assert_eq!(queue.write(b"y\n").expect("never fails"), 2);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(counters.queued.load(Ordering::Relaxed), MAX_QUEUED_BYTES);
    }

    #[test]
    fn a_gone_writer_drops_and_counts() {
        let (lines, received) = mpsc::channel();
        drop(received);
        let counters = Arc::new(Counters::default());
        let mut queue = LogQueue {
            lines,
            counters: Arc::clone(&counters),
        };
        assert_eq!(queue.write(b"line\n").expect("never fails"), 5);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(counters.queued.load(Ordering::Relaxed), 0);
    }
}
