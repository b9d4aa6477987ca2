//! `OutageTracker`: whether Redis answers one of its users, and since when not.
//!
//! The token store and the load poll each see Redis on their own (a batch of
//! commands, a poll). Each keeps one tracker, so both log an outage the same
//! way: once when it starts and once when it ends, not once per failed
//! command, and both count errors and recoveries for the metrics alike.

/// Outcomes of one user's Redis commands since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutageTracker {
    /// Whether the last outcome was a failure: an outage is going on.
    in_outage: bool,
    /// Failed commands (or polls), in outages or not.
    errors: u64,
    /// Outages that ended with an answer.
    recoveries: u64,
}

impl OutageTracker {
    /// Redis did not answer; `errors` commands failed with it. Returns
    /// whether this starts an outage (so the caller logs it once).
    #[must_use = "the start of an outage is to be logged"]
    pub fn record_failure(&mut self, errors: u64) -> bool {
        self.errors += errors;
        !std::mem::replace(&mut self.in_outage, true)
    }

    /// Redis answered. Returns whether this ends an outage (so the caller
    /// logs it once); the end counts as a recovery.
    #[must_use = "the end of an outage is to be logged"]
    pub fn record_success(&mut self) -> bool {
        let ended = std::mem::replace(&mut self.in_outage, false);
        if ended {
            self.recoveries += 1;
        }
        ended
    }

    /// Some commands failed although Redis answers the others: counted as
    /// errors, but no outage.
    pub fn count_errors(&mut self, errors: u64) {
        self.errors += errors;
    }

    /// Whether an outage is going on.
    pub fn in_outage(&self) -> bool {
        self.in_outage
    }

    /// Failed commands (or polls) since start.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Outages that ended since start.
    pub fn recoveries(&self) -> u64 {
        self.recoveries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_without_an_outage() {
        let tracker = OutageTracker::default();
        assert!(!tracker.in_outage());
        assert_eq!((tracker.errors(), tracker.recoveries()), (0, 0));
    }

    #[test]
    fn an_outage_starts_once_and_counts_every_failure() {
        let mut tracker = OutageTracker::default();
        assert!(tracker.record_failure(3), "the first failure starts it");
        assert!(!tracker.record_failure(2), "later ones continue it");
        assert!(tracker.in_outage());
        assert_eq!(tracker.errors(), 5);
        assert_eq!(tracker.recoveries(), 0);
    }

    #[test]
    fn an_outage_ends_once_and_counts_a_recovery() {
        let mut tracker = OutageTracker::default();
        let _ = tracker.record_failure(1);
        assert!(tracker.record_success(), "the first success ends it");
        assert!(!tracker.record_success(), "later ones are no news");
        assert!(!tracker.in_outage());
        assert_eq!(tracker.recoveries(), 1);
    }

    #[test]
    fn successes_without_an_outage_end_nothing() {
        let mut tracker = OutageTracker::default();
        assert!(!tracker.record_success());
        assert_eq!(tracker.recoveries(), 0);
    }

    #[test]
    fn every_outage_that_ends_counts() {
        let mut tracker = OutageTracker::default();
        for _ in 0..3 {
            assert!(tracker.record_failure(1));
            assert!(tracker.record_success());
        }
        assert_eq!((tracker.errors(), tracker.recoveries()), (3, 3));
    }

    #[test]
    fn errors_while_redis_answers_are_counted_without_an_outage() {
        let mut tracker = OutageTracker::default();
        tracker.count_errors(4);
        assert!(!tracker.in_outage());
        assert_eq!(tracker.errors(), 4);
        // Nor do they end one: only an answer does.
        let _ = tracker.record_failure(1);
        tracker.count_errors(1);
        assert!(tracker.in_outage());
        assert_eq!(tracker.errors(), 6);
    }
}
