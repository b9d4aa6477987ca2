//! Login tokens: how they are minted, which inputs are rejected before Redis,
//! and how a presented token is compared with the stored one.
//!
//! Pure functions, so the rules of docs/contract.md §3 are unit-tested without Redis.

use subtle::ConstantTimeEq;

/// Longest token Login accepts; longer ones are rejected without reading Redis.
pub const MAX_TOKEN_LEN: usize = 128;

/// Characters of a token that may appear in logs (never the whole token).
pub const LOGGED_TOKEN_PREFIX: usize = 8;

/// A fresh random UUID v4 in canonical lowercase form (36 characters).
pub fn mint_token() -> String {
    // Encoded straight into its buffer: `to_string` goes through `fmt`.
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut buffer)
        .to_owned()
}

/// The short prefix of a token that logs may show.
pub fn token_prefix_for_log(token: &str) -> &str {
    token
        .char_indices()
        .nth(LOGGED_TOKEN_PREFIX)
        .map_or("", |(end, _)| &token[..end])
}

/// Outcome of a Login check, before it becomes a wire error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCheck {
    /// The token matches the one stored for the uid.
    Valid,
    /// `uid <= 0`, or no token is stored for it.
    UidInvalid,
    /// The token is empty, too long, or not the stored one.
    TokenInvalid,
}

/// Rejects what Login must answer without reading Redis; `None` means "ask Redis".
///
/// The uid is checked first, as the contract requires.
pub fn reject_login_input(uid: i32, token: &str) -> Option<LoginCheck> {
    if uid <= 0 {
        Some(LoginCheck::UidInvalid)
    } else if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        Some(LoginCheck::TokenInvalid)
    } else {
        None
    }
}

/// Compares the presented token with the stored one (`None`: nothing stored).
///
/// Equal-length tokens compare in constant time, so response timing does not
/// reveal how much of a guessed token was right.
pub fn check_stored_token(stored: Option<&[u8]>, presented: &str) -> LoginCheck {
    match stored {
        None => LoginCheck::UidInvalid,
        Some(stored) if bool::from(stored.ct_eq(presented.as_bytes())) => LoginCheck::Valid,
        Some(_) => LoginCheck::TokenInvalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_canonical_lowercase_uuid_v4() {
        let token = mint_token();
        assert_eq!(token.len(), 36);
        let parsed = uuid::Uuid::parse_str(&token).expect("minted token parses as a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.hyphenated().to_string(), token, "canonical form");
        assert!(!token.chars().any(|c| c.is_ascii_uppercase()));
    }

    #[test]
    fn minted_tokens_differ() {
        assert_ne!(mint_token(), mint_token());
    }

    #[test]
    fn log_prefix_is_short_and_char_safe() {
        let token = "0123456789abcdef";
        assert_eq!(token_prefix_for_log(token), "01234567");
        assert_eq!(token_prefix_for_log("short"), "");
        assert_eq!(token_prefix_for_log("ééééééééé"), "éééééééé");
    }

    #[test]
    fn uid_is_checked_before_token() {
        assert_eq!(reject_login_input(0, ""), Some(LoginCheck::UidInvalid));
        assert_eq!(reject_login_input(-1, "t"), Some(LoginCheck::UidInvalid));
        assert_eq!(
            reject_login_input(i32::MIN, "t"),
            Some(LoginCheck::UidInvalid)
        );
    }

    #[test]
    fn empty_or_oversized_token_is_rejected() {
        assert_eq!(reject_login_input(1, ""), Some(LoginCheck::TokenInvalid));
        let long = "x".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(reject_login_input(1, &long), Some(LoginCheck::TokenInvalid));
        let max = "x".repeat(MAX_TOKEN_LEN);
        assert_eq!(reject_login_input(i32::MAX, &max), None);
    }

    #[test]
    fn stored_token_comparison() {
        assert_eq!(check_stored_token(None, "abc"), LoginCheck::UidInvalid);
        assert_eq!(check_stored_token(Some(b"abc"), "abc"), LoginCheck::Valid);
        assert_eq!(
            check_stored_token(Some(b"abc"), "abd"),
            LoginCheck::TokenInvalid
        );
        assert_eq!(
            check_stored_token(Some(b"abc"), "abcd"),
            LoginCheck::TokenInvalid
        );
    }
}
