//! `ServerRegistry`: owns the map of ChatServers and places each user on one.
//!
//! The balancing state and its rules are a [`ServerTable`]; this actor owns
//! one, feeds it the `LoadPoller`'s reports and config reloads, and joins a
//! placement to the `TokenActor`: `PlaceUser` chooses a server, asks for the
//! token, and settles the placement in the table once the write finished.
//! `PlaceUsers` does the same for a batch call: one message, its users placed
//! one after another, their tokens sent as one pipeline.
//! Operators drain servers through it (`SetDraining`).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;

use crate::Shutdown;
use crate::balance::LoadHash;
use crate::chat_server::ChatServer;
use crate::redis_link::RedisFailure;
use crate::server_table::ServerTable;
pub use crate::server_table::{
    Drain, PlacementError, RegistrySnapshot, ServerSnapshot, UnknownServer,
};
use crate::strategy::{StrategyKind, random_seed};
use crate::token::token_prefix_for_log;
use crate::token_actor::{IssueToken, IssueTokens, PendingReply, TokenActor};

/// Owns the balancing state; the only place it changes.
pub struct ServerRegistry {
    table: ServerTable,
    tokens: Addr<TokenActor>,
}

impl ServerRegistry {
    /// `probing`: whether `ProbeReport`s will arrive; without probing every
    /// server counts as reachable. `strategy` chooses among the servers
    /// that may take a user.
    pub fn new(
        servers: Vec<ChatServer>,
        tokens: Addr<TokenActor>,
        probing: bool,
        strategy: StrategyKind,
    ) -> Self {
        ServerRegistry {
            table: ServerTable::new(servers, probing, strategy, random_seed()),
            tokens,
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

/// Chooses a server for `uid` (the running strategy, among the servers that
/// may take a user) and asks the token actor for its token. Answers at once with a [`PendingPlacement`] that the caller
/// awaits on its own task (see [`PendingPlacement::finish`]).
#[derive(Debug, Message)]
#[rtype(result = "Result<PendingPlacement, PlacementError>")]
pub struct PlaceUser {
    pub uid: i32,
}

impl Handler<PlaceUser> for ServerRegistry {
    type Result = MessageResult<PlaceUser>;

    fn handle(&mut self, msg: PlaceUser, ctx: &mut Self::Context) -> Self::Result {
        let server = match self.table.place(msg.uid) {
            Ok(server) => server,
            Err(err) => return MessageResult(Err(err)),
        };
        let (issue, pending) = self.token_request(msg.uid, server, ctx);
        self.tokens.do_send(issue);
        MessageResult(Ok(pending))
    }
}

impl ServerRegistry {
    /// The token request of a user placed on `server`, and the placement
    /// its caller awaits.
    fn token_request(
        &self,
        uid: i32,
        server: Arc<ChatServer>,
        ctx: &mut Context<Self>,
    ) -> (IssueToken, PendingPlacement) {
        let registry = ctx.address();
        let settled = Arc::clone(&server);
        // Settled by the token actor when the write finishes, on the actors'
        // thread, even if the caller has gone away: load never leaks.
        let (issue, token) = IssueToken::new(uid, move |stored| {
            registry.do_send(Settle {
                server: settled,
                stored,
            });
        });
        (issue, PendingPlacement { uid, token, server })
    }
}

/// Places every uid of one batch call (docs/contract.md §9), as that many
/// [`PlaceUser`]s would, and asks for their tokens in one [`IssueTokens`]
/// (one pipeline). Item `i` is `None` for an invalid uid (answered 1011); a
/// refusal is the whole batch's and places none (see
/// [`ServerTable::place_all`]).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Option<PendingPlacement>>, PlacementError>")]
pub struct PlaceUsers {
    pub uids: Vec<i32>,
}

impl Handler<PlaceUsers> for ServerRegistry {
    type Result = MessageResult<PlaceUsers>;

    fn handle(&mut self, msg: PlaceUsers, ctx: &mut Self::Context) -> Self::Result {
        let placed = match self.table.place_all(&msg.uids) {
            Ok(placed) => placed,
            Err(err) => return MessageResult(Err(err)),
        };
        let mut issues = Vec::with_capacity(placed.len());
        let pending = msg
            .uids
            .iter()
            .zip(placed)
            .map(|(&uid, server)| {
                let (issue, pending) = self.token_request(uid, server?, ctx);
                issues.push(issue);
                Some(pending)
            })
            .collect();
        if !issues.is_empty() {
            self.tokens.do_send(IssueTokens(issues));
        }
        MessageResult(Ok(pending))
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
/// placement into an assignment, otherwise it is just released.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Settle {
    server: Arc<ChatServer>,
    stored: bool,
}

impl Handler<Settle> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, msg: Settle, _ctx: &mut Self::Context) {
        self.table.settle(&msg.server.name, msg.stored);
    }
}

/// The load hash as one poll read it, one field per configured server.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LoadReport {
    pub hash: LoadHash,
}

impl Handler<LoadReport> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, report: LoadReport, _ctx: &mut Self::Context) {
        self.table.apply_loads(report.hash, SystemTime::now());
    }
}

/// A poll failed: the registry keeps the last counts but no longer reports
/// Redis as answering (health checks read this), and logs the outage once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PollFailed {
    pub error: RedisFailure,
}

impl Handler<PollFailed> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, msg: PollFailed, _ctx: &mut Self::Context) {
        self.table
            .record_poll_failure(&msg.error, SystemTime::now());
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
        self.table.apply_probes(report.reachable, SystemTime::now());
    }
}

/// Replaces the configured servers and the strategy (config reload); see
/// [`ServerTable::replace_servers`] for what each server keeps.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UpdateServers {
    pub servers: Vec<ChatServer>,
    pub probing: bool,
    pub strategy: StrategyKind,
}

impl Handler<UpdateServers> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, update: UpdateServers, _ctx: &mut Self::Context) {
        self.table.replace_servers(
            update.servers,
            update.probing,
            update.strategy,
            random_seed(),
        );
    }
}

/// Drains a server at run time, or undoes that (Admin `SetDraining`); see
/// [`ServerTable::set_draining`]. Answers who drains it now.
#[derive(Debug, Message)]
#[rtype(result = "Result<Drain, UnknownServer>")]
pub struct SetDraining {
    pub name: String,
    pub draining: bool,
}

impl Handler<SetDraining> for ServerRegistry {
    type Result = Result<Drain, UnknownServer>;

    fn handle(&mut self, msg: SetDraining, _ctx: &mut Self::Context) -> Self::Result {
        self.table.set_draining(&msg.name, msg.draining)
    }
}

/// Asks for a [`RegistrySnapshot`].
#[derive(Debug, Message)]
#[rtype(result = "RegistrySnapshot")]
pub struct Snapshot;

impl Handler<Snapshot> for ServerRegistry {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _msg: Snapshot, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.table.snapshot())
    }
}

impl Handler<Shutdown> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
