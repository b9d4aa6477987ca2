//! `ServerRegistry`: owns the map of ChatServers and places each user on one.
//!
//! The balancing state and its rules are a [`ServerTable`]; this actor owns
//! one, feeds it the `LoadPoller`'s reports and config reloads, and joins a
//! placement to the `TokenActor`: `PlaceUser` chooses a server, asks for the
//! token, and settles the placement in the table once the write finished.
//! `PlaceUsers` does the same for a batch call: one message, its users placed
//! one after another, their tokens sent as one pipeline.
//! Operators drain servers through it (`SetDraining`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::SystemTime;

use actix::prelude::*;
use tokio::sync::oneshot;

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
use crate::token_actor::{IssueToken, IssueTokens, TokenActor};

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
/// may take a user) and asks the token actor for its token. Sent with
/// `do_send`; the placement arrives on the [`PendingPlacement`] the caller
/// awaits on its own task, straight from the token actor once the write
/// finished (or from here when no server may take the user): one reply per
/// call, no answer in between.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PlaceUser {
    uid: i32,
    reply: oneshot::Sender<Result<Placement, PlacementError>>,
}

impl PlaceUser {
    pub fn new(uid: i32) -> (PlaceUser, PendingPlacement) {
        let (reply, placed) = oneshot::channel();
        (PlaceUser { uid, reply }, PendingPlacement(placed))
    }
}

impl Handler<PlaceUser> for ServerRegistry {
    type Result = ();

    fn handle(&mut self, msg: PlaceUser, ctx: &mut Self::Context) {
        match self.table.place(msg.uid) {
            Ok(server) => {
                let issue = self.token_request(msg.uid, server, msg.reply, ctx);
                self.tokens.do_send(issue);
            }
            Err(err) => {
                let _ = msg.reply.send(Err(err));
            }
        }
    }
}

impl ServerRegistry {
    /// The token request of a user placed on `server`; `reply` gets the
    /// placement once the write finished.
    fn token_request(
        &self,
        uid: i32,
        server: Arc<ChatServer>,
        reply: oneshot::Sender<Result<Placement, PlacementError>>,
        ctx: &mut Context<Self>,
    ) -> IssueToken {
        let registry = ctx.address();
        // Runs on the actors' thread when the write finishes, even if the
        // caller has gone away: load never leaks.
        IssueToken::new(uid, move |stored| {
            registry.do_send(Settle {
                server: Arc::clone(&server),
                stored: stored.is_ok(),
            });
            let placed = match stored {
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
            };
            let _ = reply.send(placed);
        })
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
                let (reply, placed) = oneshot::channel();
                issues.push(self.token_request(uid, server?, reply, ctx));
                Some(PendingPlacement(placed))
            })
            .collect();
        if !issues.is_empty() {
            self.tokens.do_send(IssueTokens(issues));
        }
        MessageResult(Ok(pending))
    }
}

/// A placement being made: awaits the token write, or why there is no
/// placement.
#[derive(Debug)]
pub struct PendingPlacement(oneshot::Receiver<Result<Placement, PlacementError>>);

impl Future for PendingPlacement {
    type Output = Result<Placement, PlacementError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|placed| {
            // Dropped unanswered: the registry stopped before it placed the user.
            placed.unwrap_or(Err(PlacementError::Stopped))
        })
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::redis_link::{LinkSettings, RedisLink, Topology};
    use crate::token_actor::{TokenLinks, TokenSettings};

    /// A token actor whose link is never used: opened lazily, no command sent.
    fn idle_token_actor() -> Addr<TokenActor> {
        let link = RedisLink::open(&LinkSettings {
            topology: Topology::Standalone {
                url: "redis://127.0.0.1:1".to_string(),
            },
            password: None,
            command_timeout: Duration::from_secs(1),
            tls: None,
        })
        .expect("a well-formed URL");
        let settings = TokenSettings {
            prefix: "utoken_".to_string(),
            ttl_secs: 0,
            command_timeout: Duration::from_secs(1),
            min_replicas_ack: 0,
        };
        TokenActor::new(
            TokenLinks {
                all: link,
                writes: None,
            },
            settings,
        )
        .start()
    }

    #[actix_rt::test]
    async fn a_placement_the_stopped_registry_never_saw_answers_shutting_down() {
        let registry = ServerRegistry::new(
            Vec::new(),
            idle_token_actor(),
            false,
            StrategyKind::default(),
        )
        .start();
        registry
            .send(Shutdown)
            .await
            .expect("the registry is running");
        // Its mailbox closes once it has stopped.
        tokio::time::timeout(Duration::from_secs(10), async {
            while registry.connected() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the registry stops");

        let (place, placed) = PlaceUser::new(7);
        registry.do_send(place);
        let placed = tokio::time::timeout(Duration::from_secs(10), placed)
            .await
            .expect("the caller is answered, not left waiting");
        assert!(matches!(placed, Err(PlacementError::Stopped)), "{placed:?}");
        assert_eq!(
            PlacementError::Stopped.to_string(),
            "the server is shutting down"
        );
    }
}
