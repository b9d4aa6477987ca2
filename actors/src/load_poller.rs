//! `LoadPoller`: keeps the `ServerRegistry`'s view of the ChatServers fresh.
//!
//! Two periodic jobs, each a self-message rescheduled when the previous run
//! finishes (so a slow run never overlaps the next):
//! - `Poll` reads the load hash with one `HMGET` of the configured names every
//!   `poll_interval` and reports the fields to the registry. A failed poll
//!   reports nothing, so the registry keeps the last known counts; the log says
//!   so once per outage, with the age of those counts, and once on recovery.
//! - `Probe` opens a TCP connection to every server in parallel every
//!   `probe_interval` (when probing is on) and reports who accepted.
//!
//! Neither job runs on the request path. `main` sends the first `Poll` and
//! `Probe` itself and awaits them, so the gRPC port opens with fresh data.

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::join_all;
use redis::aio::ConnectionManager;

use crate::Shutdown;
use crate::balance::parse_load_field;
use crate::chat_server::ChatServer;
use crate::redis_link::with_deadline;
use crate::server_registry::{LoadReport, ProbeReport, ServerRegistry};

/// Longest a TCP probe waits for a connection, whatever the probe interval.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What to poll and how often.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub servers: Vec<ChatServer>,
    /// The load hash (CONTRACT §2).
    pub login_count_key: String,
    pub poll_interval: Duration,
    /// `None` turns probing off.
    pub probe_interval: Option<Duration>,
    /// Deadline of the poll's Redis command.
    pub command_timeout: Duration,
}

pub struct LoadPoller {
    conn: ConnectionManager,
    registry: Addr<ServerRegistry>,
    settings: PollSettings,
    /// When a poll last succeeded.
    last_success: Option<Instant>,
    /// Whether the last poll failed, so an outage is logged once.
    failing: bool,
}

impl LoadPoller {
    pub fn new(
        conn: ConnectionManager,
        registry: Addr<ServerRegistry>,
        settings: PollSettings,
    ) -> Self {
        LoadPoller {
            conn,
            registry,
            settings,
            last_success: None,
            failing: false,
        }
    }

    fn note_poll_failure(&mut self, err: &dyn std::fmt::Display) {
        if self.failing {
            return;
        }
        self.failing = true;
        match self.last_success {
            Some(at) => log::error!(
                "load poll failed ({err}); keeping the counts read {:.1} s ago until Redis answers",
                at.elapsed().as_secs_f64()
            ),
            None => log::error!(
                "load poll failed ({err}); no counts yet, so GetChatServer answers UNAVAILABLE until Redis answers"
            ),
        }
    }

    fn note_poll_success(&mut self) {
        if self.failing {
            self.failing = false;
            log::info!("load poll succeeds again");
        }
        self.last_success = Some(Instant::now());
    }
}

impl Actor for LoadPoller {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        log::debug!("load poller stopped");
    }
}

/// Reads the load hash once, reports it, and schedules the next poll.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Poll;

impl Handler<Poll> for LoadPoller {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Poll, _ctx: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn.clone();
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(&self.settings.login_count_key);
        for server in &self.settings.servers {
            hmget.arg(&server.name);
        }
        let timeout = self.settings.command_timeout;
        let read = async move {
            with_deadline(
                timeout,
                hmget.query_async::<Vec<Option<Vec<u8>>>>(&mut conn),
            )
            .await
        };
        Box::pin(
            read.into_actor(self)
                .then(|result, poller, _ctx| {
                    let report = match result {
                        Ok(values) => {
                            poller.note_poll_success();
                            let fields = poller
                                .settings
                                .servers
                                .iter()
                                .zip(values)
                                .map(|(server, raw)| {
                                    (server.name.clone(), parse_load_field(raw.as_deref()))
                                })
                                .collect();
                            Some(LoadReport { fields })
                        }
                        Err(err) => {
                            poller.note_poll_failure(&err);
                            None
                        }
                    };
                    let registry = poller.registry.clone();
                    async move {
                        if let Some(report) = report {
                            // Fails only when the registry stopped: shutdown.
                            let _ = registry.send(report).await;
                        }
                    }
                    .into_actor(poller)
                })
                .map(|(), poller, ctx| {
                    ctx.notify_later(Poll, poller.settings.poll_interval);
                }),
        )
    }
}

/// Probes every server once, reports who accepted, and schedules the next round.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Probe;

impl Handler<Probe> for LoadPoller {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Probe, _ctx: &mut Self::Context) -> Self::Result {
        let Some(interval) = self.settings.probe_interval else {
            return Box::pin(fut::ready(()));
        };
        let timeout = interval.min(MAX_PROBE_TIMEOUT);
        let probes = self.settings.servers.iter().map(|server| {
            let name = server.name.clone();
            let addr = (server.host.clone(), server.port);
            async move {
                let connected =
                    tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await;
                (name, matches!(connected, Ok(Ok(_))))
            }
        });
        let round = join_all(probes);
        let registry = self.registry.clone();
        Box::pin(
            async move {
                let reachable = round.await;
                // Fails only when the registry stopped: shutdown.
                let _ = registry.send(ProbeReport { reachable }).await;
            }
            .into_actor(self)
            .map(move |(), _poller, ctx| {
                ctx.notify_later(Probe, interval);
            }),
        )
    }
}

impl Handler<Shutdown> for LoadPoller {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
