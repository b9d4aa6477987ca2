//! `weighted`: the server with the smallest load per unit of weight wins;
//! tied servers take turns (docs/contract.md §7).
//!
//! Idle servers of weights 1, 2 and 3 thus receive 1/6, 2/6 and 3/6 of the
//! users. Ratios are compared exactly, by cross-multiplying in u128
//! (`a / wa < b / wb` as `a * wb < b * wa`): every u64 load times every u64
//! weight fits, and no float rounds two different ratios into a tie.

use std::cmp::Ordering;
use std::num::NonZeroU64;

use super::{Candidate, Strategy, StrategyKind, first_best_from};

/// Its config name, `balancer.strategy = "weighted"`.
pub(super) const KIND: StrategyKind =
    StrategyKind::new("weighted", |_| Box::new(Weighted::default()));

/// Remembers where the next tie-break starts: after the previous choice.
#[derive(Debug, Default)]
pub struct Weighted {
    next_start: usize,
}

impl Strategy for Weighted {
    fn choose(&mut self, servers: &[Candidate]) -> Option<usize> {
        let chosen = least_load_per_weight(servers, self.next_start)?;
        self.next_start = chosen.wrapping_add(1);
        Some(chosen)
    }
}

/// The choosable server with the smallest load / weight; of tied ones, the
/// first at or after `start` (wrapping).
pub fn least_load_per_weight(servers: &[Candidate], start: usize) -> Option<usize> {
    first_best_from(servers, start, compare_per_weight)
}

/// `load_a / weight_a` against `load_b / weight_b`, exactly.
fn compare_per_weight(
    (load_a, weight_a): (u64, NonZeroU64),
    (load_b, weight_b): (u64, NonZeroU64),
) -> Ordering {
    let a = u128::from(load_a) * u128::from(weight_b.get());
    let b = u128::from(load_b) * u128::from(weight_a.get());
    a.cmp(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(w: u64) -> NonZeroU64 {
        NonZeroU64::new(w).expect("test weights are positive")
    }

    fn servers(pairs: &[(Option<u64>, u64)]) -> Vec<Candidate> {
        pairs
            .iter()
            .map(|&(load, w)| Candidate {
                load,
                weight: weight(w),
            })
            .collect()
    }

    #[test]
    fn the_smallest_load_per_weight_wins() {
        // 10/1 = 10, 12/3 = 4, 9/2 = 4.5.
        let s = servers(&[(Some(10), 1), (Some(12), 3), (Some(9), 2)]);
        assert_eq!(Weighted::default().choose(&s), Some(1));
        // A heavy server that cannot take a user is passed over.
        let s = servers(&[(Some(10), 1), (None, 1000), (Some(9), 2)]);
        assert_eq!(Weighted::default().choose(&s), Some(2));
    }

    #[test]
    fn equal_ratios_tie_and_take_turns() {
        // 2/1 = 4/2 = 6/3.
        let s = servers(&[(Some(2), 1), (Some(4), 2), (Some(6), 3)]);
        let mut strategy = Weighted::default();
        let chosen: Vec<_> = (0..4).filter_map(|_| strategy.choose(&s)).collect();
        assert_eq!(chosen, [0, 1, 2, 0]);
    }

    #[test]
    fn ratios_too_close_for_a_float_are_told_apart() {
        // (2^53 + 1) / 2 against 2^52: as f64 both are 2^52, exactly they differ.
        let big = 1u64 << 53;
        let s = servers(&[(Some(1 << 52), 1), (Some(big + 1), 2)]);
        assert_eq!(least_load_per_weight(&s, 1), Some(0));
        let s = servers(&[(Some(big - 1), 2), (Some(1 << 52), 1)]);
        assert_eq!(least_load_per_weight(&s, 1), Some(0));
    }

    #[test]
    fn the_largest_loads_and_weights_do_not_overflow() {
        let s = servers(&[(Some(u64::MAX), u64::MAX), (Some(u64::MAX), u64::MAX - 1)]);
        assert_eq!(least_load_per_weight(&s, 1), Some(0));
        let s = servers(&[(Some(u64::MAX), 1), (Some(0), u64::MAX)]);
        assert_eq!(least_load_per_weight(&s, 0), Some(1));
    }

    #[test]
    fn weights_one_two_three_split_one_two_and_three_sixths() {
        let mut loads = [0u64; 3];
        let mut strategy = Weighted::default();
        for _ in 0..6000 {
            let s: Vec<Candidate> = loads
                .iter()
                .zip([1, 2, 3])
                .map(|(&load, w)| Candidate {
                    load: Some(load),
                    weight: weight(w),
                })
                .collect();
            let i = strategy.choose(&s).expect("all choosable");
            loads[i] += 1;
        }
        assert_eq!(loads, [1000, 2000, 3000]);
    }
}
