//! Property tests of the balancing strategies and of the table that feeds them
//! (docs/contract.md §7): whatever the loads, weights, capacities and drains, no
//! strategy chooses a server that cannot take a user, each chooses by its rule, tied
//! servers take turns, and no placement goes past a server's `max_connections`.
//!
//! The default is 256 cases per property; `PROPTEST_CASES=100000 cargo test -p
//! status-actors --test strategy_properties` runs longer.

use std::num::NonZeroU64;
use std::time::SystemTime;

use proptest::prelude::*;
use status_actors::balance::{Availability, LoadField, LoadHash};
use status_actors::server_table::{PlacementError, ServerTable};
use status_actors::strategy::{
    Candidate, STRATEGIES, StrategyKind, least_load_per_weight, least_loaded,
};
use status_actors::{ChatServer, ServerPolicy};

fn weight() -> impl Strategy<Value = NonZeroU64> {
    prop_oneof![1u64..5, any::<u64>().prop_map(|w| w.max(1)), Just(u64::MAX)]
        .prop_map(|w| NonZeroU64::new(w).expect("at least 1"))
}

fn candidate() -> impl Strategy<Value = Candidate> {
    let load = prop_oneof![0u64..5, any::<u64>(), Just(u64::MAX)];
    (prop::option::weighted(0.7, load), weight())
        .prop_map(|(load, weight)| Candidate { load, weight })
}

fn kind() -> impl Strategy<Value = StrategyKind> {
    prop::sample::select(STRATEGIES.to_vec())
}

fn start() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..10, any::<usize>()]
}

/// `a.load / a.weight` against `b.load / b.weight`, exactly (both choosable).
fn per_weight(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    let (Some(la), Some(lb)) = (a.load, b.load) else {
        panic!("compared a server that cannot take a user");
    };
    (u128::from(la) * u128::from(b.weight.get()))
        .cmp(&(u128::from(lb) * u128::from(a.weight.get())))
}

