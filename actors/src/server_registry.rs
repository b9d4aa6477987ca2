//! `ServerRegistry`: owns the map of ChatServers and places each user on one.
//!
//! It keeps, per configured server, the load the `LoadPoller` last read, the
//! probe result, and the assignments this instance made since; `PlaceUser`
//! chooses with [`choose_server`](crate::balance::choose_server) and asks the
//! `TokenActor` for the token. A placement holds an in-flight slot on its
//! server while the token is written, so concurrent requests already spread;
//! once the token is stored it counts as an assignment, and if the write
//! fails the slot is released and nothing counts.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;

use crate::Shutdown;
use crate::balance::{LoadField, ServerLoad, choose_server};
use crate::chat_server::ChatServer;
use crate::redis_link::RedisFailure;
use crate::token::token_prefix_for_log;
use crate::token_actor::{IssueToken, PendingReply, TokenActor};

struct Slot {
    server: Arc<ChatServer>,
    load: ServerLoad,
    /// The field as the last poll read it; `None` before the first poll.
    field: Option<LoadField>,
    /// When the last probe result arrived; `None` before the first.
    last_probe: Option<SystemTime>,
}

impl Slot {
    /// A server not seen by any poll or probe yet.
    fn new(server: ChatServer, probing: bool) -> Slot {
        Slot {
            server: Arc::new(server),
            load: ServerLoad {
                reachable: !probing,
                ..ServerLoad::default()
            },
            field: None,
            last_probe: None,
        }
    }
}

impl AsRef<ServerLoad> for Slot {
    fn as_ref(&self) -> &ServerLoad {
        &self.load
    }
}

/// Owns the ChatServer map; the only place balancing state changes.
pub struct ServerRegistry {
    slots: Vec<Slot>,
    tokens: Addr<TokenActor>,
    probing: bool,
    /// When a poll last succeeded; `None` until the first one did.
    last_poll: Option<SystemTime>,
    /// Whether the most recent poll succeeded (Redis answers).
    last_poll_ok: bool,
    /// Failed polls, and outages of polls that ended, since start (metrics).
    poll_failures: u64,
    poll_recoveries: u64,
    /// Where the next tie-break starts, so equal servers take turns.
    next_start: usize,
}

impl ServerRegistry {
    /// `probing`: whether `ProbeReport`s will arrive; without probing every
    /// server counts as reachable.
    pub fn new(servers: Vec<ChatServer>, tokens: Addr<TokenActor>, probing: bool) -> Self {
        let slots = servers
            .into_iter()
            .map(|server| Slot::new(server, probing))
            .collect();
        ServerRegistry {
            slots,
            tokens,
            probing,
            last_poll: None,
            last_poll_ok: false,
            poll_failures: 0,
            poll_recoveries: 0,
            next_start: 0,
        }
    }

    fn slot_mut(&mut self, name: &str) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|slot| slot.server.name == name)
    }

    /// Why no server can be chosen, for the UNAVAILABLE message.
    fn unavailable_reason(&self) -> PlacementError {
        if self.last_poll.is_none() {
            return PlacementError::NoLoadData;
        }
        let reasons = self
            .slots
            .iter()
            .map(|slot| {
                let why = match slot.field {
                    Some(LoadField::Count(_)) => "does not accept TCP connections",
                    Some(LoadField::Invalid(_)) => "its load field is not a count",
                    Some(LoadField::Missing) | None => "not in the load hash",
                };
                format!("{}: {why}", slot.server.name)
            })
            .collect();
        PlacementError::NoServerAlive(reasons)
    }

    /// Turns an in-flight slot into an assignment (token stored) or frees it.
    fn settle(&mut self, server: &ChatServer, stored: bool) {
        // The server may have left the map meanwhile; then nothing to count.
        if let Some(slot) = self.slot_mut(&server.name) {
            slot.load.in_flight = slot.load.in_flight.saturating_sub(1);
            if stored {
                slot.load.assigned_since_poll += 1;
            }
        }
    }
}

impl Actor for ServerRegistry {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        log::debug!("server registry stopped");
    }
}

/// Where a user goes, and the token the ChatServer will check.
#[derive(Debug, Clone)]
pub struct Placement {
    pub server: Arc<ChatServer>,
    pub token: String,
}

/// Why `PlaceUser` gave no placement.
#[derive(Debug)]
pub enum PlacementError {
    /// `uid <= 0`: a business error, answered without touching Redis.
    InvalidUid,
    /// No poll has succeeded yet (Redis unreachable since start-up).
    NoLoadData,
    /// Every configured server is not alive; one reason per server.
    NoServerAlive(Vec<String>),
    /// The token could not be stored (or the token actor stopped).
    Token(RedisFailure),
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::InvalidUid => write!(f, "uid must be positive"),
            PlacementError::NoLoadData => write!(
                f,
                "no chat server is alive: the load hash has not been read yet (is Redis reachable?)"
            ),
            PlacementError::NoServerAlive(reasons) => {
                write!(f, "no chat server is alive ({})", reasons.join("; "))
            }
            PlacementError::Token(failure) => write!(f, "cannot store the login token: {failure}"),
        }
    }
}

