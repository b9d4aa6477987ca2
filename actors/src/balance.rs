//! A ChatServer's load and whether it may take a user: the pure rules the
//! `ServerRegistry` applies before a [strategy](crate::strategy) chooses.
//!
//! Kept free of actors and I/O so unit tests can drive every case. A server's
//! load is its last polled connection count plus what this instance sent its
//! way since that poll (stored, and still in flight), so a burst between two
//! polls spreads across servers instead of piling onto the one that looked
//! emptiest at the poll, and a capacity holds under a burst too.

/// A field of the load hash, as the last successful poll read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadField {
    /// A base-10 integer >= 0, as ChatServers write it.
    Count(u64),
    /// No field for this server: it is not running (or never started).
    Missing,
    /// The field holds something else; shown (shortened) in the warning.
    Invalid(String),
}

/// The load hash as one poll read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadHash {
    /// What `EXISTS` answered for the key, in the same round trip as the fields.
    pub key_exists: bool,
    /// One entry per configured server: its field as `HMGET` read it.
    pub fields: Vec<(String, LoadField)>,
}

impl LoadHash {
    /// Whether the hash exists. The two reads are not one transaction: a
    /// field that was read proves the hash existed even when `EXISTS`, sent
    /// just before, said no (a ChatServer created it in between).
    pub fn exists(&self) -> bool {
        self.key_exists
            || self
                .fields
                .iter()
                .any(|(_, field)| *field != LoadField::Missing)
    }
}

/// Longest excerpt of an invalid load value kept for the log line.
const INVALID_EXCERPT_LEN: usize = 32;

/// Interprets one value of the load hash (`None` when the field is absent).
///
/// Only plain ASCII digits count: `+5`, ` 5`, `-1`, `5.0` and values beyond
/// `u64` are invalid, because no ChatServer writes them.
pub fn parse_load_field(raw: Option<&[u8]>) -> LoadField {
    let Some(raw) = raw else {
        return LoadField::Missing;
    };
    let count = if !raw.is_empty() && raw.iter().all(u8::is_ascii_digit) {
        // All ASCII digits, so valid UTF-8; only overflow can fail here.
        std::str::from_utf8(raw).ok().and_then(|s| s.parse().ok())
    } else {
        None
    };
    match count {
        Some(count) => LoadField::Count(count),
        None => {
            let shown = &raw[..raw.len().min(INVALID_EXCERPT_LEN)];
            LoadField::Invalid(String::from_utf8_lossy(shown).into_owned())
        }
    }
}

/// What the registry knows about one server between polls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerLoad {
    /// Count from the last successful poll; `None` until one saw a valid count.
    pub polled: Option<u64>,
    /// Tokens stored for this server since that poll.
    pub assigned_since_poll: u64,
    /// Placements chosen whose token write has not finished yet. They count
    /// provisionally, so concurrent requests spread before their writes land.
    pub in_flight: u64,
    /// Whether the last TCP probe connected (always true when probing is off).
    pub reachable: bool,
}

impl ServerLoad {
    /// The load used to compare servers, or `None` when the server is not alive.
    pub fn effective_load(&self) -> Option<u64> {
        if !self.reachable {
            return None;
        }
        self.polled.map(|polled| {
            polled
                .saturating_add(self.assigned_since_poll)
                .saturating_add(self.in_flight)
        })
    }
}

/// Whether a server may take one more user, and if not, why not
/// (docs/contract.md §7: alive, not draining, and below its capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// It may: this is its load.
    Choosable(u64),
    /// Not alive (§3): no valid count, or it does not accept TCP connections.
    NotAlive,
    /// Alive, but the config or an Admin call drains it.
    Draining,
    /// Alive, but its load has reached `max_connections`.
    Full { load: u64, max: u64 },
}

impl Availability {
    /// The load, when it may take a user.
    pub fn choosable_load(self) -> Option<u64> {
        match self {
            Availability::Choosable(load) => Some(load),
            Availability::NotAlive | Availability::Draining | Availability::Full { .. } => None,
        }
    }
}

