//! The progress bar of `bench`, on stderr, only when stderr is a terminal (stdout, where
//! the report and `--json` go, is never touched). It fits one terminal line (the message is
//! cut to the width) and is cleared when the run ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::worker::Live;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(200);

pub struct Progress {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts redrawing a bar for a run from `start` to `stop_at` (measuring from
    /// `measure_from`).
    pub fn start(live: Arc<Live>, start: Instant, measure_from: Instant, stop_at: Instant) -> Self {
        let total_ms = (stop_at - start).as_millis() as u64;
        let bar = ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:20}] {wide_msg}")
                .expect("constant template parses")
                .progress_chars("=> "),
        );
        let task = tokio::spawn({
            let bar = bar.clone();
            async move {
                let mut ticker = tokio::time::interval(TICK);
                loop {
                    ticker.tick().await;
                    let now = Instant::now();
                    bar.set_position(((now.min(stop_at) - start).as_millis() as u64).min(total_ms));
                    if now < measure_from {
                        bar.set_prefix("warm-up");
                        bar.set_message(format!("{:.1}s left", (measure_from - now).as_secs_f64()));
                        continue;
                    }
                    let secs = (now.min(stop_at) - measure_from).as_secs_f64();
                    let calls = live.calls.load(Ordering::Relaxed);
                    let failed = live.failed.load(Ordering::Relaxed);
                    bar.set_prefix("measuring");
                    bar.set_message(format!(
                        "{calls} calls, {:.0}/s, {failed} failed, {:.1}s left",
                        if secs > 0.0 { calls as f64 / secs } else { 0.0 },
                        (stop_at.saturating_duration_since(now)).as_secs_f64()
                    ));
                }
            }
        });
        Progress { bar, task }
    }

    /// Stops redrawing and erases the bar.
    pub fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
