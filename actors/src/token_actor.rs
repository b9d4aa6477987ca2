//! `TokenActor`: owns the Redis side of login tokens, writes, checks and
//! revokes them.
//!
//! Key and value follow docs/contract.md §2 (`{token_prefix}{uid}` = token, written
//! with `SET .. EX ttl`), so deployed ChatServers that read Redis directly see
//! the same tokens.
//!
//! Commands are coalesced: every `SET`, `GET` and `DEL` the actor receives while its
//! mailbox is being drained joins one batch, sent as one pipeline on the
//! multiplexed connection once the mailbox is empty (or the batch is full).
//! Each request is still exactly one Redis command, but the client's fixed
//! cost per round trip (channel hop, reply future, wake-ups) is paid once per
//! batch instead of once per request. The actor never waits on Redis: a batch
//! in flight does not hold up the next one, so one slow reply does not
//! serialize the requests behind it. Batch outcomes come back to the actor to
//! count errors and to log an outage once when it starts and once when it ends.
//!
//! Requests are fire-and-forget messages carrying their reply channel: the
//! requester awaits a [`PendingReply`] on its own task, so no future per
//! request runs on the actors' thread and the answer wakes the requester
//! directly.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use actix::prelude::*;
use redis::Value;
use redis::aio::ConnectionManager;
use tokio::sync::oneshot;

use crate::Shutdown;
use crate::outage::OutageTracker;
use crate::redis_link::{RedisFailure, with_deadline};
use crate::token::{LoginCheck, check_stored_token, mint_token, reject_login_input};

/// Most commands in one pipeline; a fuller batch is sent at once. Measured at
/// 512 calls in flight: 64 gave more calls/s and a lower p99 than 256 (a
/// bigger batch makes its first caller wait for the last reply); 32 and 16
/// were within noise of 64.
const MAX_BATCH: usize = 64;

/// How tokens are stored.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Key prefix; the key of user `uid` is `{prefix}{uid}`.
    pub prefix: String,
    /// Expiry of a stored token; 0 stores it without expiry.
    pub ttl_secs: u64,
    /// Deadline of every Redis command (of the whole pipeline it travels in).
    pub command_timeout: Duration,
}

/// Where the reply to one command of a batch goes.
enum Waiter {
    /// A `SET`: answers the token it stored, and tells `on_done` first.
    Stored {
        token: String,
        reply: oneshot::Sender<Result<String, RedisFailure>>,
        on_done: OnStored,
    },
    /// A `GET`: answers how the stored token compares with `presented`.
    Checked {
        presented: String,
        reply: oneshot::Sender<Result<LoginCheck, RedisFailure>>,
    },
    /// A `DEL`: answers whether a token was there.
    Revoked {
        reply: oneshot::Sender<Result<bool, RedisFailure>>,
    },
}

impl Waiter {
    /// Hands one command's reply to its requester (who may have gone: the
    /// caller's future was dropped, nothing to do).
    fn answer(self, reply: Result<Value, RedisFailure>) {
        match self {
            Waiter::Stored {
                token,
                reply: tx,
                on_done,
            } => {
                on_done.call(reply.is_ok());
                let _ = tx.send(reply.map(|_| token));
            }
            Waiter::Checked {
                presented,
                reply: tx,
            } => {
                let checked = reply.and_then(|value| {
                    let stored = match value {
                        Value::Nil => None,
                        value => Some(
                            redis::from_redis_value::<Vec<u8>>(value)
                                .map_err(|err| RedisFailure::Command(err.into()))?,
                        ),
                    };
                    Ok(check_stored_token(stored.as_deref(), &presented))
                });
                let _ = tx.send(checked);
            }
            Waiter::Revoked { reply: tx } => {
                let deleted = reply.and_then(|value| {
                    redis::from_redis_value::<u64>(value)
                        .map_err(|err| RedisFailure::Command(err.into()))
                });
                let _ = tx.send(deleted.map(|keys| keys > 0));
            }
        }
    }
}

/// The answer to a token request, awaited by the requester on its own task
/// (no future runs on the actor's thread per request).
pub struct PendingReply<T>(oneshot::Receiver<Result<T, RedisFailure>>);

impl<T> Future for PendingReply<T> {
    type Output = Result<T, RedisFailure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| {
                // The request was dropped unanswered: the actor stopped.
                Err(RedisFailure::Command(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "token actor stopped",
                ))))
            })
        })
    }
}

/// A request message and the reply its sender awaits.
fn request<M, T>(
    message: impl FnOnce(oneshot::Sender<Result<T, RedisFailure>>) -> M,
) -> (M, PendingReply<T>) {
    let (tx, rx) = oneshot::channel();
    (message(tx), PendingReply(rx))
}

