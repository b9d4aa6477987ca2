//! The result of a benchmark run: a `key: value` summary for people, or one JSON line.
//!
//! The JSON keeps every key of the former `examples/loadgen.rs`'s line (`bench/run` reads
//! it) and adds `warmup_s`, `p90_us`, `mean_us` and `seeded_tokens`. Note that
//! `concurrency` here is the total number of calls in flight (= `in_flight`), where
//! loadgen's was per connection.

use std::collections::BTreeMap;

use serde::Serialize;

use super::tally::Tally;
use crate::output;

#[derive(Serialize)]
pub struct Report {
    pub rpc: &'static str,
    pub addr: String,
    pub connections: u32,
    pub concurrency: u32,
    pub in_flight: u32,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Calls that completed in the measured window, whatever their outcome.
    pub requests: u64,
    pub ok: u64,
    pub business_errors: u64,
    pub business_errors_by_code: BTreeMap<i32, u64>,
    /// gRPC status name -> calls.
    pub grpc_errors: BTreeMap<&'static str, u64>,
    pub grpc_errors_total: u64,
    /// Always 0: calls still in flight at the end are abandoned and not counted (kept for
    /// loadgen's format).
    pub unfinished_workers: u32,
    /// Every call that returned, warm-up included (to compare with server-side counters);
    /// calls abandoned at the end are not in it.
    pub all_calls: u64,
    /// Those of `all_calls` that were ok.
    pub all_ok: u64,
    /// The others, by kind (`business 1010`, `grpc UNAVAILABLE`): where failures in the
    /// warm-up or after the end show.
    pub all_failures: BTreeMap<String, u64>,
    pub rps: f64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeded_tokens: Option<u64>,
}

/// What a run measured, and how it was set up.
pub struct Setup {
    pub rpc: &'static str,
    pub addr: String,
    pub connections: u32,
    pub concurrency: u32,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub seeded_tokens: Option<u64>,
}

impl Report {
    pub fn new(setup: Setup, tally: &Tally) -> Report {
        let h = &tally.latency_us;
        Report {
            rpc: setup.rpc,
            addr: setup.addr,
            connections: setup.connections,
            concurrency: setup.concurrency,
            in_flight: setup.concurrency,
            warmup_s: setup.warmup_s,
            duration_s: setup.duration_s,
            requests: tally.requests,
            ok: tally.ok,
            business_errors: tally.business_total(),
            business_errors_by_code: tally.business_errors.clone(),
            grpc_errors: tally.grpc_errors.clone(),
            grpc_errors_total: tally.grpc_total(),
            unfinished_workers: 0,
            all_calls: tally.all_calls,
            all_ok: tally.all_ok,
            all_failures: tally.all_failures.clone(),
            rps: if setup.duration_s > 0.0 {
                tally.requests as f64 / setup.duration_s
            } else {
                0.0
            },
            // One decimal is plenty for microseconds.
            mean_us: if h.is_empty() {
                0.0
            } else {
                (h.mean() * 10.0).round() / 10.0
            },
            p50_us: tally.quantile_us(0.50),
            p90_us: tally.quantile_us(0.90),
            p99_us: tally.quantile_us(0.99),
            p999_us: tally.quantile_us(0.999),
            max_us: if h.is_empty() { 0 } else { h.max() },
            seeded_tokens: setup.seeded_tokens,
        }
    }

    /// The summary people read.
    pub fn text(&self) -> String {
        let by_code = |counts: Vec<(String, u64)>| -> String {
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            if counts.is_empty() {
                "0".to_string()
            } else {
                let parts: Vec<String> = counts
                    .iter()
                    .map(|(code, n)| format!("{code}: {n}"))
                    .collect();
                format!("{total} ({})", parts.join(", "))
            }
        };
        let mut rows = vec![
            ("rpc", self.rpc.to_string()),
            ("addr", self.addr.clone()),
            (
                "load",
                format!(
                    "{} calls in flight over {} connection{}",
                    self.concurrency,
                    self.connections,
                    if self.connections == 1 { "" } else { "s" }
                ),
            ),
            (
                "measured",
                format!(
                    "{:.1}s (after {:.1}s of warm-up)",
                    self.duration_s, self.warmup_s
                ),
            ),
        ];
        if let Some(n) = self.seeded_tokens {
            rows.push(("seeded", format!("{n} tokens")));
        }
        rows.extend([
            ("requests", format!("{} ({:.1}/s)", self.requests, self.rps)),
            ("ok", self.ok.to_string()),
            (
                "business errors",
                by_code(
                    self.business_errors_by_code
                        .iter()
                        .map(|(code, n)| (code.to_string(), *n))
                        .collect(),
                ),
            ),
            (
                "grpc errors",
                by_code(
                    self.grpc_errors
                        .iter()
                        .map(|(code, n)| ((*code).to_string(), *n))
                        .collect(),
                ),
            ),
            (
                "latency",
                format!(
                    "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                    output::micros(self.p50_us),
                    output::micros(self.p90_us),
                    output::micros(self.p99_us),
                    output::micros(self.p999_us),
                    output::micros(self.max_us)
                ),
            ),
        ]);
        if !self.all_failures.is_empty() {
            rows.push((
                "all failures",
                by_code(
                    self.all_failures
                        .iter()
                        .map(|(name, n)| (name.clone(), *n))
                        .collect(),
                ),
            ));
        }
        output::fields(&rows)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::tally::Outcome;

    #[test]
    fn the_report_keeps_loadgen_keys_and_sums_errors() {
        let mut tally = Tally::new();
        for _ in 0..9 {
            tally.record(Outcome::Ok, Duration::from_micros(1000));
        }
        tally.record(Outcome::Business(1010), Duration::from_micros(2000));
        tally.record(
            Outcome::Grpc(tonic::Code::DeadlineExceeded),
            Duration::from_secs(5),
        );
        tally.count(Outcome::Grpc(tonic::Code::Cancelled));
        let setup = Setup {
            rpc: "login",
            addr: "http://127.0.0.1:50052".into(),
            connections: 1,
            concurrency: 4,
            warmup_s: 0.0,
            duration_s: 2.0,
            seeded_tokens: None,
        };
        let report = Report::new(setup, &tally);
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "rpc",
            "addr",
            "connections",
            "concurrency",
            "in_flight",
            "duration_s",
            "requests",
            "ok",
            "business_errors",
            "business_errors_by_code",
            "grpc_errors",
            "grpc_errors_total",
            "unfinished_workers",
            "all_calls",
            "all_ok",
            "all_failures",
            "rps",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert!(json.get("seeded_tokens").is_none());
        assert_eq!(json["requests"], 11);
        assert_eq!(json["rps"], 5.5);
        assert_eq!(json["business_errors_by_code"]["1010"], 1);
        assert_eq!(json["grpc_errors"]["DEADLINE_EXCEEDED"], 1);
        let text = report.text();
        assert!(text.contains("business errors: 1 (1010: 1)"), "{text}");
        assert!(
            text.contains("grpc errors:     1 (DEADLINE_EXCEEDED: 1)"),
            "{text}"
        );
        assert!(text.contains("p50 1.00ms"), "{text}");
        assert_eq!(json["all_failures"]["grpc CANCELLED"], 1);
        assert!(
            text.contains("all failures:    1 (grpc CANCELLED: 1)"),
            "{text}"
        );
    }
}
