//! Property tests of the pure rules behind Login (token input and comparison, what the log
//! shows of a token) and GetChatServer (reading the load hash, choosing a server): fuzzing
//! that runs with every `cargo test` (`fuzz/` holds the cargo-fuzz targets of the same checks).
//!
//! The default is 256 cases per property; `PROPTEST_CASES=100000 cargo test -p status-actors
//! --test login_and_balancing_properties` runs longer.

use std::num::NonZeroU64;

use proptest::prelude::*;
use status_actors::balance::{LoadField, ServerLoad, parse_load_field};
use status_actors::strategy::{Candidate, least_loaded};
use status_actors::token::{
    LOGGED_TOKEN_PREFIX, LoginCheck, MAX_TOKEN_LEN, check_stored_token, mint_token,
    reject_login_input, token_prefix_for_log,
};

/// Longest excerpt of an invalid load value that `LoadField::Invalid` keeps.
const INVALID_EXCERPT_LEN: usize = 32;

/// Tokens of every length around the limits, in 1- to 4-byte characters.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-f-]{0,40}",
        (0usize..=MAX_TOKEN_LEN + 2).prop_map(|n| "x".repeat(n)),
        (0usize..=MAX_TOKEN_LEN / 2 + 2).prop_map(|n| "é".repeat(n)),
        (0usize..=12).prop_map(|n| "𝄞".repeat(n)),
        prop::collection::vec(any::<char>(), 0..200).prop_map(String::from_iter),
        Just(mint_token()),
    ]
}

fn uid() -> impl Strategy<Value = i32> {
    prop_oneof![
        any::<i32>(),
        -2i32..=2,
        Just(i32::MIN),
        Just(i32::MAX),
        Just(i32::MAX - 1)
    ]
}

fn load() -> impl Strategy<Value = ServerLoad> {
    let count = prop_oneof![0u64..5, any::<u64>(), Just(u64::MAX), Just(u64::MAX - 1)];
    (
        prop::option::of(count.clone()),
        count.clone(),
        count,
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(polled, assigned_since_poll, in_flight, reachable)| ServerLoad {
                polled,
                assigned_since_poll,
                in_flight,
                reachable,
            },
        )
}

/// The choice of docs/contract.md §3: each server's effective load, then the
/// least loaded from `start` (the `least_loaded` strategy).
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

fn start() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..10,
        any::<usize>(),
        (0usize..10).prop_map(|k| usize::MAX - k),
    ]
}

