//! Writing results to stdout: `key: value` lines and tables for people, one compact JSON
//! document for scripts (`--json`), and "1.2s ago" ages.
//!
//! Writes to a closed stdout (`statusctl servers | head -1`) are ignored rather than
//! panicking.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Writes `text` to stdout as is.
pub fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes `value` as one line of compact JSON.
pub fn json<T: Serialize>(value: &T) {
    let mut line = serde_json::to_string(value).expect("output structs serialize");
    line.push('\n');
    emit(&line);
}

/// `key: value` lines with the values aligned.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (key, value) in rows {
        let pad = width - key.len();
        text.push_str(&format!("{key}: {:pad$}{value}\n", ""));
    }
    text
}

/// A table: the header, then one line per row, columns two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long before `now_ms` the Unix time `then_ms` was: `0.4s ago`, `3m05s ago`,
/// `2h10m ago`; `never` for 0. A time ahead of ours (another host's clock) reads `0.0s ago`.
pub fn ago(then_ms: u64, now_ms: u64) -> String {
    if then_ms == 0 {
        return "never".to_string();
    }
    let age = Duration::from_millis(now_ms.saturating_sub(then_ms));
    let secs = age.as_secs();
    if secs < 60 {
        format!("{:.1}s ago", age.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s ago", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m ago", secs / 3600, secs % 3600 / 60)
    }
}

/// A latency in microseconds for people: `850us`, `1.23ms`, `2.50s`.
pub fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let now = 1_700_000_000_000;
        assert_eq!(ago(0, now), "never");
        assert_eq!(ago(now - 1200, now), "1.2s ago");
        assert_eq!(ago(now + 500, now), "0.0s ago");
        assert_eq!(ago(now - 185_000, now), "3m05s ago");
        assert_eq!(ago(now - 7_800_000, now), "2h10m ago");
    }

    #[test]
    fn fields_align_values() {
        let text = fields(&[("error", "0".into()), ("host", "h".into())]);
        assert_eq!(text, "error: 0\nhost:  h\n");
    }

    #[test]
    fn tables_pad_columns() {
        let text = table(
            &["NAME", "ALIVE"],
            &[vec!["chatserver1".into(), "yes".into()]],
        );
        assert_eq!(text, "NAME         ALIVE\nchatserver1  yes\n");
    }

    #[test]
    fn latencies_pick_a_unit() {
        assert_eq!(micros(850), "850us");
        assert_eq!(micros(1234), "1.23ms");
        assert_eq!(micros(2_500_000), "2.50s");
    }
}