impl std::error::Error for PlacementError {}

/// Chooses the least-loaded alive server for `uid` and asks the token actor
/// for its token. Answers at once with a [`PendingPlacement`] that the caller
/// awaits on its own task (see [`PendingPlacement::finish`]).
#[derive(Debug, Message)]
#[rtype(result = "Result<PendingPlacement, PlacementError>")]
pub struct PlaceUser {
    pub uid: i32,
}

impl Handler<PlaceUser> for ServerRegistry {
    type Result = MessageResult<PlaceUser>;

    fn handle(&mut self, msg: PlaceUser, ctx: &mut Self::Context) -> Self::Result {
        if msg.uid <= 0 {
            return MessageResult(Err(PlacementError::InvalidUid));
        }
        let Some(index) = choose_server(&self.slots, self.next_start) else {
            return MessageResult(Err(self.unavailable_reason()));
        };
        self.next_start = index + 1;
        let slot = &mut self.slots[index];
        log::debug!(
            "uid {} -> {} (load {}: polled {} + {} assigned + {} in flight)",
            msg.uid,
            slot.server.name,
            slot.load.effective_load().unwrap_or_default(),
            slot.load.polled.unwrap_or_default(),
            slot.load.assigned_since_poll,
            slot.load.in_flight,
        );
        slot.load.in_flight += 1;
        let server = Arc::clone(&slot.server);
        let registry = ctx.address();
        let settled = Arc::clone(&server);
        // Settled by the token actor when the write finishes, on the actors'
        // thread, even if the caller has gone away: load never leaks.
        let (issue, token) = IssueToken::new(msg.uid, move |stored| {
            registry.do_send(Settle {
                server: settled,
                stored,
            });
        });
        self.tokens.do_send(issue);
        MessageResult(Ok(PendingPlacement {
            uid: msg.uid,
            token,
            server,
        }))
    }
}

/// A placement whose token is being stored.
pub struct PendingPlacement {
    uid: i32,
    token: PendingReply<String>,
    server: Arc<ChatServer>,
}

impl fmt::Debug for PendingPlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingPlacement")
            .field("uid", &self.uid)
            .field("server", &self.server.name)
            .finish()
    }
}

impl PendingPlacement {
    /// Waits for the token write.
    pub async fn finish(self) -> Result<Placement, PlacementError> {
        let PendingPlacement { uid, token, server } = self;
        match token.await {
            Ok(token) => {
                log::debug!(
                    "uid {uid}: token {}... stored for {}",
                    token_prefix_for_log(&token),
                    server.name
                );
                Ok(Placement { server, token })
            }
            Err(failure) => {
                // Outages are logged once, by the token actor.
                log::debug!("uid {uid}: cannot store the login token: {failure}");
                Err(PlacementError::Token(failure))
            }
        }
    }
}

/// The token write of a placement finished: `stored` turns its in-flight
/// slot into an assignment, otherwise the slot is just freed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Settle {
    server: Arc<ChatServer>,
    stored: bool,
}

impl Handler<Settle> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, msg: Settle, _ctx: &mut Self::Context) {
        self.settle(&msg.server, msg.stored);
    }
}

/// The load hash as one poll read it, one entry per configured server.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LoadReport {
    pub fields: Vec<(String, LoadField)>,
}

impl Handler<LoadReport> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, report: LoadReport, _ctx: &mut Self::Context) {
        for (name, field) in report.fields {
            let Some(slot) = self.slot_mut(&name) else {
                continue;
            };
            let changed = slot.field.as_ref().map(std::mem::discriminant)
                != Some(std::mem::discriminant(&field));
            // Log changes only: a bad field would otherwise warn every poll.
            if changed {
                match &field {
                    LoadField::Count(count) => {
                        log::info!("{name}: alive in the load hash (count {count})")
                    }
                    LoadField::Missing => {
                        log::warn!(
                            "{name}: no field in the load hash (not running?); not choosing it"
                        )
                    }
                    LoadField::Invalid(raw) => {
                        log::warn!("{name}: load field holds {raw:?}, not a count; not choosing it")
                    }
                }
            }
            slot.load.polled = match &field {
                LoadField::Count(count) => Some(*count),
                LoadField::Missing | LoadField::Invalid(_) => None,
            };
            slot.field = Some(field);
            slot.load.assigned_since_poll = 0;
        }
        if self.last_poll.is_some() && !self.last_poll_ok {
            self.poll_recoveries += 1;
        }
        self.last_poll = Some(SystemTime::now());
        self.last_poll_ok = true;
    }
}

