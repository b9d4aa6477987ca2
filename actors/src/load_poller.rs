//! `LoadPoller`: keeps the `ServerRegistry`'s view of the ChatServers fresh.
//!
//! Two periodic jobs, each a self-message rescheduled when the previous run
//! finishes (so a slow run never overlaps the next), tagged with the chain's
//! generation so a reload can replace the chain without doubling it:
//! - `Poll` reads the load hash every `poll_interval`, in one round trip:
//!   `EXISTS` of the key, then `HMGET` of the configured names (`HMGET`
//!   alone cannot tell a missing hash from missing fields, and the registry
//!   treats those differently). Both touch one key, so one node and one
//!   slot answer them in every Redis mode. It reports what it read to the
//!   registry, which decides. A failed poll reports its error instead, so
//!   the registry keeps the last known counts; the registry also tracks the
//!   polls' health, and logs an outage once when it starts (with the age of
//!   those counts) and once when it ends.
//!
//!   A field is read only while it is short enough to be a count: the same
//!   pipeline asks `HSTRLEN` of every configured field, and `HMGET` leaves out
//!   the fields whose length the previous poll found over
//!   [`MAX_LOAD_FIELD_BYTES`]. Such a field counts as not a count (logged
//!   once, when it turns so) without its value crossing the network again: a
//!   10 MB value costs one read when it appears, not one per poll. It is read
//!   again the poll after its length is back under the cap. Still one round
//!   trip per poll.
//! - `Probe` opens a TCP connection to every server in parallel every
//!   `probe_interval` (when probing is on) and reports who accepted.
//!
//! Neither job runs on the request path. `main` sends the first `Refresh`
//! itself and awaits it, so the gRPC port opens with fresh data.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;

use crate::Shutdown;
use crate::balance::{LoadField, LoadHash, parse_load_field};
use crate::chat_server::ChatServer;
use crate::redis_link::{RedisFailure, RedisLink};
use crate::server_registry::{LoadReport, PollFailed, ProbeReport, ServerRegistry};

/// Longest load field read: a count is at most 20 digits (`u64::MAX`).
pub const MAX_LOAD_FIELD_BYTES: u64 = 32;

/// What one poll read of the load hash.
struct HashRead {
    /// What `EXISTS` answered.
    key_exists: bool,
    /// Every configured field's `HSTRLEN`, in the order of the servers (0: no such field).
    lengths: Vec<u64>,
    /// The fields `HMGET` read, by name (`None`: no such field); not the ones left out.
    values: Vec<(String, Option<Vec<u8>>)>,
}

/// Longest a TCP probe waits for a connection, whatever the probe interval.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What to poll and how often.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub servers: Vec<ChatServer>,
    /// The load hash (docs/contract.md §2).
    pub login_count_key: String,
    pub poll_interval: Duration,
    /// `None` turns probing off.
    pub probe_interval: Option<Duration>,
    /// Deadline of the poll's Redis command.
    pub command_timeout: Duration,
}

pub struct LoadPoller {
    conn: RedisLink,
    registry: Addr<ServerRegistry>,
    settings: PollSettings,
    /// Chain of periodic polls and probes currently in charge; a `Refresh`
    /// starts a new one so that a reload never leaves two chains running.
    generation: u64,
    /// Fields whose length the last poll found over [`MAX_LOAD_FIELD_BYTES`]:
    /// the next poll does not read their values.
    oversized: HashSet<String>,
}

impl LoadPoller {
    pub fn new(conn: RedisLink, registry: Addr<ServerRegistry>, settings: PollSettings) -> Self {
        LoadPoller {
            conn,
            registry,
            settings,
            generation: 0,
            oversized: HashSet::new(),
        }
    }
}

impl Actor for LoadPoller {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        log::debug!("load poller stopped");
    }
}