impl ServerLoad {
    /// Whether the server may take one more user: alive, not `draining`,
    /// and, unless `max_connections` is 0 (no limit), its load below it. A
    /// drain is named before a full server: it is the operator's choice.
    pub fn availability(&self, draining: bool, max_connections: u64) -> Availability {
        let Some(load) = self.effective_load() else {
            return Availability::NotAlive;
        };
        if draining {
            Availability::Draining
        } else if max_connections != 0 && load >= max_connections {
            Availability::Full {
                load,
                max: max_connections,
            }
        } else {
            Availability::Choosable(load)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use super::*;
    use crate::strategy::{Candidate, least_loaded};

    /// The choice of docs/contract.md §3: each server's effective load,
    /// then the least loaded from `start`.
    fn choose_server(loads: &[ServerLoad], start: usize) -> Option<usize> {
        let candidates: Vec<Candidate> = loads
            .iter()
            .map(|load| Candidate {
                load: load.effective_load(),
                weight: NonZeroU64::MIN,
            })
            .collect();
        least_loaded(&candidates, start)
    }

    fn alive(polled: u64) -> ServerLoad {
        ServerLoad {
            polled: Some(polled),
            reachable: true,
            ..ServerLoad::default()
        }
    }

    #[test]
    fn parses_plain_decimal_counts() {
        assert_eq!(parse_load_field(Some(b"0")), LoadField::Count(0));
        assert_eq!(parse_load_field(Some(b"42")), LoadField::Count(42));
        assert_eq!(
            parse_load_field(Some(b"18446744073709551615")),
            LoadField::Count(u64::MAX)
        );
    }

    #[test]
    fn missing_field_is_missing() {
        assert_eq!(parse_load_field(None), LoadField::Missing);
    }

    #[test]
    fn anything_but_digits_is_invalid() {
        for raw in [
            &b""[..],
            b"-1",
            b"+5",
            b" 5",
            b"5 ",
            b"5.0",
            b"abc",
            b"\xff\xfe",
            b"18446744073709551616",
        ] {
            assert!(
                matches!(parse_load_field(Some(raw)), LoadField::Invalid(_)),
                "{raw:?} should be invalid"
            );
        }
    }

    #[test]
    fn invalid_value_is_shortened_for_the_log() {
        let long = vec![b'x'; 1000];
        let LoadField::Invalid(shown) = parse_load_field(Some(&long)) else {
            panic!("1000 x's are not a count");
        };
        assert_eq!(shown.len(), INVALID_EXCERPT_LEN);
    }

    fn hash(key_exists: bool, fields: &[LoadField]) -> LoadHash {
        LoadHash {
            key_exists,
            fields: fields
                .iter()
                .map(|field| ("s".to_string(), field.clone()))
                .collect(),
        }
    }

    #[test]
    fn the_hash_exists_when_exists_says_so_or_a_field_was_read() {
        use LoadField::{Count, Invalid, Missing};
        assert!(
            hash(true, &[Missing, Missing]).exists(),
            "only other fields"
        );
        assert!(hash(true, &[]).exists());
        assert!(!hash(false, &[Missing, Missing]).exists());
        assert!(!hash(false, &[]).exists());
        assert!(
            hash(false, &[Missing, Count(3)]).exists(),
            "created between"
        );
        assert!(hash(false, &[Invalid("x".into())]).exists());
    }

    #[test]
    fn picks_least_polled_load() {
        let loads = [alive(5), alive(2), alive(9)];
        assert_eq!(choose_server(&loads, 0), Some(1));
    }

    #[test]
    fn assignments_and_in_flight_count_as_load() {
        let mut busy = alive(2);
        busy.assigned_since_poll = 3;
        let mut pending = alive(1);
        pending.in_flight = 5;
        let loads = [busy, pending, alive(4)];
        assert_eq!(choose_server(&loads, 0), Some(2));
    }

    #[test]
    fn not_polled_or_unreachable_servers_are_never_chosen() {
        let never_polled = ServerLoad {
            reachable: true,
            ..ServerLoad::default()
        };
        let unreachable = ServerLoad {
            polled: Some(0),
            reachable: false,
            ..ServerLoad::default()
        };
        let loads = [never_polled, unreachable, alive(100)];
        assert_eq!(choose_server(&loads, 0), Some(2));
        assert_eq!(choose_server(&loads[..2], 0), None);
        assert_eq!(choose_server(&[], 0), None);
    }

    #[test]
    fn ties_rotate_from_start() {
        let loads = [alive(3), alive(3), alive(3)];
        assert_eq!(choose_server(&loads, 0), Some(0));
        assert_eq!(choose_server(&loads, 1), Some(1));
        assert_eq!(choose_server(&loads, 2), Some(2));
        assert_eq!(choose_server(&loads, 3), Some(0));
    }

    #[test]
    fn a_burst_between_polls_spreads_evenly() {
        let mut loads = vec![alive(0), alive(0), alive(0)];
        let mut start = 0;
        for _ in 0..300 {
            let i = choose_server(&loads, start).expect("three alive servers");
            loads[i].assigned_since_poll += 1;
            start = i + 1;
        }
        let counts: Vec<u64> = loads.iter().map(|l| l.assigned_since_poll).collect();
        assert_eq!(counts, vec![100, 100, 100]);
    }

    #[test]
    fn any_start_is_taken_modulo_the_number_of_servers() {
        // Found by fuzzing: `start + offset` overflowed, so from usize::MAX the rotation
        // panicked (debug) or visited server 0 twice and never the last one (release).
        let loads = [alive(5), alive(5), alive(1)];
        for start in [usize::MAX, usize::MAX - 1, usize::MAX - 2, 3, 4, 5] {
            assert_eq!(choose_server(&loads, start), Some(2), "start {start}");
        }
        let ties = [alive(3), alive(3), alive(3)];
        // usize::MAX = 3 * 6148914691236517205, so it starts at server 0.
        assert_eq!(choose_server(&ties, usize::MAX), Some(0));
        assert_eq!(choose_server(&ties, usize::MAX - 1), Some(2));
        assert_eq!(choose_server(&[], usize::MAX), None);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let mut huge = alive(u64::MAX);
        huge.in_flight = 1;
        assert_eq!(huge.effective_load(), Some(u64::MAX));
        assert_eq!(choose_server(&[huge, alive(1)], 0), Some(1));
    }

    #[test]
    fn an_alive_server_below_its_capacity_is_choosable() {
        let mut load = alive(3);
        load.assigned_since_poll = 2;
        load.in_flight = 4;
        assert_eq!(load.availability(false, 0), Availability::Choosable(9));
        assert_eq!(load.availability(false, 10), Availability::Choosable(9));
        assert_eq!(Availability::Choosable(9).choosable_load(), Some(9));
    }

    #[test]
    fn capacity_counts_assignments_and_placements_in_flight() {
        let mut load = alive(7);
        assert_eq!(load.availability(false, 10), Availability::Choosable(7));
        load.assigned_since_poll = 2;
        assert_eq!(load.availability(false, 10), Availability::Choosable(9));
        load.in_flight = 1;
        let full = Availability::Full { load: 10, max: 10 };
        assert_eq!(load.availability(false, 10), full);
        assert_eq!(full.choosable_load(), None);
    }

    #[test]
    fn zero_means_no_limit_even_at_the_largest_load() {
        assert_eq!(
            alive(u64::MAX).availability(false, 0),
            Availability::Choosable(u64::MAX)
        );
        let mut huge = alive(u64::MAX - 1);
        huge.in_flight = 5;
        assert_eq!(
            huge.availability(false, 0),
            Availability::Choosable(u64::MAX),
            "saturated, still no limit"
        );
    }

    #[test]
    fn capacity_edges() {
        assert_eq!(alive(0).availability(false, 1), Availability::Choosable(0));
        assert_eq!(
            alive(1).availability(false, 1),
            Availability::Full { load: 1, max: 1 }
        );
        assert_eq!(
            alive(u64::MAX - 1).availability(false, u64::MAX),
            Availability::Choosable(u64::MAX - 1)
        );
        assert_eq!(
            alive(u64::MAX).availability(false, u64::MAX),
            Availability::Full {
                load: u64::MAX,
                max: u64::MAX
            }
        );
    }

    #[test]
    fn a_polled_count_above_the_capacity_is_full() {
        // The ChatServer took users from elsewhere (another instance, a
        // lowered max_connections): full, with the load as counted.
        assert_eq!(
            alive(25).availability(false, 10),
            Availability::Full { load: 25, max: 10 }
        );
    }

    #[test]
    fn draining_is_named_before_full_and_dead_before_both() {
        assert_eq!(alive(0).availability(true, 0), Availability::Draining);
        assert_eq!(alive(10).availability(true, 10), Availability::Draining);
        let unreachable = ServerLoad {
            polled: Some(0),
            ..ServerLoad::default()
        };
        assert_eq!(unreachable.availability(true, 1), Availability::NotAlive);
        let never_polled = ServerLoad {
            reachable: true,
            ..ServerLoad::default()
        };
        assert_eq!(never_polled.availability(false, 0), Availability::NotAlive);
    }
}
