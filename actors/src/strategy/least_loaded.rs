//! `least_loaded`: the server with the smallest load wins; tied servers take
//! turns (docs/contract.md §3, the default).
//!
//! Weights play no part. Because load counts this instance's assignments
//! and placements in flight, a burst between two polls spreads evenly over
//! equally loaded servers instead of piling onto one.

use super::{Candidate, Strategy, StrategyKind, first_best_from};

/// Its config name, `balancer.strategy = "least_loaded"`.
pub(super) const KIND: StrategyKind =
    StrategyKind::new("least_loaded", |_| Box::new(LeastLoaded::default()));

/// Remembers where the next tie-break starts: after the previous choice.
#[derive(Debug, Default)]
pub struct LeastLoaded {
    next_start: usize,
}

impl Strategy for LeastLoaded {
    fn choose(&mut self, servers: &[Candidate]) -> Option<usize> {
        let chosen = least_loaded(servers, self.next_start)?;
        self.next_start = chosen.wrapping_add(1);
        Some(chosen)
    }
}

/// The choosable server with the smallest load; of tied ones, the first at
/// or after `start` (wrapping).
pub fn least_loaded(servers: &[Candidate], start: usize) -> Option<usize> {
    first_best_from(servers, start, |(a, _), (b, _)| a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use super::*;
    use crate::strategy::unweighted as loads;

    #[test]
    fn the_smallest_load_wins_whatever_the_weights() {
        let mut servers = loads(&[Some(5), Some(2), Some(9), None]);
        servers[0].weight = NonZeroU64::new(100).expect("not zero");
        assert_eq!(LeastLoaded::default().choose(&servers), Some(1));
        assert_eq!(least_loaded(&loads(&[None, Some(0)]), 0), Some(1));
    }

    #[test]
    fn tied_servers_take_turns_and_others_are_skipped() {
        let servers = loads(&[Some(3), None, Some(3), Some(4), Some(3)]);
        let mut strategy = LeastLoaded::default();
        let chosen: Vec<_> = (0..6).filter_map(|_| strategy.choose(&servers)).collect();
        assert_eq!(chosen, [0, 2, 4, 0, 2, 4]);
    }

    #[test]
    fn the_turn_survives_servers_that_cannot_take_a_user() {
        let mut strategy = LeastLoaded::default();
        assert_eq!(strategy.choose(&loads(&[Some(0), Some(0)])), Some(0));
        assert_eq!(strategy.choose(&loads(&[None, None])), None);
        assert_eq!(strategy.choose(&loads(&[Some(0), Some(0)])), Some(1));
    }
}