impl LoadPoller {
    /// Reads the load hash as one pipeline (one round trip, one deadline):
    /// whether the key exists, every configured field's length, and the
    /// values of the fields not found oversized by the last poll.
    fn read_loads(&self) -> impl Future<Output = Result<HashRead, RedisFailure>> + 'static {
        let conn = self.conn.clone();
        let key = &self.settings.login_count_key;
        let servers = &self.settings.servers;
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(key);
        for server in servers {
            pipe.cmd("HSTRLEN").arg(key).arg(&server.name);
        }
        let read: Vec<String> = servers
            .iter()
            .filter(|server| !self.oversized.contains(&server.name))
            .map(|server| server.name.clone())
            .collect();
        // HMGET needs at least one field.
        if !read.is_empty() {
            pipe.cmd("HMGET").arg(key).arg(&read);
        }
        let timeout = self.settings.command_timeout;
        let count = servers.len();
        async move {
            let replies: Vec<redis::Value> = conn.query(&pipe, timeout).await?;
            parse_read(replies, count, read)
        }
    }

    /// Turns a read into a report (`Err(PollFailed)` on failure: the registry
    /// keeps the last counts), and notes which fields are oversized.
    fn load_report(
        &mut self,
        read: Result<HashRead, RedisFailure>,
    ) -> Result<LoadReport, PollFailed> {
        let HashRead {
            key_exists,
            lengths,
            values,
        } = read.map_err(|error| PollFailed { error })?;
        let mut values = values.into_iter().peekable();
        let mut fields = Vec::with_capacity(lengths.len());
        for (server, length) in self.settings.servers.iter().zip(lengths) {
            let name = &server.name;
            // Values come in server order, for the servers that were read.
            let value = match values.peek() {
                Some((read, _)) if read == name => values.next().map(|(_, value)| value),
                _ => None,
            };
            let field = if length > MAX_LOAD_FIELD_BYTES {
                self.oversized.insert(name.clone());
                LoadField::Invalid(format!("a value of {length} bytes"))
            } else {
                self.oversized.remove(name);
                match value {
                    Some(value) => parse_load_field(value.as_deref()),
                    // Oversized at the last poll, short now: read at the next.
                    None => {
                        LoadField::Invalid(format!("a value over {MAX_LOAD_FIELD_BYTES} bytes"))
                    }
                }
            };
            fields.push((name.clone(), field));
        }
        Ok(LoadReport {
            hash: LoadHash { key_exists, fields },
        })
    }

    /// Probes every server in parallel; `None` when probing is off.
    fn probe_servers(&self) -> impl Future<Output = Option<ProbeReport>> + 'static {
        let timeout = self
            .settings
            .probe_interval
            .map(|i| i.min(MAX_PROBE_TIMEOUT));
        let servers = self.settings.servers.clone();
        async move {
            let timeout = timeout?;
            let probes = servers.into_iter().map(|server| async move {
                let addr = (server.host.as_str(), server.port);
                let connected =
                    tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await;
                (server.name, matches!(connected, Ok(Ok(_))))
            });
            Some(ProbeReport {
                reachable: join_all(probes).await,
            })
        }
    }

    /// One poll, reported to the registry.
    fn poll_round(&self) -> impl ActorFuture<Self, Output = ()> + 'static {
        self.read_loads()
            .into_actor(self)
            .then(|read, poller, _ctx| {
                let report = poller.load_report(read);
                let registry = poller.registry.clone();
                report_to(registry, Some(report), None).into_actor(poller)
            })
    }

    /// One probe round, reported to the registry.
    fn probe_round(&self) -> impl ActorFuture<Self, Output = ()> + 'static {
        let registry = self.registry.clone();
        let probes = self.probe_servers();
        async move { report_to(registry, None, probes.await).await }.into_actor(self)
    }
}

/// The replies of [`LoadPoller::read_loads`]'s pipeline: `EXISTS`, `count`
/// `HSTRLEN`s, then (when any field was read) `HMGET` of `read`.
fn parse_read(
    replies: Vec<redis::Value>,
    count: usize,
    read: Vec<String>,
) -> Result<HashRead, RedisFailure> {
    let malformed = |what: &str| {
        RedisFailure::Command(redis::RedisError::from((
            redis::ErrorKind::Client,
            "unexpected reply to the load hash poll",
            what.to_string(),
        )))
    };
    let expected = 1 + count + usize::from(!read.is_empty());
    if replies.len() != expected {
        return Err(malformed(&format!(
            "{} replies for {expected} commands",
            replies.len()
        )));
    }
    let mut replies = replies.into_iter();
    let as_command = |err: redis::ParsingError| RedisFailure::Command(err.into());
    let key_exists: bool =
        redis::from_redis_value(replies.next().ok_or_else(|| malformed("no EXISTS"))?)
            .map_err(as_command)?;
    let lengths = replies
        .by_ref()
        .take(count)
        .map(|length| redis::from_redis_value::<u64>(length).map_err(as_command))
        .collect::<Result<Vec<u64>, RedisFailure>>()?;
    let values: Vec<Option<Vec<u8>>> = match replies.next() {
        Some(values) => redis::from_redis_value(values).map_err(as_command)?,
        None => Vec::new(),
    };
    if values.len() != read.len() {
        return Err(malformed("HMGET answered another number of fields"));
    }
    Ok(HashRead {
        key_exists,
        lengths,
        values: read.into_iter().zip(values).collect(),
    })
}

