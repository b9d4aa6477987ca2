//! The load hash's values and the choice of a server: never a panic, and the choice is
//! always an alive server with the least effective load.
#![no_main]

use std::num::NonZeroU64;

use libfuzzer_sys::fuzz_target;
use status_actors::balance::{LoadField, ServerLoad, parse_load_field};
use status_actors::strategy::{Candidate, least_loaded};

/// `ServerLoad`'s fields: polled, assigned_since_poll, in_flight, reachable.
type Slot = (Option<u64>, u64, u64, bool);

fuzz_target!(|input: (Option<Vec<u8>>, Vec<Slot>, usize)| {
    let (raw, slots, start) = input;

    let digits = raw
        .as_deref()
        .filter(|raw| !raw.is_empty() && raw.iter().all(u8::is_ascii_digit));
    let as_u64 = digits
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .and_then(|s| s.parse::<u64>().ok());
    match parse_load_field(raw.as_deref()) {
        LoadField::Missing => assert!(raw.is_none()),
        LoadField::Count(count) => assert_eq!(as_u64, Some(count)),
        LoadField::Invalid(shown) => {
            assert!(raw.is_some() && as_u64.is_none(), "{raw:?} is a count");
            // At most 32 bytes of the value, each shown as at most one character.
            assert!(shown.chars().count() <= 32);
        }
    }

    let loads: Vec<ServerLoad> = slots
        .into_iter()
        .map(
            |(polled, assigned_since_poll, in_flight, reachable)| ServerLoad {
                polled,
                assigned_since_poll,
                in_flight,
                reachable,
            },
        )
        .collect();
    let least = loads.iter().filter_map(ServerLoad::effective_load).min();
    let candidates: Vec<Candidate> = loads
        .iter()
        .map(|load| Candidate {
            load: load.effective_load(),
            weight: NonZeroU64::MIN,
        })
        .collect();
    match least_loaded(&candidates, start) {
        None => assert_eq!(least, None),
        Some(i) => {
            assert_eq!(loads[i].effective_load(), least);
            // Ties go to the first at or after `start`, wrapping around.
            let n = loads.len();
            let first = (0..n)
                .map(|offset| (start % n + offset) % n)
                .find(|&j| loads[j].effective_load() == least);
            assert_eq!(Some(i), first);
        }
    }
});