/// Commands received since the last flush.
#[derive(Default)]
struct Batch {
    pipe: redis::Pipeline,
    waiters: Vec<Waiter>,
}

/// Owns the token store's connection, settings and the batch being filled.
pub struct TokenActor {
    conn: ConnectionManager,
    settings: Rc<TokenSettings>,
    batch: Batch,
    /// Outcomes of the batches, so an outage is logged once, not once per
    /// request, and errors are counted for the metrics.
    outage: OutageTracker,
}

impl TokenActor {
    pub fn new(conn: ConnectionManager, settings: TokenSettings) -> Self {
        TokenActor {
            conn,
            settings: Rc::new(settings),
            batch: Batch::default(),
            outage: OutageTracker::default(),
        }
    }

    fn key(&self, uid: i32) -> String {
        format!("{}{}", self.settings.prefix, uid)
    }

    /// Adds a command to the batch; the first one schedules the flush, which
    /// runs once the mailbox is drained, so everything queued now joins it.
    fn enqueue(&mut self, cmd: redis::Cmd, waiter: Waiter, ctx: &mut Context<Self>) {
        if self.batch.waiters.is_empty() {
            ctx.notify(Flush);
        }
        self.batch.pipe.add_command(cmd);
        self.batch.waiters.push(waiter);
        if self.batch.waiters.len() >= MAX_BATCH {
            self.flush(ctx);
        }
    }

    /// Sends the batch as one pipeline and answers its waiters when it returns.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Batch { mut pipe, waiters } = std::mem::take(&mut self.batch);
        if waiters.is_empty() {
            return;
        }
        let mut conn = self.conn.clone();
        let timeout = self.settings.command_timeout;
        let replies = async move {
            with_deadline(
                timeout,
                pipe.ignore_errors()
                    .query_async::<Vec<redis::RedisResult<Value>>>(&mut conn),
            )
            .await
        };
        ctx.spawn(replies.into_actor(self).map(move |replies, actor, _ctx| {
            let count = waiters.len();
            match replies {
                Ok(replies) if replies.len() == count => {
                    let failed = replies.iter().filter(|r| r.is_err()).count();
                    actor.note_outcome(
                        failed,
                        count,
                        replies.iter().find_map(|r| r.as_ref().err()),
                    );
                    for (waiter, reply) in waiters.into_iter().zip(replies) {
                        waiter.answer(reply.map_err(RedisFailure::Command));
                    }
                }
                Ok(replies) => {
                    let failure = RedisFailure::Command(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "pipeline reply count mismatch",
                        format!("{} replies for {count} commands", replies.len()),
                    )));
                    actor.answer_all_failed(waiters, &failure);
                }
                Err(failure) => actor.answer_all_failed(waiters, &failure),
            }
        }));
    }

    fn answer_all_failed(&mut self, waiters: Vec<Waiter>, failure: &RedisFailure) {
        self.note_failure(waiters.len(), failure);
        for waiter in waiters {
            waiter.answer(Err(failure.clone()));
        }
    }

    fn note_outcome(&mut self, failed: usize, count: usize, error: Option<&redis::RedisError>) {
        match error {
            Some(err) if failed == count => {
                self.note_failure(failed, &RedisFailure::Command(err.clone()))
            }
            Some(err) => {
                // Some commands failed, Redis itself answers: not an outage.
                self.outage.count_errors(failed as u64);
                log::warn!("token store: {failed} of {count} commands failed: {err}");
                self.note_recovery();
            }
            None => self.note_recovery(),
        }
    }

    /// Counts failures and logs the start of an outage once.
    fn note_failure(&mut self, failed: usize, failure: &RedisFailure) {
        if self.outage.record_failure(failed as u64) {
            log::error!("token store: {failure}; answering UNAVAILABLE until Redis answers");
        }
    }

    /// Logs the end of an outage once.
    fn note_recovery(&mut self) {
        if self.outage.record_success() {
            log::info!("token store: Redis answers again");
        }
    }
}

impl Actor for TokenActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        log::debug!("token actor stopped");
    }
}

/// Sends the current batch (scheduled by its first command).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Flush;

impl Handler<Flush> for TokenActor {
    type Result = ();

    fn handle(&mut self, _msg: Flush, ctx: &mut Self::Context) {
        self.flush(ctx);
    }
}

/// Runs on the actor's thread when a token write has finished (`true`:
/// stored), exactly once: if the write is dropped unanswered (the actor
/// stopped), it runs with `false`.
pub struct OnStored(Option<Box<dyn FnOnce(bool) + Send>>);

