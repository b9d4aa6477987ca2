//! The Login request's input checks and the token comparison, on arbitrary uid, token and
//! stored value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use status_actors::token::{
    LOGGED_TOKEN_PREFIX, LoginCheck, MAX_TOKEN_LEN, check_stored_token, reject_login_input,
    token_prefix_for_log,
};

fuzz_target!(|input: (i32, String, Option<Vec<u8>>)| {
    let (uid, token, stored) = input;

    let rejected = reject_login_input(uid, &token);
    let expected = if uid <= 0 {
        Some(LoginCheck::UidInvalid)
    } else if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        Some(LoginCheck::TokenInvalid)
    } else {
        None
    };
    assert_eq!(rejected, expected, "uid {uid}, token {token:?}");

    let checked = check_stored_token(stored.as_deref(), &token);
    let expected = match &stored {
        None => LoginCheck::UidInvalid,
        Some(stored) if stored.as_slice() == token.as_bytes() => LoginCheck::Valid,
        Some(_) => LoginCheck::TokenInvalid,
    };
    assert_eq!(checked, expected);

    let prefix = token_prefix_for_log(&token);
    assert!(token.starts_with(prefix));
    assert!(prefix.chars().count() <= LOGGED_TOKEN_PREFIX);
    assert!(
        prefix.len() < token.len() || token.is_empty(),
        "the whole token {token:?} would be logged"
    );
});
