//! What the calls of a benchmark run came to: counts by outcome and an HDR histogram of
//! latencies (microseconds, 3 significant digits).
//!
//! Latencies cover every call that got a reply, business errors included; calls that
//! ended with a gRPC status are only counted (their latency is mostly the timeout).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency tracked, in microseconds (larger values are recorded as this).
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// How one call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A reply with `error != 0`; `-1` for a GetChatServer "success" without a host or a
    /// 36-character token (a broken reply, counted apart from the real codes).
    Business(i32),
    Grpc(tonic::Code),
}

impl Outcome {
    /// How a failed call is named in `all_failures` (`business 1010`, `grpc UNAVAILABLE`).
    fn failure_name(self) -> Option<String> {
        match self {
            Outcome::Ok => None,
            Outcome::Business(code) => Some(format!("business {code}")),
            Outcome::Grpc(code) => Some(format!("grpc {}", crate::failure::code_name(code))),
        }
    }
}

#[derive(Clone)]
pub struct Tally {
    pub latency_us: Histogram<u64>,
    /// Every call that returned, warm-up included (what the server served).
    pub all_calls: u64,
    /// Those of `all_calls` that were ok.
    pub all_ok: u64,
    /// The others, by `Outcome::failure_name`: failures in the warm-up or after the end
    /// show here, and only here.
    pub all_failures: BTreeMap<String, u64>,
    pub requests: u64,
    pub ok: u64,
    pub business_errors: BTreeMap<i32, u64>,
    pub grpc_errors: BTreeMap<&'static str, u64>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
                .expect("constant histogram bounds are valid"),
            all_calls: 0,
            all_ok: 0,
            all_failures: BTreeMap::new(),
            requests: 0,
            ok: 0,
            business_errors: BTreeMap::new(),
            grpc_errors: BTreeMap::new(),
        }
    }

    /// Counts a call that returned, whenever it did (`all_calls`, `all_ok`, `all_failures`).
    pub fn count(&mut self, outcome: Outcome) {
        self.all_calls += 1;
        match outcome.failure_name() {
            None => self.all_ok += 1,
            Some(name) => *self.all_failures.entry(name).or_default() += 1,
        }
    }

    /// Records a call that returned inside the measured window.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        self.requests += 1;
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Business(code) => *self.business_errors.entry(code).or_default() += 1,
            Outcome::Grpc(code) => {
                *self
                    .grpc_errors
                    .entry(crate::failure::code_name(code))
                    .or_default() += 1;
                return;
            }
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us
            .saturating_record(us.clamp(1, MAX_TRACKED_US));
    }

    pub fn merge(&mut self, other: &Tally) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds add up");
        self.all_calls += other.all_calls;
        self.all_ok += other.all_ok;
        for (name, n) in &other.all_failures {
            *self.all_failures.entry(name.clone()).or_default() += n;
        }
        self.requests += other.requests;
        self.ok += other.ok;
        for (code, n) in &other.business_errors {
            *self.business_errors.entry(*code).or_default() += n;
        }
        for (code, n) in &other.grpc_errors {
            *self.grpc_errors.entry(code).or_default() += n;
        }
    }

    pub fn business_total(&self) -> u64 {
        self.business_errors.values().sum()
    }

    pub fn grpc_total(&self) -> u64 {
        self.grpc_errors.values().sum()
    }

    /// Latency at `quantile` (0..=1) in microseconds; 0 when nothing was recorded.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        if self.latency_us.is_empty() {
            0
        } else {
            self.latency_us.value_at_quantile(quantile)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_and_grpc_errors_stay_out_of_the_histogram() {
        let mut a = Tally::new();
        a.count(Outcome::Business(1010));
        a.record(Outcome::Ok, Duration::from_micros(100));
        a.record(Outcome::Business(1010), Duration::from_micros(300));
        let mut b = Tally::new();
        b.record(
            Outcome::Grpc(tonic::Code::Unavailable),
            Duration::from_secs(5),
        );
        b.record(Outcome::Ok, Duration::from_micros(200));
        b.count(Outcome::Grpc(tonic::Code::Unavailable));
        b.count(Outcome::Ok);
        a.merge(&b);
        assert_eq!((a.all_calls, a.all_ok), (3, 1));
        assert_eq!(
            a.all_failures.iter().collect::<Vec<_>>(),
            [
                (&"business 1010".to_string(), &1),
                (&"grpc UNAVAILABLE".to_string(), &1)
            ]
        );
        assert_eq!(a.requests, 4);
        assert_eq!(a.ok, 2);
        assert_eq!(a.business_total(), 1);
        assert_eq!(a.grpc_errors.get("UNAVAILABLE"), Some(&1));
        assert_eq!(a.latency_us.len(), 3);
        assert_eq!(a.latency_us.max(), 300);
        assert_eq!(a.quantile_us(0.5), 200);
        assert_eq!(Tally::new().quantile_us(0.99), 0);
    }
}