impl OnStored {
    fn call(mut self, stored: bool) {
        if let Some(hook) = self.0.take() {
            hook(stored);
        }
    }
}

impl Drop for OnStored {
    fn drop(&mut self) {
        if let Some(hook) = self.0.take() {
            hook(false);
        }
    }
}

impl std::fmt::Debug for OnStored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnStored")
    }
}

/// Mints a token for `uid` and stores it, replacing any earlier one. Sent
/// with `do_send`; the stored token arrives on the [`PendingReply`], and
/// `on_done` learns the outcome on the actor's thread (so the registry hears
/// of it without a hop through the requester's thread).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct IssueToken {
    uid: i32,
    reply: oneshot::Sender<Result<String, RedisFailure>>,
    on_done: OnStored,
}

impl IssueToken {
    pub fn new(
        uid: i32,
        on_done: impl FnOnce(bool) + Send + 'static,
    ) -> (IssueToken, PendingReply<String>) {
        let on_done = OnStored(Some(Box::new(on_done)));
        request(|reply| IssueToken {
            uid,
            reply,
            on_done,
        })
    }
}

impl Handler<IssueToken> for TokenActor {
    type Result = ();

    fn handle(&mut self, msg: IssueToken, ctx: &mut Self::Context) {
        let token = mint_token();
        let mut set = redis::cmd("SET");
        set.arg(self.key(msg.uid)).arg(&token);
        if self.settings.ttl_secs > 0 {
            set.arg("EX").arg(self.settings.ttl_secs);
        }
        let waiter = Waiter::Stored {
            token,
            reply: msg.reply,
            on_done: msg.on_done,
        };
        self.enqueue(set, waiter, ctx);
    }
}

/// Checks the token a user presented for `uid` (the Login RPC). Sent with
/// `do_send`; the outcome arrives on the [`PendingReply`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CheckToken {
    uid: i32,
    token: String,
    reply: oneshot::Sender<Result<LoginCheck, RedisFailure>>,
}

impl CheckToken {
    pub fn new(uid: i32, token: String) -> (CheckToken, PendingReply<LoginCheck>) {
        request(|reply| CheckToken { uid, token, reply })
    }
}

impl Handler<CheckToken> for TokenActor {
    type Result = ();

    fn handle(&mut self, msg: CheckToken, ctx: &mut Self::Context) {
        if let Some(rejected) = reject_login_input(msg.uid, &msg.token) {
            let _ = msg.reply.send(Ok(rejected));
            return;
        }
        let mut get = redis::cmd("GET");
        get.arg(self.key(msg.uid));
        let waiter = Waiter::Checked {
            presented: msg.token,
            reply: msg.reply,
        };
        self.enqueue(get, waiter, ctx);
    }
}

/// Deletes the token of `uid` (Admin `RevokeToken`, docs/contract.md §7):
/// one `DEL`, after which Login for that uid answers 1011. Sent with
/// `do_send`; whether a token was there arrives on the [`PendingReply`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RevokeToken {
    uid: i32,
    reply: oneshot::Sender<Result<bool, RedisFailure>>,
}

impl RevokeToken {
    pub fn new(uid: i32) -> (RevokeToken, PendingReply<bool>) {
        request(|reply| RevokeToken { uid, reply })
    }
}

impl Handler<RevokeToken> for TokenActor {
    type Result = ();

    fn handle(&mut self, msg: RevokeToken, ctx: &mut Self::Context) {
        let mut del = redis::cmd("DEL");
        del.arg(self.key(msg.uid));
        self.enqueue(del, Waiter::Revoked { reply: msg.reply }, ctx);
    }
}

/// New settings (config reload), and a new connection when the Redis URL or
/// timeout changed. Commands already batched or in flight finish with the
/// old ones.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub settings: TokenSettings,
    pub conn: Option<ConnectionManager>,
}

impl Handler<Reconfigure> for TokenActor {
    type Result = ();

    fn handle(&mut self, update: Reconfigure, ctx: &mut Self::Context) {
        self.flush(ctx);
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
    /// Outages (runs of failed batches) that ended with a successful one.
    pub recoveries: u64,
}

/// Asks for the [`TokenStats`].
#[derive(Debug, Message)]
#[rtype(result = "TokenStats")]
pub struct GetTokenStats;

impl Handler<GetTokenStats> for TokenActor {
    type Result = TokenStats;

    fn handle(&mut self, _msg: GetTokenStats, _ctx: &mut Self::Context) -> TokenStats {
        TokenStats {
            command_errors: self.outage.errors(),
            recoveries: self.outage.recoveries(),
        }
    }
}

impl Handler<Shutdown> for TokenActor {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
