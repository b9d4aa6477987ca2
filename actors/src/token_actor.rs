//! `TokenActor`: owns the Redis side of login tokens, writes and checks them.
//!
//! Key and value follow CONTRACT §2 (`{token_prefix}{uid}` = token, written
//! with `SET .. EX ttl`), so deployed ChatServers that read Redis directly see
//! the same tokens. Each handler runs its command as a future of its own on a
//! clone of the multiplexed connection: the actor never waits on Redis, so one
//! slow reply does not hold up the requests behind it. Outcomes come back to
//! the actor only to log an outage once when it starts and once when it ends.

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use redis::aio::ConnectionManager;

use crate::Shutdown;
use crate::redis_link::{RedisFailure, with_deadline};
use crate::token::{LoginCheck, check_stored_token, mint_token, reject_login_input};

/// How tokens are stored.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Key prefix; the key of user `uid` is `{prefix}{uid}`.
    pub prefix: String,
    /// Expiry of a stored token; 0 stores it without expiry.
    pub ttl_secs: u64,
    /// Deadline of every Redis command.
    pub command_timeout: Duration,
}

/// Owns the token store's connection and settings.
pub struct TokenActor {
    conn: ConnectionManager,
    // Shared with in-flight command futures without copying per request.
    settings: Rc<TokenSettings>,
    /// Whether the last command failed, so an outage is logged once, not
    /// once per request.
    failing: bool,
    stats: TokenStats,
}

impl TokenActor {
    pub fn new(conn: ConnectionManager, settings: TokenSettings) -> Self {
        TokenActor {
            conn,
            settings: Rc::new(settings),
            failing: false,
            stats: TokenStats::default(),
        }
    }

    /// Counts failures and logs the start and the end of a run of them.
    fn note_outcome<T>(&mut self, outcome: &Result<T, RedisFailure>) {
        if outcome.is_err() {
            self.stats.command_errors += 1;
        }
        match (outcome, self.failing) {
            (Err(failure), false) => {
                self.failing = true;
                log::error!("token store: {failure}; answering UNAVAILABLE until Redis answers");
            }
            (Ok(_), true) => {
                self.failing = false;
                self.stats.recoveries += 1;
                log::info!("token store: Redis answers again");
            }
            _ => {}
        }
    }
}

impl Actor for TokenActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        log::debug!("token actor stopped");
    }
}

/// Mints a token for `uid` and stores it, replacing any earlier one.
/// Answers the stored token.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, RedisFailure>")]
pub struct IssueToken {
    pub uid: i32,
}

impl Handler<IssueToken> for TokenActor {
    type Result = ResponseActFuture<Self, Result<String, RedisFailure>>;

    fn handle(&mut self, msg: IssueToken, _ctx: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn.clone();
        let settings = Rc::clone(&self.settings);
        let issue = async move {
            let token = mint_token();
            let mut set = redis::cmd("SET");
            set.arg(format!("{}{}", settings.prefix, msg.uid))
                .arg(&token);
            if settings.ttl_secs > 0 {
                set.arg("EX").arg(settings.ttl_secs);
            }
            with_deadline(settings.command_timeout, set.query_async::<()>(&mut conn)).await?;
            Ok(token)
        };
        Box::pin(issue.into_actor(self).map(|outcome, actor, _ctx| {
            actor.note_outcome(&outcome);
            outcome
        }))
    }
}

/// Checks the token a user presented for `uid` (the Login RPC).
#[derive(Debug, Message)]
#[rtype(result = "Result<LoginCheck, RedisFailure>")]
pub struct CheckToken {
    pub uid: i32,
    pub token: String,
}

impl Handler<CheckToken> for TokenActor {
    type Result = ResponseActFuture<Self, Result<LoginCheck, RedisFailure>>;

    fn handle(&mut self, msg: CheckToken, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(rejected) = reject_login_input(msg.uid, &msg.token) {
            return Box::pin(fut::ready(Ok(rejected)));
        }
        let mut conn = self.conn.clone();
        let settings = Rc::clone(&self.settings);
        let check = async move {
            let mut get = redis::cmd("GET");
            get.arg(format!("{}{}", settings.prefix, msg.uid));
            let stored = with_deadline(
                settings.command_timeout,
                get.query_async::<Option<Vec<u8>>>(&mut conn),
            )
            .await?;
            Ok(check_stored_token(stored.as_deref(), &msg.token))
        };
        Box::pin(check.into_actor(self).map(|outcome, actor, _ctx| {
            actor.note_outcome(&outcome);
            outcome
        }))
    }
}

/// New settings (config reload), and a new connection when the Redis URL or
/// timeout changed. Commands already in flight finish with the old ones.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub settings: TokenSettings,
    pub conn: Option<ConnectionManager>,
}

impl Handler<Reconfigure> for TokenActor {
    type Result = ();

    fn handle(&mut self, update: Reconfigure, _ctx: &mut Self::Context) {
        self.settings = Rc::new(update.settings);
        if let Some(conn) = update.conn {
            self.conn = conn;
        }
    }
}

/// Counters of the token store's Redis commands since start (metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct TokenStats {
    /// Commands that failed or timed out.
    pub command_errors: u64,
    /// Runs of failed commands that ended with a successful one.
    pub recoveries: u64,
}

/// Asks for the [`TokenStats`].
#[derive(Debug, Message)]
#[rtype(result = "TokenStats")]
pub struct GetTokenStats;

impl Handler<GetTokenStats> for TokenActor {
    type Result = TokenStats;

    fn handle(&mut self, _msg: GetTokenStats, _ctx: &mut Self::Context) -> TokenStats {
        self.stats
    }
}

impl Handler<Shutdown> for TokenActor {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
