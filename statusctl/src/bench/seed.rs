//! `bench --seed-redis URL`: stores the tokens the `login` benchmark sends,
//! `{prefix}<uid> = bench-token-<uid>` for every benchmark uid, with one `MSET`.
//!
//! Without it, store them yourself before `bench --rpc login`, e.g.
//! `for uid in $(seq 1 10000); do echo "SET utoken_$uid bench-token-$uid"; done | redis-cli`.
//! The keys get no expiry; delete them afterwards if the Redis is shared.

use std::time::Duration;

use crate::failure::{Failure, error_chain};

/// The token the benchmark sends for `uid`.
pub fn bench_token(uid: i32) -> String {
    format!("bench-token-{uid}")
}

/// `redis://:secret@host/0` -> `redis://:***@host/0`, for messages.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Checks `--seed-redis` as a command-line value.
pub fn parse_redis_url(text: &str) -> Result<String, String> {
    redis::Client::open(text)
        .map(|_| text.to_string())
        .map_err(|err| error_chain(&err))
}

/// Stores the tokens of `uids` under `prefix`, within `timeout`; returns how many.
pub async fn store_tokens(
    url: &str,
    prefix: &str,
    uids: std::ops::Range<i32>,
    timeout: Duration,
) -> Result<u64, Failure> {
    let unreachable = |why: String| {
        Failure::Unreachable(format!(
            "cannot seed the bench tokens in {}: {why}",
            mask_password(url)
        ))
    };
    let client = redis::Client::open(url).map_err(|err| unreachable(error_chain(&err)))?;
    let mut mset = redis::cmd("MSET");
    let mut count = 0u64;
    for uid in uids {
        mset.arg(format!("{prefix}{uid}")).arg(bench_token(uid));
        count += 1;
    }
    let store = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        mset.query_async::<()>(&mut conn).await
    };
    match tokio::time::timeout(timeout, store).await {
        Ok(Ok(())) => Ok(count),
        Ok(Err(err)) => Err(unreachable(error_chain(&err))),
        Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("redis://:s3cret@db:6379/0"),
            "redis://:***@db:6379/0"
        );
        assert_eq!(
            mask_password("redis://user:pw@db:6379"),
            "redis://user:***@db:6379"
        );
        assert_eq!(mask_password("redis://db:6379"), "redis://db:6379");
    }

    #[test]
    fn redis_urls_are_checked() {
        assert!(parse_redis_url("redis://127.0.0.1:6379").is_ok());
        assert!(parse_redis_url("http://127.0.0.1").is_err());
    }
}