/// Delivers reports to the registry; an error means it stopped (shutdown).
async fn report_to(
    registry: Addr<ServerRegistry>,
    loads: Option<Result<LoadReport, PollFailed>>,
    probes: Option<ProbeReport>,
) {
    match loads {
        Some(Ok(loads)) => {
            let _ = registry.send(loads).await;
        }
        Some(Err(failed)) => {
            let _ = registry.send(failed).await;
        }
        None => {}
    }
    if let Some(probes) = probes {
        let _ = registry.send(probes).await;
    }
}

/// Polls and probes right away (in parallel), answers once both are
/// reported, and starts a fresh chain of periodic polls and probes (ending
/// any earlier chain). `main` sends it at start-up so the port opens with
/// fresh data.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Refresh;

impl Handler<Refresh> for LoadPoller {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Refresh, _ctx: &mut Self::Context) -> Self::Result {
        self.generation += 1;
        let generation = self.generation;
        let both = futures_util::future::join(self.read_loads(), self.probe_servers());
        Box::pin(
            both.into_actor(self)
                .then(|(read, probes), poller, _ctx| {
                    let loads = poller.load_report(read);
                    report_to(poller.registry.clone(), Some(loads), probes).into_actor(poller)
                })
                .map(move |(), poller, ctx| {
                    ctx.notify_later(PollTick { generation }, poller.settings.poll_interval);
                    if let Some(interval) = poller.settings.probe_interval {
                        ctx.notify_later(ProbeTick { generation }, interval);
                    }
                }),
        )
    }
}

/// The next periodic poll of chain `generation`; stale chains stop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct PollTick {
    generation: u64,
}

impl Handler<PollTick> for LoadPoller {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, tick: PollTick, _ctx: &mut Self::Context) -> Self::Result {
        if tick.generation != self.generation {
            return Box::pin(fut::ready(()));
        }
        Box::pin(self.poll_round().map(move |(), poller, ctx| {
            ctx.notify_later(tick, poller.settings.poll_interval);
        }))
    }
}

/// The next periodic probe round of chain `generation`; stale chains stop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ProbeTick {
    generation: u64,
}

impl Handler<ProbeTick> for LoadPoller {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, tick: ProbeTick, _ctx: &mut Self::Context) -> Self::Result {
        if tick.generation != self.generation {
            return Box::pin(fut::ready(()));
        }
        Box::pin(self.probe_round().map(move |(), poller, ctx| {
            if let Some(interval) = poller.settings.probe_interval {
                ctx.notify_later(tick, interval);
            }
        }))
    }
}

/// New settings (config reload), and a new connection when the Redis URL or
/// timeout changed. Takes effect with an immediate poll and probe round.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub settings: PollSettings,
    pub conn: Option<RedisLink>,
}

impl Handler<Reconfigure> for LoadPoller {
    type Result = ();

    fn handle(&mut self, update: Reconfigure, ctx: &mut Self::Context) {
        self.settings = update.settings;
        if let Some(conn) = update.conn {
            self.conn = conn;
        }
        ctx.notify(Refresh);
    }
}

impl Handler<Shutdown> for LoadPoller {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    #[test]
    fn a_read_gives_each_length_and_the_values_read() {
        let replies = vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(10_485_760),
            Value::Array(vec![Value::BulkString(b"17".to_vec())]),
        ];
        let read = parse_read(replies, 2, vec!["a".to_string()]).expect("well-formed");
        assert!(read.key_exists);
        assert_eq!(read.lengths, [2, 10_485_760]);
        assert_eq!(read.values, [("a".to_string(), Some(b"17".to_vec()))]);
    }

    #[test]
    fn every_field_left_out_sends_no_hmget() {
        let replies = vec![Value::Int(0), Value::Int(40)];
        let read = parse_read(replies, 1, Vec::new()).expect("well-formed");
        assert!(!read.key_exists);
        assert!(read.values.is_empty());
    }

    #[test]
    fn a_missing_reply_is_a_failed_poll() {
        let replies = vec![Value::Int(1), Value::Int(2)];
        assert!(parse_read(replies, 1, vec!["a".to_string()]).is_err());
    }
}