proptest! {
    #[test]
    fn login_input_is_rejected_exactly_by_the_contract(uid in uid(), token in token()) {
        let expected = if uid <= 0 {
            // The uid first, whatever the token.
            Some(LoginCheck::UidInvalid)
        } else if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            // Bytes, not characters: that is what the wire and Redis carry.
            Some(LoginCheck::TokenInvalid)
        } else {
            None
        };
        prop_assert_eq!(reject_login_input(uid, &token), expected);
    }

    #[test]
    fn stored_token_check_is_byte_equality(
        stored in prop::option::of(prop_oneof![
            any::<Vec<u8>>(),
            token().prop_map(String::into_bytes),
        ]),
        presented in token(),
    ) {
        let expected = match &stored {
            None => LoginCheck::UidInvalid,
            Some(stored) if stored.as_slice() == presented.as_bytes() => LoginCheck::Valid,
            Some(_) => LoginCheck::TokenInvalid,
        };
        prop_assert_eq!(check_stored_token(stored.as_deref(), &presented), expected);
    }

    #[test]
    fn a_stored_token_matches_itself_only(token in token(), other in token()) {
        prop_assert_eq!(check_stored_token(Some(token.as_bytes()), &token), LoginCheck::Valid);
        if other != token {
            prop_assert_eq!(
                check_stored_token(Some(token.as_bytes()), &other),
                LoginCheck::TokenInvalid
            );
        }
    }

    #[test]
    fn logs_never_show_a_whole_token(token in token()) {
        let prefix = token_prefix_for_log(&token);
        prop_assert!(token.starts_with(prefix));
        prop_assert!(prefix.chars().count() <= LOGGED_TOKEN_PREFIX);
        prop_assert!(
            prefix.len() < token.len() || token.is_empty(),
            "the whole token {:?} would be logged",
            token
        );
        // Longer tokens show their first 8 characters.
        if token.chars().count() > LOGGED_TOKEN_PREFIX {
            prop_assert_eq!(prefix.chars().count(), LOGGED_TOKEN_PREFIX);
        }
    }

    #[test]
    fn load_field_is_a_count_only_for_plain_digits(
        raw in prop::option::of(prop_oneof![
            any::<Vec<u8>>(),
            any::<u64>().prop_map(|n| n.to_string().into_bytes()),
            "[0-9]{0,25}".prop_map(String::into_bytes),
            "[ +\\-0-9.a-z]{0,6}".prop_map(String::into_bytes),
            Just(b"18446744073709551616".to_vec()),
        ]),
    ) {
        let as_count = raw
            .as_deref()
            .filter(|raw| !raw.is_empty() && raw.iter().all(u8::is_ascii_digit))
            .and_then(|raw| std::str::from_utf8(raw).ok())
            .and_then(|digits| digits.parse::<u64>().ok());
        match parse_load_field(raw.as_deref()) {
            LoadField::Missing => prop_assert!(raw.is_none()),
            LoadField::Count(count) => prop_assert_eq!(Some(count), as_count),
            LoadField::Invalid(shown) => {
                prop_assert!(raw.is_some() && as_count.is_none(), "{:?} is a count", raw);
                // A lossy excerpt of at most 32 bytes: at most 32 characters.
                prop_assert!(shown.chars().count() <= INVALID_EXCERPT_LEN);
            }
        }
    }

    #[test]
    fn every_u64_round_trips_through_the_load_hash(count in any::<u64>()) {
        prop_assert_eq!(
            parse_load_field(Some(count.to_string().as_bytes())),
            LoadField::Count(count)
        );
    }

    #[test]
    fn chosen_server_is_an_alive_one_with_the_least_load(
        loads in prop::collection::vec(load(), 0..8),
        start in start(),
    ) {
        let least = loads.iter().filter_map(ServerLoad::effective_load).min();
        match choose_server(&loads, start) {
            None => prop_assert_eq!(least, None, "an alive server was left out"),
            Some(i) => {
                prop_assert!(i < loads.len());
                prop_assert_eq!(loads[i].effective_load(), least);
                // Ties go to the first at or after `start`, wrapping around.
                let n = loads.len();
                let first = (0..n)
                    .map(|offset| ((start % n) + offset) % n)
                    .find(|&j| loads[j].effective_load() == least);
                prop_assert_eq!(Some(i), first);
            }
        }
    }

    #[test]
    fn equal_servers_take_turns(n in 1usize..8, start in start(), rounds in 1usize..40) {
        let alive = ServerLoad { polled: Some(0), reachable: true, ..ServerLoad::default() };
        let mut loads = vec![alive; n];
        let mut next = start;
        for _ in 0..rounds * n {
            let i = choose_server(&loads, next).expect("all alive");
            loads[i].assigned_since_poll += 1;
            next = i.wrapping_add(1);
        }
        prop_assert!(loads.iter().all(|l| l.assigned_since_poll == rounds as u64));
    }
}

#[test]
fn minted_tokens_pass_login_input_checks() {
    for _ in 0..256 {
        let token = mint_token();
        assert_eq!(token.len(), 36);
        assert_eq!(reject_login_input(1, &token), None);
        assert_eq!(
            check_stored_token(Some(token.as_bytes()), &token),
            LoginCheck::Valid
        );
        assert_eq!(token_prefix_for_log(&token), &token[..LOGGED_TOKEN_PREFIX]);
    }
}
