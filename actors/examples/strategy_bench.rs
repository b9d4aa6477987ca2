//! How fast each balancing strategy chooses, and how evenly it spreads users.
//!
//! ```sh
//! cargo run --release -p status-actors --example strategy_bench
//! ```
//!
//! Prints, for 3, 100 and 1000 servers: nanoseconds per choice of the strategy alone
//! (`Strategy::choose` on ready candidates) and per placement through the table
//! (`ServerTable::place` + `settle`: the candidates built from each server's load,
//! capacity and drain, then the choice). Then, after 10 000 placements on 100 idle
//! servers of mixed weights (1 to 4), the max/mean ratio of the servers' loads and of
//! their loads per weight: 1.00 is a perfectly even spread. Figures, not assertions;
//! the tests hold the rules.

use std::hint::black_box;
use std::num::NonZeroU64;
use std::time::{Instant, SystemTime};

use status_actors::balance::{LoadField, LoadHash};
use status_actors::server_table::ServerTable;
use status_actors::strategy::{Candidate, STRATEGIES, StrategyKind};
use status_actors::{ChatServer, ServerPolicy};

/// Choices timed per (strategy, size): about the same total work for each size.
fn rounds(servers: usize) -> u32 {
    match servers {
        0..=10 => 2_000_000,
        11..=200 => 200_000,
        _ => 20_000,
    }
}

/// Weights 1, 2, 3, 4, 1, 2, ...
fn weight(i: usize) -> NonZeroU64 {
    NonZeroU64::new(1 + (i % 4) as u64).expect("1 to 4")
}

fn candidates(servers: usize) -> Vec<Candidate> {
    (0..servers)
        .map(|i| Candidate {
            // Busy and idle servers mixed; every tenth cannot take a user.
            load: (i % 10 != 9).then_some((i as u64 * 7919) % 1000),
            weight: weight(i),
        })
        .collect()
}

fn table(kind: StrategyKind, servers: usize) -> ServerTable {
    let configured = (0..servers)
        .map(|i| ChatServer {
            name: format!("chat{i}"),
            host: "127.0.0.1".to_string(),
            port: 1,
            policy: ServerPolicy {
                weight: weight(i),
                max_connections: 0,
                draining: false,
            },
        })
        .collect();
    let mut table = ServerTable::new(configured, false, kind, 42);
    let fields = (0..servers)
        .map(|i| (format!("chat{i}"), LoadField::Count(0)))
        .collect();
    table.apply_loads(
        LoadHash {
            key_exists: true,
            fields,
        },
        SystemTime::now(),
    );
    table
}

/// Nanoseconds per `Strategy::choose`, the chosen server's load growing by one each time.
fn ns_per_choice(kind: StrategyKind, servers: usize) -> f64 {
    let mut strategy = kind.build(42);
    let mut candidates = candidates(servers);
    let rounds = rounds(servers);
    let started = Instant::now();
    for _ in 0..rounds {
        if let Some(i) = strategy.choose(black_box(&candidates)) {
            candidates[i].load = candidates[i].load.map(|load| load + 1);
        }
    }
    started.elapsed().as_nanos() as f64 / f64::from(rounds)
}

/// Nanoseconds per placement through the table, each token stored at once.
fn ns_per_placement(kind: StrategyKind, servers: usize) -> f64 {
    let mut table = table(kind, servers);
    let rounds = rounds(servers);
    let started = Instant::now();
    for uid in 0..rounds {
        let uid = i32::try_from(uid % 1_000_000 + 1).expect("below i32::MAX");
        if let Ok(server) = table.place(black_box(uid)) {
            table.settle(&server.name, true);
        }
    }
    started.elapsed().as_nanos() as f64 / f64::from(rounds)
}

/// Max/mean of the loads, and of the loads per weight, after `placements`.
fn spread(kind: StrategyKind, servers: usize, placements: i32) -> (f64, f64) {
    let mut table = table(kind, servers);
    for uid in 1..=placements {
        let server = table.place(uid).expect("idle servers without a limit");
        table.settle(&server.name, true);
    }
    let snapshot = table.snapshot();
    let loads: Vec<f64> = snapshot
        .servers
        .iter()
        .map(|s| s.load.assigned_since_poll as f64)
        .collect();
    let per_weight: Vec<f64> = snapshot
        .servers
        .iter()
        .map(|s| s.load.assigned_since_poll as f64 / s.server.policy.weight.get() as f64)
        .collect();
    (max_over_mean(&loads), max_over_mean(&per_weight))
}

fn max_over_mean(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().copied().fold(0.0, f64::max) / mean
}

fn main() {
    println!("ns per choice (Strategy::choose) / per placement (ServerTable::place + settle)");
    println!(
        "{:<14}{:>22}{:>22}{:>22}",
        "strategy", "3 servers", "100 servers", "1000 servers"
    );
    for kind in STRATEGIES {
        let cells: Vec<String> = [3, 100, 1000]
            .into_iter()
            .map(|n| {
                format!(
                    "{:.0} / {:.0}",
                    ns_per_choice(kind, n),
                    ns_per_placement(kind, n)
                )
            })
            .collect();
        println!(
            "{:<14}{:>22}{:>22}{:>22}",
            kind.name(),
            cells[0],
            cells[1],
            cells[2]
        );
    }
    println!();
    println!("10000 placements on 100 idle servers, weights 1,2,3,4 repeated: max/mean of");
    println!("{:<14}{:>12}{:>18}", "strategy", "load", "load / weight");
    for kind in STRATEGIES {
        let (load, per_weight) = spread(kind, 100, 10_000);
        println!("{:<14}{:>12.2}{:>18.2}", kind.name(), load, per_weight);
    }
}
