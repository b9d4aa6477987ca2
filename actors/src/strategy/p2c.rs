//! `p2c`, the power of two choices: two different servers are drawn at
//! random among those that may take a user, and the less loaded one wins
//! (docs/contract.md §7); with a single such server, that one.
//!
//! Nearly as even as `least_loaded`, without every instance sending its
//! next user to the same emptiest server. Weights play no part.
//!
//! The random numbers come from SplitMix64 seeded once per strategy: fast,
//! well spread, and reproducible from the seed in tests. Nothing here needs
//! unpredictability, only independence between draws.

use super::{Candidate, Strategy, StrategyKind};

/// Its config name, `balancer.strategy = "p2c"`.
pub(super) const KIND: StrategyKind = StrategyKind::new("p2c", |seed| Box::new(P2c::new(seed)));

/// Draws two candidates per choice from its own random sequence.
#[derive(Debug)]
pub struct P2c {
    state: u64,
}

impl P2c {
    pub fn new(seed: u64) -> P2c {
        P2c { state: seed }
    }

    /// SplitMix64's next number.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0): the high half of a 64x64-bit product,
    /// which is uniform enough for n far below 2^64 and needs no division.
    fn below(&mut self, n: usize) -> usize {
        let wide = u128::from(self.next_u64()) * n as u128;
        // < n, so it fits back into a usize.
        (wide >> 64) as usize
    }
}

impl Strategy for P2c {
    fn choose(&mut self, servers: &[Candidate]) -> Option<usize> {
        let choosable = servers.iter().filter(|s| s.load.is_some()).count();
        let (first, second) = match choosable {
            0 => return None,
            1 => return servers.iter().position(|s| s.load.is_some()),
            n => {
                let first = self.below(n);
                // A draw among the other n - 1: different from `first`.
                let second = self.below(n - 1);
                (first, second + usize::from(second >= first))
            }
        };
        // The indices of the `first`-th and `second`-th choosable servers.
        let mut picked = servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.load.map(|load| (i, load)))
            .enumerate()
            .filter(|&(rank, _)| rank == first || rank == second)
            .map(|(_, server)| server);
        let (a, b) = (picked.next()?, picked.next()?);
        // Equal loads: either may win; the order of the draws decides.
        let (drawn_first, drawn_second) = if first < second { (a, b) } else { (b, a) };
        Some(if drawn_second.1 < drawn_first.1 {
            drawn_second.0
        } else {
            drawn_first.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::unweighted as loads;

    #[test]
    fn a_single_choosable_server_is_chosen() {
        let mut p2c = P2c::new(1);
        for _ in 0..100 {
            assert_eq!(p2c.choose(&loads(&[None, Some(50), None])), Some(1));
        }
    }

    #[test]
    fn of_two_choosable_servers_the_less_loaded_always_wins() {
        let mut p2c = P2c::new(2);
        let servers = loads(&[Some(9), None, Some(3), None]);
        for _ in 0..100 {
            assert_eq!(p2c.choose(&servers), Some(2));
        }
    }

    #[test]
    fn the_most_loaded_server_never_wins_and_the_least_loaded_often_does() {
        let mut p2c = P2c::new(3);
        let servers = loads(&[Some(1), Some(2), Some(3), Some(4)]);
        let mut wins = [0u32; 4];
        for _ in 0..12_000 {
            wins[p2c.choose(&servers).expect("choosable servers")] += 1;
        }
        // Server i wins when drawn with a busier one: (3 - i) of the 6 pairs.
        assert_eq!(wins[3], 0, "{wins:?}");
        for (i, expected) in [6000, 4000, 2000].into_iter().enumerate() {
            assert!(
                wins[i].abs_diff(expected) < 300,
                "server {i}: {} of 12000, expected about {expected}: {wins:?}",
                wins[i]
            );
        }
    }

    #[test]
    fn ties_go_either_way() {
        let mut p2c = P2c::new(4);
        let servers = loads(&[Some(5), Some(5)]);
        let zeros = (0..1000)
            .filter(|_| p2c.choose(&servers) == Some(0))
            .count();
        assert!((400..=600).contains(&zeros), "{zeros} of 1000");
    }

    #[test]
    fn draws_cover_every_server_evenly() {
        let mut p2c = P2c::new(5);
        let mut seen = [0u32; 10];
        for _ in 0..100_000 {
            seen[p2c.below(10)] += 1;
        }
        assert!(seen.iter().all(|&n| n.abs_diff(10_000) < 500), "{seen:?}");
    }

    #[test]
    fn the_same_seed_draws_the_same_choices() {
        let servers = loads(&[Some(0); 8]);
        let run = |seed| {
            let mut p2c = P2c::new(seed);
            (0..50).map(|_| p2c.choose(&servers)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
