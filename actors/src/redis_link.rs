//! The Redis connection the actors share, and the deadline every command gets.
//!
//! One multiplexed `ConnectionManager` carries all commands: clones are cheap,
//! many commands stay in flight at once (no head-of-line wait behind a slow
//! reply), and it reconnects by itself once Redis is back. Each command runs
//! under `command_timeout`, which also bounds waiting for a reconnect, so a
//! down or hung Redis turns into a prompt, clear error instead of a stall.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Opens the shared connection lazily: the process starts even when Redis is
/// down, and the first command (or the first poll) connects.
pub fn connect(url: &str, command_timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(command_timeout))
        .set_response_timeout(Some(command_timeout))
        // No background retry loop: the next command (at the latest the next
        // poll) starts a fresh attempt, so recovery follows Redis within one
        // poll interval and no request waits on a stale backoff.
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client, config)
}

/// Why a Redis command did not give an answer.
#[derive(Debug, Clone)]
pub enum RedisFailure {
    /// Redis answered with an error, or the connection failed.
    Command(redis::RedisError),
    /// No answer within the command timeout (Redis down, hung or overloaded).
    TimedOut(Duration),
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisFailure::Command(err) => write!(f, "redis command failed: {err}"),
            RedisFailure::TimedOut(limit) => {
                write!(f, "redis did not answer within {} ms", limit.as_millis())
            }
        }
    }
}

impl std::error::Error for RedisFailure {}

/// Runs one Redis command future under the command deadline.
pub async fn with_deadline<T>(
    deadline: Duration,
    command: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, RedisFailure> {
    match tokio::time::timeout(deadline, command).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(RedisFailure::Command(err)),
        Err(_) => Err(RedisFailure::TimedOut(deadline)),
    }
}
