//! Unit tests of `server_table`: pure, no I/O.
use super::*;

/// Seeds the strategy's random numbers (only `p2c` draws any).
const SEED: u64 = 7;

fn server(name: &str, port: u16) -> ChatServer {
    ChatServer {
        name: name.to_string(),
        host: "127.0.0.1".to_string(),
        port,
        policy: ServerPolicy::default(),
    }
}

/// A poll that found the hash, with these fields.
fn found(fields: Vec<(&str, LoadField)>) -> LoadHash {
    LoadHash {
        key_exists: true,
        fields: fields
            .into_iter()
            .map(|(name, field)| (name.to_string(), field))
            .collect(),
    }
}

fn counts(pairs: &[(&str, u64)]) -> LoadHash {
    found(
        pairs
            .iter()
            .map(|&(name, count)| (name, LoadField::Count(count)))
            .collect(),
    )
}

/// A poll that found no hash: `EXISTS` said 0, every field is missing.
fn vanished(names: &[&str]) -> LoadHash {
    LoadHash {
        key_exists: false,
        fields: names
            .iter()
            .map(|name| (name.to_string(), LoadField::Missing))
            .collect(),
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn timeout() -> RedisFailure {
    RedisFailure::TimedOut(Duration::from_millis(300))
}

/// A table of `loads`' servers without probing, polled once with them.
fn polled(loads: &[(&str, u64)]) -> ServerTable {
    let servers = loads
        .iter()
        .zip(1..)
        .map(|(&(name, _), port)| server(name, port))
        .collect();
    let mut table = ServerTable::new(servers, false, StrategyKind::default(), SEED);
    table.apply_loads(counts(loads), at(0));
    table
}

fn load_of(table: &ServerTable, name: &str) -> ServerLoad {
    table
        .snapshot()
        .servers
        .into_iter()
        .find(|s| s.server.name == name)
        .map(|s| s.load)
        .unwrap_or_else(|| panic!("{name} is not in the table"))
}

fn names(table: &ServerTable) -> Vec<String> {
    let servers = table.snapshot().servers;
    servers.iter().map(|s| s.server.name.clone()).collect()
}

#[test]
fn placement_counts_in_flight_on_the_least_loaded_server() {
    let mut table = polled(&[("a", 5), ("b", 2)]);
    let chosen = table.place(7).expect("two alive servers");
    assert_eq!(chosen.name, "b");
    assert_eq!(load_of(&table, "b").in_flight, 1);
    assert_eq!(load_of(&table, "a").in_flight, 0);
}

#[test]
fn invalid_uid_places_nothing() {
    let mut table = polled(&[("a", 0)]);
    for uid in [0, -1, i32::MIN] {
        assert!(matches!(table.place(uid), Err(PlacementError::InvalidUid)));
    }
    assert_eq!(load_of(&table, "a").in_flight, 0);
}

#[test]
fn settle_turns_in_flight_into_an_assignment_or_frees_it() {
    let mut table = polled(&[("a", 0)]);
    for _ in 0..2 {
        table.place(1).expect("alive");
    }
    table.settle("a", true);
    let load = load_of(&table, "a");
    assert_eq!((load.in_flight, load.assigned_since_poll), (1, 1));
    table.settle("a", false);
    let load = load_of(&table, "a");
    assert_eq!((load.in_flight, load.assigned_since_poll), (0, 1));
}

#[test]
fn settle_of_a_removed_server_counts_nothing() {
    let mut table = polled(&[("a", 0), ("b", 0)]);
    let chosen = table.place(1).expect("alive");
    assert_eq!(chosen.name, "a");
    table.replace_servers(vec![server("b", 2)], false, StrategyKind::default(), SEED);
    table.settle("a", true);
    assert_eq!(names(&table), ["b"]);
    let b = load_of(&table, "b");
    assert_eq!((b.in_flight, b.assigned_since_poll), (0, 0));
}

#[test]
fn settle_never_goes_below_zero() {
    let mut table = polled(&[("a", 0)]);
    table.settle("a", false);
    assert_eq!(load_of(&table, "a").in_flight, 0);
}

#[test]
fn load_report_resets_assignments_and_sets_liveness() {
    let mut table = polled(&[("a", 0), ("b", 0)]);
    table.place(1).expect("alive");
    table.settle("a", true);
    table.place(2).expect("alive");
    assert_eq!(load_of(&table, "a").assigned_since_poll, 1);
    assert_eq!(load_of(&table, "b").in_flight, 1);

    table.apply_loads(
        found(vec![
            ("a", LoadField::Missing),
            ("b", LoadField::Count(9)),
            ("unknown", LoadField::Count(0)),
        ]),
        at(5),
    );
    let snapshot = table.snapshot();
    let (a, b) = (&snapshot.servers[0], &snapshot.servers[1]);
    assert_eq!(a.field, Some(LoadField::Missing));
    assert_eq!((a.load.polled, a.load.assigned_since_poll), (None, 0));
    assert!(!a.alive, "a field missing from the hash is not alive");
    assert_eq!(b.load.polled, Some(9));
    // Placements in flight are not in the new count yet: they stay.
    assert_eq!(b.load.in_flight, 1);
    assert!(b.alive);
    assert_eq!(snapshot.last_poll, Some(at(5)));
    assert_eq!(snapshot.servers.len(), 2, "unknown names are ignored");

    table.apply_loads(found(vec![("b", LoadField::Invalid("x".into()))]), at(6));
    assert_eq!(
        table.snapshot().alive_count(),
        0,
        "an invalid field is not alive"
    );
}

#[test]
fn probe_report_sets_reachability_when_probing() {
    let mut table = ServerTable::new(
        vec![server("a", 1), server("b", 2)],
        true,
        StrategyKind::default(),
        SEED,
    );
    table.apply_loads(counts(&[("a", 0), ("b", 0)]), at(0));
    assert_eq!(table.snapshot().alive_count(), 0, "not probed yet");
    table.apply_probes(vec![("a".into(), true), ("b".into(), false)], at(1));
    let snapshot = table.snapshot();
    assert!(snapshot.servers[0].alive && !snapshot.servers[1].alive);
    assert_eq!(snapshot.servers[0].last_probe, Some(at(1)));
    assert_eq!(table.place(1).expect("a accepts").name, "a");
}

#[test]
fn probe_report_is_ignored_when_probing_is_off() {
    let mut table = polled(&[("a", 0)]);
    table.apply_probes(vec![("a".into(), false)], at(1));
    let snapshot = table.snapshot();
    assert!(snapshot.servers[0].load.reachable);
    assert_eq!(snapshot.servers[0].last_probe, None);
}

#[test]
fn reload_keeps_counts_of_kept_servers() {
    let mut table = polled(&[("a", 4), ("b", 6)]);
    table.place(1).expect("alive");
    table.settle("a", true);
    table.place(2).expect("alive");
    let before = load_of(&table, "a");
    table.replace_servers(
        vec![server("b", 2), server("a", 1)],
        false,
        StrategyKind::default(),
        SEED,
    );
    assert_eq!(names(&table), ["b", "a"]);
    assert_eq!(load_of(&table, "a"), before);
    assert_eq!(load_of(&table, "b").polled, Some(6));
}

#[test]
fn reload_makes_moved_servers_wait_for_a_probe() {
    let mut table = ServerTable::new(
        vec![server("a", 1), server("b", 2)],
        true,
        StrategyKind::default(),
        SEED,
    );
    table.apply_loads(counts(&[("a", 3), ("b", 3)]), at(0));
    table.apply_probes(vec![("a".into(), true), ("b".into(), true)], at(0));
    table.replace_servers(
        vec![server("a", 1), server("b", 20)],
        true,
        StrategyKind::default(),
        SEED,
    );
    let snapshot = table.snapshot();
    let (a, b) = (&snapshot.servers[0], &snapshot.servers[1]);
    assert!(a.load.reachable, "a kept its address");
    assert!(!b.load.reachable, "b moved: not probed at its new address");
    assert_eq!(b.server.port, 20);
    assert_eq!(b.load.polled, Some(3), "the count belongs to the name");
}

#[test]
fn reload_that_turns_probing_on_or_off_resets_reachability() {
    let mut table = polled(&[("a", 0)]);
    table.replace_servers(vec![server("a", 1)], true, StrategyKind::default(), SEED);
    assert!(!load_of(&table, "a").reachable, "probing just turned on");
    table.apply_probes(vec![("a".into(), false)], at(1));
    table.replace_servers(vec![server("a", 1)], false, StrategyKind::default(), SEED);
    assert!(
        load_of(&table, "a").reachable,
        "without probing all reachable"
    );
}

#[test]
fn reload_adds_and_removes_servers() {
    let mut table = polled(&[("a", 1), ("b", 1)]);
    table.replace_servers(
        vec![server("a", 1), server("c", 3)],
        false,
        StrategyKind::default(),
        SEED,
    );
    assert_eq!(names(&table), ["a", "c"]);
    let c = load_of(&table, "c");
    assert_eq!(
        (c.polled, c.reachable),
        (None, true),
        "added: not polled yet"
    );
    table.replace_servers(vec![server("d", 4)], true, StrategyKind::default(), SEED);
    assert!(
        !load_of(&table, "d").reachable,
        "added while probing: not probed yet"
    );
}

#[test]
fn no_load_data_before_the_first_poll() {
    let mut table = ServerTable::new(vec![server("a", 1)], false, StrategyKind::default(), SEED);
    let err = table.place(1).expect_err("never polled");
    assert!(matches!(err, PlacementError::NoLoadData));
    assert_eq!(
        err.to_string(),
        "no chat server is alive: the load hash has not been read yet (is Redis reachable?)"
    );
}

#[test]
fn unavailable_names_every_server_and_why() {
    let mut table = ServerTable::new(
        vec![server("up", 1), server("bad", 2), server("gone", 3)],
        true,
        StrategyKind::default(),
        SEED,
    );
    table.apply_loads(
        found(vec![
            ("up", LoadField::Count(0)),
            ("bad", LoadField::Invalid("x".into())),
            ("gone", LoadField::Missing),
        ]),
        at(0),
    );
    table.apply_probes(vec![("up".into(), false)], at(0));
    let err = table.place(1).expect_err("nothing alive");
    assert_eq!(
        err.to_string(),
        "no chat server is alive (up: does not accept TCP connections; \
         bad: its load field is not a count; gone: not in the load hash)"
    );
}

#[test]
fn ties_take_turns_and_a_reload_restarts_the_rotation() {
    let mut table = polled(&[("a", 0), ("b", 0), ("c", 0)]);
    let mut chosen = Vec::new();
    for uid in 1..=6 {
        let server = table.place(uid).expect("alive");
        table.settle(&server.name, false);
        chosen.push(server.name.clone());
    }
    assert_eq!(chosen, ["a", "b", "c", "a", "b", "c"]);
    table.place(7).expect("alive");
    table.settle("a", false);
    table.replace_servers(
        vec![server("a", 1), server("b", 2), server("c", 3)],
        false,
        StrategyKind::default(),
        SEED,
    );
    assert_eq!(table.place(8).expect("alive").name, "a");
}

#[test]
fn polls_feed_redis_health_failures_and_recoveries() {
    let mut table = ServerTable::new(vec![server("a", 1)], false, StrategyKind::default(), SEED);
    assert!(!table.snapshot().redis_ok, "not polled yet");
    table.record_poll_failure(&timeout(), at(0));
    table.apply_loads(counts(&[("a", 0)]), at(1));
    assert!(table.snapshot().redis_ok);
    table.record_poll_failure(&timeout(), at(2));
    table.record_poll_failure(&timeout(), at(3));
    let snapshot = table.snapshot();
    assert!(!snapshot.redis_ok);
    assert_eq!(snapshot.last_poll, Some(at(1)), "the counts stay");
    assert_eq!(snapshot.poll_failures, 3);
    assert_eq!(snapshot.poll_recoveries, 1);
    table.apply_loads(counts(&[("a", 0)]), at(4));
    let snapshot = table.snapshot();
    assert!(snapshot.redis_ok);
    assert_eq!((snapshot.poll_failures, snapshot.poll_recoveries), (3, 2));
}

#[test]
fn counts_survive_a_failed_poll() {
    let mut table = polled(&[("a", 3)]);
    table.place(1).expect("alive");
    table.settle("a", true);
    table.record_poll_failure(&timeout(), at(1));
    let load = load_of(&table, "a");
    assert_eq!((load.polled, load.assigned_since_poll), (Some(3), 1));
    assert_eq!(table.place(2).expect("still alive").name, "a");
}

/// Probing on: a (count 5), b (0), c (no field) and d (count 0) polled;
/// all but d accept TCP connections.
fn probed_then_vanished() -> ServerTable {
    let names = ["a", "b", "c", "d"];
    let servers = names.iter().zip(1..).map(|(n, p)| server(n, p)).collect();
    let mut table = ServerTable::new(servers, true, StrategyKind::default(), SEED);
    table.apply_loads(
        found(vec![
            ("a", LoadField::Count(5)),
            ("b", LoadField::Count(0)),
            ("c", LoadField::Missing),
            ("d", LoadField::Count(0)),
        ]),
        at(0),
    );
    let reachable = names.iter().map(|n| (n.to_string(), *n != "d")).collect();
    table.apply_probes(reachable, at(0));
    table.place(1).expect("b is the least loaded");
    table.settle("b", true);
    table.apply_loads(vanished(&names), at(1));
    table
}

#[test]
fn a_vanished_hash_keeps_reachable_servers_with_their_last_counts_when_probing() {
    let snapshot = probed_then_vanished().snapshot();
    assert!(!snapshot.load_hash_present);
    assert!(snapshot.redis_ok, "Redis answered the poll");
    assert_eq!(snapshot.last_poll, Some(at(1)));
    let state: Vec<_> = snapshot
        .servers
        .iter()
        .map(|s| (s.server.name.as_str(), s.load.polled, s.alive))
        .collect();
    assert_eq!(
        state,
        [
            ("a", Some(5), true),
            ("b", Some(0), true),
            ("c", Some(0), true),  // never had a count: 0
            ("d", Some(0), false), // does not accept TCP connections
        ]
    );
    let b = &snapshot.servers[1];
    assert_eq!(b.load.assigned_since_poll, 1, "assignments are kept");
    assert_eq!(
        snapshot.servers[2].field,
        Some(LoadField::Missing),
        "fields stay as the hash last said"
    );
}

#[test]
fn assignments_add_up_while_the_hash_is_gone() {
    let mut table = probed_then_vanished();
    let mut chosen = Vec::new();
    for uid in 2..=5 {
        let server = table.place(uid).expect("alive servers");
        table.settle(&server.name, true);
        chosen.push(server.name.to_string());
        table.apply_loads(vanished(&["a", "b", "c", "d"]), at(2));
    }
    // b already had one user: c catches up, then they take turns.
    assert_eq!(chosen, ["c", "b", "c", "b"]);
    let assigned = |name| load_of(&table, name).assigned_since_poll;
    assert_eq!((assigned("b"), assigned("c")), (3, 2));
}

#[test]
fn once_the_hash_is_back_its_fields_rule_again() {
    let mut table = probed_then_vanished();
    table.apply_loads(found(vec![("a", LoadField::Count(7))]), at(2));
    let snapshot = table.snapshot();
    assert!(snapshot.load_hash_present);
    assert_eq!(load_of(&table, "a").polled, Some(7));
    table.apply_loads(
        found(vec![
            ("a", LoadField::Count(7)),
            ("b", LoadField::Missing),
            ("c", LoadField::Missing),
            ("d", LoadField::Missing),
        ]),
        at(3),
    );
    let snapshot = table.snapshot();
    assert_eq!(snapshot.alive_count(), 1, "only a has a field");
    assert_eq!(load_of(&table, "b").assigned_since_poll, 0);
}

#[test]
fn fields_read_prove_the_hash_exists_whatever_exists_said() {
    let mut table = probed_then_vanished();
    let created_in_between = LoadHash {
        key_exists: false,
        fields: vec![
            ("a".into(), LoadField::Count(1)),
            ("b".into(), LoadField::Missing),
        ],
    };
    table.apply_loads(created_in_between, at(2));
    assert!(table.snapshot().load_hash_present);
    assert!(!table.snapshot().servers[1].alive, "b has no field");
}

#[test]
fn without_probing_a_vanished_hash_leaves_no_server_alive() {
    let mut table = polled(&[("a", 3), ("b", 0)]);
    table.apply_loads(vanished(&["a", "b"]), at(1));
    let snapshot = table.snapshot();
    assert!(!snapshot.load_hash_present);
    assert_eq!(snapshot.alive_count(), 0);
    let err = table.place(1).expect_err("no hash, no probes");
    assert_eq!(
        err.to_string(),
        "no chat server is alive (a: not in the load hash; b: not in the load hash)"
    );
}

#[test]
fn a_reload_that_turns_probing_off_while_the_hash_is_gone_leaves_no_server_alive() {
    let mut table = probed_then_vanished();
    let servers = ["a", "b", "c", "d"].iter().zip(1..);
    table.replace_servers(
        servers.map(|(n, p)| server(n, p)).collect(),
        false,
        StrategyKind::default(),
        SEED,
    );
    assert_eq!(table.snapshot().alive_count(), 0);
    assert_eq!(load_of(&table, "a").polled, None);
}

#[test]
fn while_the_hash_is_gone_only_the_probes_are_to_blame() {
    let mut table = probed_then_vanished();
    let unreachable = ["a", "b", "c", "d"].map(|n| (n.to_string(), false));
    table.apply_probes(unreachable.to_vec(), at(2));
    let err = table.place(1).expect_err("nothing accepts TCP connections");
    assert_eq!(
        err.to_string(),
        "no chat server is alive (a: does not accept TCP connections; \
         b: does not accept TCP connections; c: does not accept TCP connections; \
         d: does not accept TCP connections)"
    );
}

/// `server(name, port)` with this policy.
fn steered(name: &str, port: u16, weight: u64, max_connections: u64, draining: bool) -> ChatServer {
    ChatServer {
        policy: ServerPolicy {
            weight: std::num::NonZeroU64::new(weight).expect("test weights are positive"),
            max_connections,
            draining,
        },
        ..server(name, port)
    }
}

/// A table of `servers` without probing, polled once with `loads`.
fn polled_with(servers: Vec<ChatServer>, loads: &[(&str, u64)], strategy: &str) -> ServerTable {
    let strategy = crate::strategy::by_name(strategy).expect("a strategy name");
    let mut table = ServerTable::new(servers, false, strategy, SEED);
    table.apply_loads(counts(loads), at(0));
    table
}

/// Places `n` users, storing each token at once; the names chosen.
fn place_stored(table: &mut ServerTable, n: i32) -> Vec<String> {
    (1..=n)
        .map(|uid| {
            let server = table.place(uid).expect("a server can take the user");
            table.settle(&server.name, true);
            server.name.clone()
        })
        .collect()
}

#[test]
fn the_configured_strategy_chooses() {
    let servers = || vec![steered("a", 1, 1, 0, false), steered("b", 2, 3, 0, false)];
    // Loads 2 and 3: least_loaded takes a, weighted b (3/3 < 2/1).
    let mut table = polled_with(servers(), &[("a", 2), ("b", 3)], "least_loaded");
    assert_eq!(table.place(1).expect("alive").name, "a");
    let mut table = polled_with(servers(), &[("a", 2), ("b", 3)], "weighted");
    assert_eq!(table.place(1).expect("alive").name, "b");
    assert_eq!(table.snapshot().strategy.name(), "weighted");
}

#[test]
fn weighted_splits_a_burst_by_weight() {
    let servers = vec![
        steered("a", 1, 1, 0, false),
        steered("b", 2, 2, 0, false),
        steered("c", 3, 3, 0, false),
    ];
    let mut table = polled_with(servers, &[("a", 0), ("b", 0), ("c", 0)], "weighted");
    let chosen = place_stored(&mut table, 600);
    let count = |name: &str| chosen.iter().filter(|n| *n == name).count();
    assert_eq!((count("a"), count("b"), count("c")), (100, 200, 300));
}

#[test]
fn a_full_server_takes_no_more_even_with_placements_in_flight() {
    let servers = vec![steered("small", 1, 1, 10, false), server("big", 2)];
    let mut table = polled_with(servers, &[("small", 0), ("big", 1000)], "least_loaded");
    // None of the tokens stored yet: the in-flight placements count.
    let chosen: Vec<String> = (1..=30)
        .map(|uid| table.place(uid).expect("big has room").name.clone())
        .collect();
    assert_eq!(chosen.iter().filter(|n| *n == "small").count(), 10);
    assert_eq!(load_of(&table, "small").in_flight, 10);
    let snapshot = table.snapshot();
    assert_eq!(
        snapshot.servers[0].availability,
        Availability::Full { load: 10, max: 10 }
    );
    // A failed token write frees its slot again.
    table.settle("small", false);
    assert_eq!(table.place(31).expect("room again").name, "small");
}

#[test]
fn every_strategy_keeps_to_the_capacity_in_a_burst() {
    for strategy in crate::strategy::STRATEGIES {
        let servers = vec![steered("a", 1, 1, 10, false), steered("b", 2, 5, 7, false)];
        let mut table = ServerTable::new(servers, false, strategy, SEED);
        table.apply_loads(counts(&[("a", 0), ("b", 0)]), at(0));
        let placed = (1..=100).filter(|&uid| table.place(uid).is_ok()).count();
        assert_eq!(placed, 17, "{strategy:?}");
        assert_eq!(load_of(&table, "a").in_flight, 10, "{strategy:?}");
        assert_eq!(load_of(&table, "b").in_flight, 7, "{strategy:?}");
    }
}

#[test]
fn all_full_or_draining_is_exhausted_and_names_every_server() {
    let servers = vec![
        steered("full", 1, 1, 2, false),
        steered("cfg", 2, 1, 0, true),
        server("adm", 3),
        server("dead", 4),
    ];
    let mut table = polled_with(servers, &[("full", 5), ("cfg", 0), ("adm", 0)], "p2c");
    table.set_draining("adm", true).expect("adm is configured");
    let err = table.place(1).expect_err("nothing can take a user");
    assert!(
        matches!(err, PlacementError::NoServerChoosable(_)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "every chat server is full or draining (full: full: load 5 of max 2; \
         cfg: draining (config); adm: draining (admin); dead: not alive: not in the load hash)"
    );
    assert_eq!(load_of(&table, "adm").in_flight, 0, "nothing placed");
}

#[test]
fn none_alive_stays_unavailable_even_when_some_drain() {
    let mut table = ServerTable::new(
        vec![steered("a", 1, 1, 0, true)],
        false,
        StrategyKind::default(),
        SEED,
    );
    table.apply_loads(found(vec![("a", LoadField::Missing)]), at(0));
    let err = table.place(1).expect_err("nothing alive");
    assert!(matches!(err, PlacementError::NoServerAlive(_)), "{err:?}");
}

#[test]
fn a_drain_by_admin_is_kept_apart_from_the_config_and_survives_reloads() {
    let mut table = polled(&[("a", 0), ("b", 0)]);
    let drain = table.set_draining("a", true).expect("a is configured");
    assert_eq!(
        drain,
        Drain {
            by_config: false,
            by_admin: true
        }
    );
    assert_eq!(place_stored(&mut table, 4), ["b", "b", "b", "b"]);

    // A reload keeps it, and the config drains b as well.
    table.replace_servers(
        vec![server("a", 1), steered("b", 2, 1, 0, true), server("c", 3)],
        false,
        StrategyKind::default(),
        SEED,
    );
    table.apply_loads(counts(&[("a", 0), ("b", 0), ("c", 0)]), at(1));
    let drains: Vec<Drain> = table.snapshot().servers.iter().map(|s| s.drain).collect();
    assert_eq!(
        drains,
        [
            Drain {
                by_config: false,
                by_admin: true
            },
            Drain {
                by_config: true,
                by_admin: false
            },
            Drain::default(),
        ]
    );
    assert_eq!(place_stored(&mut table, 2), ["c", "c"]);

    // Undraining b by Admin leaves the config's drain in place.
    let drain = table.set_draining("b", false).expect("b is configured");
    assert_eq!(
        drain,
        Drain {
            by_config: true,
            by_admin: false
        }
    );
    assert!(drain.any());
    let drain = table.set_draining("a", false).expect("a is configured");
    assert!(!drain.any());
    assert_eq!(table.place(9).expect("a is back").name, "a");
}

#[test]
fn draining_an_unknown_server_is_an_error() {
    let mut table = polled(&[("a", 0)]);
    let err = table.set_draining("zz", true).expect_err("not configured");
    assert_eq!(err.to_string(), "no chat server is named \"zz\"");
}

#[test]
fn a_removed_server_forgets_its_drain() {
    let mut table = polled(&[("a", 0), ("b", 0)]);
    table.set_draining("a", true).expect("a is configured");
    table.replace_servers(vec![server("b", 2)], false, StrategyKind::default(), SEED);
    table.replace_servers(
        vec![server("a", 1), server("b", 2)],
        false,
        StrategyKind::default(),
        SEED,
    );
    assert_eq!(table.snapshot().servers[0].drain, Drain::default());
}

#[test]
fn a_reload_applies_policies_and_the_strategy() {
    let mut table = polled(&[("a", 0), ("b", 0)]);
    place_stored(&mut table, 2);
    let weighted = crate::strategy::by_name("weighted").expect("a strategy");
    table.replace_servers(
        vec![steered("a", 1, 1, 0, false), steered("b", 2, 4, 3, false)],
        false,
        weighted,
        SEED,
    );
    let snapshot = table.snapshot();
    assert_eq!(snapshot.strategy, weighted);
    let b = &snapshot.servers[1];
    assert_eq!(
        (
            b.server.policy.weight.get(),
            b.server.policy.max_connections
        ),
        (4, 3)
    );
    assert_eq!(
        b.load.assigned_since_poll, 1,
        "the count belongs to the name"
    );
    // a: 1/1, b: 1/4 -> b, until b is full at 3.
    assert_eq!(place_stored(&mut table, 3), ["b", "b", "a"]);
}

#[test]
fn the_snapshot_says_why_a_server_cannot_take_a_user() {
    let servers = vec![
        steered("a", 1, 1, 1, false),
        steered("b", 2, 1, 0, true),
        server("c", 3),
    ];
    let table = polled_with(servers, &[("a", 1), ("b", 0), ("c", 4)], "least_loaded");
    let availability: Vec<Availability> = table
        .snapshot()
        .servers
        .iter()
        .map(|s| s.availability)
        .collect();
    assert_eq!(
        availability,
        [
            Availability::Full { load: 1, max: 1 },
            Availability::Draining,
            Availability::Choosable(4),
        ]
    );
}

#[test]
fn a_batch_spreads_like_that_many_placements_and_skips_invalid_uids() {
    let mut table = polled(&[("a", 0), ("b", 0), ("c", 0)]);
    let uids: Vec<i32> = (1..=300).chain([0, -5]).collect();
    let placed = table.place_all(&uids).expect("three alive servers");
    assert_eq!(placed.len(), 302);
    assert!(placed[300].is_none() && placed[301].is_none());
    for name in ["a", "b", "c"] {
        assert_eq!(load_of(&table, name).in_flight, 100, "{name}");
    }
}

#[test]
fn a_batch_past_capacity_places_nothing() {
    let servers = vec![steered("a", 1, 1, 3, false), steered("b", 2, 1, 2, false)];
    let mut table = polled_with(servers, &[("a", 0), ("b", 0)], "least_loaded");
    table.place(1).expect("room for one");
    let refused = table.place_all(&[2, 3, 0, 4, 5, 6]);
    assert!(matches!(refused, Err(PlacementError::NoServerChoosable(_))));
    let in_flight = |t: &ServerTable| load_of(t, "a").in_flight + load_of(t, "b").in_flight;
    assert_eq!(in_flight(&table), 1, "only the single placement stays");
    let placed = table
        .place_all(&[2, 3, 4, 5])
        .expect("exactly room for four");
    assert!(placed.iter().all(Option::is_some));
    assert_eq!(in_flight(&table), 5);
}

#[test]
fn a_batch_without_a_poll_is_refused_whole_but_invalid_uids_alone_are_not() {
    let mut table = ServerTable::new(vec![server("a", 1)], false, StrategyKind::default(), SEED);
    assert!(matches!(
        table.place_all(&[1]),
        Err(PlacementError::NoLoadData)
    ));
    let placed = table.place_all(&[0, -1]).expect("no uid needs a server");
    assert_eq!(placed, [None, None]);
}

/// The candidates a placement chooses among are kept between placements: after any mix
/// of placements, settles, polls, probes, drains and reloads they must be what a fresh
/// look at every server gives, so no choice is made on a stale load.
#[test]
fn kept_candidates_always_match_the_servers() {
    let names = ["a", "b", "c", "d", "e"];
    let config = |max: u64| -> Vec<ChatServer> {
        names
            .iter()
            .zip(1..)
            .map(|(&name, port)| {
                let mut s = server(name, port);
                s.policy.max_connections = if name == "c" { max } else { 0 };
                s
            })
            .collect()
    };
    let mut table = ServerTable::new(config(0), true, StrategyKind::default(), SEED);
    let mut placed: Vec<Arc<ChatServer>> = Vec::new();
    // xorshift: a fixed, varied sequence of steps without a dependency.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut checked = 0;
    for step in 0..5000 {
        let name = names[next(names.len() as u64) as usize];
        match next(8) {
            0..=2 => {
                if let Ok(server) = table.place(1 + step) {
                    placed.push(server);
                }
            }
            3 | 4 => {
                if !placed.is_empty() {
                    let server = placed.swap_remove(next(placed.len() as u64) as usize);
                    table.settle(&server.name, next(2) == 0);
                }
            }
            5 => {
                let loads: Vec<(&str, u64)> = names.iter().map(|&name| (name, next(20))).collect();
                table.apply_loads(counts(&loads), at(step as u64));
            }
            6 => {
                let reachable = names
                    .iter()
                    .map(|&name| (name.to_string(), next(4) != 0))
                    .collect();
                table.apply_probes(reachable, at(step as u64));
            }
            _ => match next(3) {
                0 => {
                    table
                        .set_draining(name, next(2) == 0)
                        .expect("a configured server");
                }
                1 => table.apply_loads(vanished(&names), at(step as u64)),
                _ => table.replace_servers(
                    config(next(30)),
                    next(3) != 0,
                    StrategyKind::default(),
                    SEED,
                ),
            },
        }
        if table.candidates_fresh {
            let fresh: Vec<Candidate> = table.servers.iter().map(candidate_of).collect();
            assert_eq!(table.candidates, fresh, "after step {step}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "the kept list was checked {checked} times");
}
