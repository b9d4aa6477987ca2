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
//! - `Probe` opens a TCP connection to every server in parallel every
//!   `probe_interval` (when probing is on) and reports who accepted.
//!
//! Neither job runs on the request path. `main` sends the first `Refresh`
//! itself and awaits it, so the gRPC port opens with fresh data.

use std::future::Future;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;

use crate::Shutdown;
use crate::balance::{LoadHash, parse_load_field};
use crate::chat_server::ChatServer;
use crate::redis_link::{RedisFailure, RedisLink};
use crate::server_registry::{LoadReport, PollFailed, ProbeReport, ServerRegistry};

/// What one poll reads: `EXISTS` of the load hash, and its fields in the
/// order of the configured servers (`None`: no such field).
type HashRead = (bool, Vec<Option<Vec<u8>>>);

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
}

impl LoadPoller {
    pub fn new(conn: RedisLink, registry: Addr<ServerRegistry>, settings: PollSettings) -> Self {
        LoadPoller {
            conn,
            registry,
            settings,
            generation: 0,
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
    /// Reads the load hash: whether the key exists, and the configured
    /// names' fields, as one pipeline (one round trip, one deadline).
    fn read_loads(&self) -> impl Future<Output = Result<HashRead, RedisFailure>> + 'static {
        let conn = self.conn.clone();
        let key = &self.settings.login_count_key;
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(key).cmd("HMGET").arg(key);
        for server in &self.settings.servers {
            pipe.arg(&server.name);
        }
        let timeout = self.settings.command_timeout;
        async move { conn.query(&pipe, timeout).await }
    }

    /// Turns a read into a report (`Err(PollFailed)` on failure: the registry
    /// keeps the last counts).
    fn load_report(&self, read: Result<HashRead, RedisFailure>) -> Result<LoadReport, PollFailed> {
        let (key_exists, values) = read.map_err(|error| PollFailed { error })?;
        let fields = self
            .settings
            .servers
            .iter()
            .zip(values)
            .map(|(server, raw)| (server.name.clone(), parse_load_field(raw.as_deref())))
            .collect();
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
