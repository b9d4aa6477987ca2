//! What a batch call may hold (docs/contract.md §9): at most
//! [`MAX_BATCH_ITEMS`] items, and in a GetChatServers batch no uid twice
//! (two tokens minted for one uid in one call, the second replacing the
//! first in Redis, would hand the caller a token that no longer logs in).
//!
//! Pure checks, run before anything reaches the actors; a batch that fails
//! one is answered `INVALID_ARGUMENT` whole.

use std::collections::HashSet;
use std::fmt;

/// Most items in one batch call.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Why a batch is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// More than [`MAX_BATCH_ITEMS`] items.
    TooManyItems(usize),
    /// This uid appears more than once in a GetChatServers batch.
    DuplicateUid(i32),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::TooManyItems(n) => {
                write!(
                    f,
                    "a batch holds at most {MAX_BATCH_ITEMS} items, this one {n}"
                )
            }
            BatchError::DuplicateUid(uid) => {
                write!(f, "uid {uid} appears more than once in the batch")
            }
        }
    }
}

impl std::error::Error for BatchError {}

/// A Logins batch: only its size is limited.
pub fn check_logins(items: usize) -> Result<(), BatchError> {
    if items > MAX_BATCH_ITEMS {
        return Err(BatchError::TooManyItems(items));
    }
    Ok(())
}

/// A GetChatServers batch: its size, then the first uid seen twice (invalid
/// uids too: `0` twice is a duplicate like any other).
pub fn check_get_chat_servers(uids: &[i32]) -> Result<(), BatchError> {
    check_logins(uids.len())?;
    let mut seen = HashSet::with_capacity(uids.len());
    match uids.iter().find(|&&uid| !seen.insert(uid)) {
        Some(&uid) => Err(BatchError::DuplicateUid(uid)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn size_limit_at_its_edges() {
        assert_eq!(check_logins(0), Ok(()));
        assert_eq!(check_logins(MAX_BATCH_ITEMS), Ok(()));
        assert_eq!(check_logins(1001), Err(BatchError::TooManyItems(1001)));
        let uids: Vec<i32> = (1..=1001).collect();
        assert_eq!(check_get_chat_servers(&uids[..1000]), Ok(()));
        assert_eq!(
            check_get_chat_servers(&uids),
            Err(BatchError::TooManyItems(1001))
        );
    }

    #[test]
    fn the_first_repeated_uid_is_named() {
        assert_eq!(
            check_get_chat_servers(&[1, 2, 3, 2, 1]),
            Err(BatchError::DuplicateUid(2))
        );
        assert_eq!(
            check_get_chat_servers(&[0, -1, 0]),
            Err(BatchError::DuplicateUid(0))
        );
        assert_eq!(check_get_chat_servers(&[0, -1, 1, i32::MAX]), Ok(()));
    }

    #[test]
    fn size_is_checked_before_duplicates() {
        let uids = vec![7; 1001];
        assert_eq!(
            check_get_chat_servers(&uids),
            Err(BatchError::TooManyItems(1001))
        );
    }

    proptest! {
        /// The check agrees with its definition: refused for size exactly
        /// when longer than the limit, else for a duplicate exactly when the
        /// uids are not all distinct, naming a uid that does repeat.
        #[test]
        fn validation_matches_its_definition(
            uids in prop::collection::vec(-20i32..1500, 0..1100),
        ) {
            let distinct = uids.iter().collect::<HashSet<_>>().len() == uids.len();
            match check_get_chat_servers(&uids) {
                Ok(()) => prop_assert!(uids.len() <= MAX_BATCH_ITEMS && distinct),
                Err(BatchError::TooManyItems(n)) => {
                    prop_assert_eq!(n, uids.len());
                    prop_assert!(n > MAX_BATCH_ITEMS);
                }
                Err(BatchError::DuplicateUid(uid)) => {
                    prop_assert!(uids.len() <= MAX_BATCH_ITEMS && !distinct);
                    prop_assert!(uids.iter().filter(|&&u| u == uid).count() >= 2);
                }
            }
            prop_assert_eq!(check_logins(uids.len()).is_ok(), uids.len() <= MAX_BATCH_ITEMS);
        }
    }
}