proptest! {
    #[test]
    fn no_strategy_chooses_a_server_that_cannot_take_a_user(
        kind in kind(),
        seed in any::<u64>(),
        servers in prop::collection::vec(candidate(), 0..12),
        rounds in 1usize..20,
    ) {
        let mut strategy = kind.build(seed);
        let any_choosable = servers.iter().any(|s| s.load.is_some());
        for _ in 0..rounds {
            match strategy.choose(&servers) {
                None => prop_assert!(!any_choosable, "{:?} declined a choosable server", kind),
                Some(i) => {
                    prop_assert!(i < servers.len());
                    prop_assert!(servers[i].load.is_some(), "{:?} chose {}: {:?}", kind, i, servers);
                }
            }
        }
    }

    #[test]
    fn each_strategy_chooses_by_its_rule(
        seed in any::<u64>(),
        servers in prop::collection::vec(candidate(), 1..12),
        start in start(),
    ) {
        let choosable: Vec<&Candidate> = servers.iter().filter(|s| s.load.is_some()).collect();
        if let Some(i) = least_loaded(&servers, start) {
            let least = choosable.iter().filter_map(|s| s.load).min();
            prop_assert_eq!(servers[i].load, least);
        }
        if let Some(i) = least_load_per_weight(&servers, start) {
            for other in &choosable {
                prop_assert_ne!(per_weight(&servers[i], other), std::cmp::Ordering::Greater);
            }
        }
        // p2c: with two or more to draw from, a server busier than every other never wins.
        let p2c = status_actors::strategy::by_name("p2c").expect("p2c is a strategy");
        let mut strategy = p2c.build(seed);
        if choosable.len() >= 2
            && let Some(i) = strategy.choose(&servers)
        {
            let load = servers[i].load;
            prop_assert!(
                choosable.iter().any(|s| s.load >= load && !std::ptr::eq(*s, &servers[i])),
                "p2c chose the strictly busiest server {}: {:?}", i, servers
            );
        }
    }

    #[test]
    fn tied_servers_take_turns(
        n in 1usize..8,
        blocked in prop::collection::vec(any::<bool>(), 8),
        start_load in 0u64..1000,
        rounds in 1u64..30,
        weighted in any::<bool>(),
    ) {
        let kind = if weighted { "weighted" } else { "least_loaded" };
        let mut strategy = status_actors::strategy::by_name(kind).expect("a strategy").build(0);
        // `n` equal servers with servers that cannot take a user between them.
        let mut servers = Vec::new();
        for &blocked in blocked.iter().take(n) {
            if blocked {
                servers.push(Candidate { load: None, weight: NonZeroU64::MIN });
            }
            servers.push(Candidate { load: Some(start_load), weight: NonZeroU64::MIN });
        }
        let mut chosen = vec![0u64; servers.len()];
        for _ in 0..rounds * n as u64 {
            let i = strategy.choose(&servers).expect("equal servers");
            chosen[i] += 1;
            servers[i].load = servers[i].load.map(|load| load + 1);
        }
        for (server, times) in servers.iter().zip(&chosen) {
            let expected = if server.load.is_some() { rounds } else { 0 };
            prop_assert_eq!(*times, expected, "{}: {:?}", kind, chosen);
        }
    }

    #[test]
    fn weighted_gives_each_idle_server_exactly_its_share(
        weights in prop::collection::vec(1u64..6, 1..6),
        rounds in 1u64..20,
    ) {
        let mut strategy = status_actors::strategy::by_name("weighted").expect("a strategy").build(0);
        let mut servers: Vec<Candidate> = weights
            .iter()
            .map(|&w| Candidate { load: Some(0), weight: NonZeroU64::new(w).expect("at least 1") })
            .collect();
        let total: u64 = weights.iter().sum();
        for _ in 0..rounds * total {
            let i = strategy.choose(&servers).expect("all choosable");
            servers[i].load = servers[i].load.map(|load| load + 1);
        }
        for (server, w) in servers.iter().zip(&weights) {
            prop_assert_eq!(server.load, Some(rounds * w));
        }
    }

    #[test]
    fn the_table_never_places_past_a_capacity_nor_on_a_draining_or_dead_server(
        kind in kind(),
        seed in any::<u64>(),
        servers in prop::collection::vec(
            (prop::option::weighted(0.8, 0u64..6), 1u64..4, 0u64..6, prop::bool::weighted(0.2), prop::bool::weighted(0.1)),
            1..6,
        ),
        outcomes in prop::collection::vec(prop::option::of(any::<bool>()), 1..60),
    ) {
        let configured: Vec<ChatServer> = servers
            .iter()
            .enumerate()
            .map(|(i, &(_, weight, max_connections, draining, _))| ChatServer {
                name: format!("s{i}"),
                host: "127.0.0.1".into(),
                port: 1,
                policy: ServerPolicy {
                    weight: NonZeroU64::new(weight).expect("at least 1"),
                    max_connections,
                    draining,
                },
            })
            .collect();
        let mut table = ServerTable::new(configured, false, kind, seed);
        let fields = servers
            .iter()
            .enumerate()
            .map(|(i, &(count, ..))| (format!("s{i}"), count.map_or(LoadField::Missing, LoadField::Count)))
            .collect();
        table.apply_loads(LoadHash { key_exists: true, fields }, SystemTime::UNIX_EPOCH);
        for (i, &(.., admin_drain)) in servers.iter().enumerate() {
            table.set_draining(&format!("s{i}"), admin_drain).expect("configured");
        }
        // Placements whose token write has not finished yet, oldest first.
        let mut pending: Vec<String> = Vec::new();
        for (uid, outcome) in (1..).zip(&outcomes) {
            let before = table.snapshot();
            match table.place(uid) {
                Ok(server) => {
                    let was = before.servers.iter().find(|s| s.server.name == server.name).expect("listed");
                    prop_assert!(
                        matches!(was.availability, Availability::Choosable(_)),
                        "{:?} placed on {} which was {:?}", kind, server.name, was.availability
                    );
                    pending.push(server.name.clone());
                }
                Err(PlacementError::NoServerAlive(_)) => {
                    prop_assert!(before.servers.iter().all(|s| !s.alive));
                }
                Err(PlacementError::NoServerChoosable(reasons)) => {
                    prop_assert!(before.servers.iter().any(|s| s.alive));
                    prop_assert!(before.servers.iter().all(|s| !matches!(s.availability, Availability::Choosable(_))));
                    prop_assert_eq!(reasons.len(), before.servers.len());
                }
                Err(other) => prop_assert!(false, "unexpected refusal: {}", other),
            }
            // Settle the oldest pending placement (stored or not), or leave it in flight.
            if let Some(stored) = outcome && !pending.is_empty() {
                let name = pending.remove(0);
                table.settle(&name, *stored);
            }
            for (server, &(count, _, max, ..)) in table.snapshot().servers.iter().zip(&servers) {
                let load = server.load.polled.unwrap_or_default()
                    + server.load.assigned_since_poll
                    + server.load.in_flight;
                if max > 0 && count.is_some_and(|c| c <= max) {
                    prop_assert!(load <= max, "{}: load {} past max {}", server.server.name, load, max);
                }
            }
        }
    }
}
