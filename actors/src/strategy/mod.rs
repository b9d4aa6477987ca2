//! Balancing strategies: which of the servers gets the next user
//! (docs/contract.md §7).
//!
//! A strategy is pure: it sees each server's load (or that it cannot take a
//! user now) and its weight, and names one server. Which servers may be
//! chosen, and what their load is, the [`ServerTable`](crate::server_table)
//! decides beforehand, the same for every strategy; a strategy only keeps
//! what it needs between choices (whose turn a tie is, a random generator).
//!
//! Each strategy is one file holding a type that implements [`Strategy`]
//! and a [`StrategyKind`] that gives it its config name; [`STRATEGIES`]
//! lists them, and `balancer.strategy` picks one by name.

mod least_loaded;
mod p2c;
mod weighted;

use std::cmp::Ordering;
use std::fmt;
use std::hash::BuildHasher;
use std::num::NonZeroU64;

pub use least_loaded::{LeastLoaded, least_loaded};
pub use p2c::P2c;
pub use weighted::{Weighted, least_load_per_weight};

/// One server as a strategy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Its load (last polled count + assignments since + placements in
    /// flight) when it may take a user; `None` when it may not (not alive,
    /// draining, or full).
    pub load: Option<u64>,
    /// Its share relative to the other servers' weights.
    pub weight: NonZeroU64,
}

/// Chooses where the next user goes.
pub trait Strategy: fmt::Debug {
    /// The index in `servers` of the chosen server, which must be one whose
    /// `load` is `Some`; `None` when no server has one.
    fn choose(&mut self, servers: &[Candidate]) -> Option<usize>;
}

/// A strategy the config can name: its name and how to make one.
#[derive(Clone, Copy)]
pub struct StrategyKind {
    name: &'static str,
    build: fn(seed: u64) -> Box<dyn Strategy>,
}

impl StrategyKind {
    /// `build` makes a fresh strategy from a random `seed` (which only
    /// strategies that draw random numbers use).
    pub const fn new(name: &'static str, build: fn(seed: u64) -> Box<dyn Strategy>) -> Self {
        StrategyKind { name, build }
    }

    /// The value of `balancer.strategy` that selects it.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// A fresh strategy: no turn taken yet, its random numbers from `seed`.
    pub fn build(self, seed: u64) -> Box<dyn Strategy> {
        (self.build)(seed)
    }
}

impl PartialEq for StrategyKind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for StrategyKind {}

impl fmt::Debug for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Default for StrategyKind {
    /// `least_loaded`, the rule of docs/contract.md §3.
    fn default() -> Self {
        least_loaded::KIND
    }
}

/// Every strategy `balancer.strategy` may name, the default first.
pub const STRATEGIES: [StrategyKind; 3] = [least_loaded::KIND, weighted::KIND, p2c::KIND];

/// The strategy called `name` in the config.
pub fn by_name(name: &str) -> Option<StrategyKind> {
    STRATEGIES.into_iter().find(|kind| kind.name == name)
}

/// A seed for a new strategy: std's per-process random hash keys, so no
/// two tables (nor two instances) draw the same numbers.
pub fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

/// The index of the best choosable server, scanning from `start` (wrapping):
/// among equals, the first one at or after `start`. A caller that passes
/// "last choice + 1" thus makes equal servers take turns. `order` compares
/// two choosable servers; `Less` means the first is better.
fn first_best_from(
    servers: &[Candidate],
    start: usize,
    order: impl Fn((u64, NonZeroU64), (u64, NonZeroU64)) -> Ordering,
) -> Option<usize> {
    if servers.is_empty() {
        return None;
    }
    // Only `start`'s residue matters; `start + offset` would overflow near usize::MAX
    // (a panic in debug builds, a rotation that skips servers in release builds).
    let first = start % servers.len();
    let mut best: Option<(usize, (u64, NonZeroU64))> = None;
    for i in (first..servers.len()).chain(0..first) {
        let Some(load) = servers[i].load else {
            continue;
        };
        let this = (load, servers[i].weight);
        // Strictly better only: the earlier of equals stays.
        if best.is_none_or(|(_, so_far)| order(this, so_far) == Ordering::Less) {
            best = Some((i, this));
        }
    }
    best.map(|(i, _)| i)
}

/// Candidates of weight 1 with these loads (`None`: not choosable), for
/// the strategies' tests.
#[cfg(test)]
pub(crate) fn unweighted(loads: &[Option<u64>]) -> Vec<Candidate> {
    loads
        .iter()
        .map(|&load| Candidate {
            load,
            weight: std::num::NonZeroU64::MIN,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_is_found_by_its_name() {
        let names: Vec<&str> = STRATEGIES.iter().map(|kind| kind.name()).collect();
        assert_eq!(names, ["least_loaded", "weighted", "p2c"]);
        for kind in STRATEGIES {
            assert_eq!(by_name(kind.name()), Some(kind));
        }
        assert_eq!(by_name("round_robin"), None);
        assert_eq!(by_name("LEAST_LOADED"), None, "names are exact");
        assert_eq!(StrategyKind::default().name(), "least_loaded");
    }

    #[test]
    fn every_strategy_chooses_nothing_from_nothing() {
        let none = Candidate {
            load: None,
            weight: NonZeroU64::MIN,
        };
        for kind in STRATEGIES {
            let mut strategy = kind.build(7);
            assert_eq!(strategy.choose(&[]), None, "{kind:?}");
            assert_eq!(strategy.choose(&[none, none]), None, "{kind:?}");
        }
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }
}