/// Results of one round of TCP probes: server name and whether it accepted.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ProbeReport {
    pub reachable: Vec<(String, bool)>,
}

impl Handler<ProbeReport> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, report: ProbeReport, _ctx: &mut Self::Context) {
        if !self.probing {
            return;
        }
        for (name, reachable) in report.reachable {
            let Some(slot) = self.slot_mut(&name) else {
                continue;
            };
            if slot.load.reachable != reachable {
                if reachable {
                    log::info!("{name}: accepts TCP connections");
                } else {
                    let addr = format!("{}:{}", slot.server.host, slot.server.port);
                    log::warn!("{name}: {addr} does not accept TCP connections; not choosing it");
                }
            }
            slot.load.reachable = reachable;
            slot.last_probe = Some(SystemTime::now());
        }
    }
}

/// Replaces the configured servers (config reload). Servers that keep their
/// name keep their counts and in-flight placements; a server whose address
/// changed, or any server when probing was just turned on, waits for its
/// next probe.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UpdateServers {
    pub servers: Vec<ChatServer>,
    pub probing: bool,
}

impl Handler<UpdateServers> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, update: UpdateServers, _ctx: &mut Self::Context) {
        let mut old: Vec<Slot> = std::mem::take(&mut self.slots);
        let was_probing = std::mem::replace(&mut self.probing, update.probing);
        for server in update.servers {
            let kept = old
                .iter()
                .position(|slot| slot.server.name == server.name)
                .map(|i| old.swap_remove(i));
            let slot = match kept {
                Some(mut slot) => {
                    let moved = slot.server.host != server.host || slot.server.port != server.port;
                    if moved {
                        log::info!(
                            "{}: moved from {}:{} to {}:{}",
                            server.name,
                            slot.server.host,
                            slot.server.port,
                            server.host,
                            server.port
                        );
                        slot.server = Arc::new(server);
                    }
                    if !update.probing {
                        slot.load.reachable = true;
                    } else if moved || !was_probing {
                        slot.load.reachable = false;
                    }
                    slot
                }
                None => {
                    log::info!("{}: added at {}:{}", server.name, server.host, server.port);
                    Slot::new(server, update.probing)
                }
            };
            self.slots.push(slot);
        }
        for gone in old {
            log::info!("{}: removed", gone.server.name);
        }
        self.next_start = 0;
    }
}

/// A poll failed: the registry keeps the last counts but no longer reports
/// Redis as answering (health checks read this).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PollFailed;

impl Handler<PollFailed> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, _msg: PollFailed, _ctx: &mut Self::Context) {
        self.last_poll_ok = false;
        self.poll_failures += 1;
    }
}

/// One server as the registry sees it (for operators: admin API, metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSnapshot {
    pub server: Arc<ChatServer>,
    pub load: ServerLoad,
    /// The field as the last poll read it; `None` before the first poll.
    pub field: Option<LoadField>,
    pub alive: bool,
    pub last_probe: Option<SystemTime>,
}

/// The whole balancing state at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySnapshot {
    pub servers: Vec<ServerSnapshot>,
    pub probing: bool,
    /// Whether the most recent poll succeeded.
    pub redis_ok: bool,
    pub last_poll: Option<SystemTime>,
    /// Failed polls since start.
    pub poll_failures: u64,
    /// Runs of failed polls that ended with a successful one.
    pub poll_recoveries: u64,
}

impl RegistrySnapshot {
    pub fn alive_count(&self) -> usize {
        self.servers.iter().filter(|s| s.alive).count()
    }
}

/// Asks for a [`RegistrySnapshot`].
#[derive(Debug, Message)]
#[rtype(result = "RegistrySnapshot")]
pub struct Snapshot;

impl Handler<Snapshot> for ServerRegistry {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _msg: Snapshot, _ctx: &mut Self::Context) -> Self::Result {
        let servers = self
            .slots
            .iter()
            .map(|slot| ServerSnapshot {
                server: Arc::clone(&slot.server),
                load: slot.load.clone(),
                field: slot.field.clone(),
                alive: slot.load.effective_load().is_some(),
                last_probe: slot.last_probe,
            })
            .collect();
        MessageResult(RegistrySnapshot {
            servers,
            probing: self.probing,
            redis_ok: self.last_poll_ok,
            last_poll: self.last_poll,
            poll_failures: self.poll_failures,
            poll_recoveries: self.poll_recoveries,
        })
    }
}

impl Handler<Shutdown> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
