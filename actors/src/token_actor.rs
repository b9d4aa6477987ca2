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
//! A request that finds no round trip in flight and no batch being filled is
//! sent at once, on its own: it has nothing to wait for (at one call in flight
//! this saves a message per call), and the requests that arrive while it is
//! in flight coalesce behind it.
//! Each request is still exactly one Redis command, but the client's fixed
//! cost per round trip (channel hop, reply future, wake-ups) is paid once per
//! batch instead of once per request. The actor never waits on Redis: a batch
//! in flight does not hold up the next one, so one slow reply does not
//! serialize the requests behind it. Batch outcomes come back to the actor to
//! count errors and to log an outage once when it starts and once when it ends.
//!
//! In a Redis Cluster a pipeline must stay in one hash slot, and the tokens
//! of different uids hash to different slots (a batch of 64 uids spans
//! almost 64 slots), so there each request travels as its own round trip,
//! all of them concurrently on the cluster connection; per-slot batches
//! would almost always hold one request.
//!
//! A batch call (`IssueTokens`, `CheckTokens`: docs/contract.md §9) sends its
//! commands as one pipeline of its own, however many: one round trip per
//! batch (in a cluster, one per item, as above).
//!
//! With `min_replicas_ack = N > 0`, each token `SET` is followed in the same
//! round trip by `WAIT N command_timeout_ms`; a write that fewer than N
//! replicas acknowledged fails (the caller answers UNAVAILABLE, no token).
//! Redis answers a connection's commands in order, and a `WAIT` holds its
//! connection until the replicas answer or the timeout ends: so the writes
//! travel on a connection of their own ([`TokenLinks`]), and Logins do not
//! wait behind them while replicas are missing.
//!
//! A token key holding another type (a list, a hash: someone else's data, or an attack)
//! makes its `GET` answer `WRONGTYPE`. That is this key's problem, not Redis's: Login answers
//! that the token is not valid (1010), the reply counts as an answer, never toward an
//! outage, and the first such reply is logged once.
//!
//! Requests are fire-and-forget messages carrying where their answer goes: a
//! reply channel whose [`PendingReply`] the requester awaits on its own task,
//! or, for a token write, the requester's hook ([`IssueToken`]: the registry
//! settles the placement and answers its caller from it). No future per
//! request runs on the actors' thread, and the answer wakes the caller
//! directly.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use redis::{RedisResult, Value};
use tokio::sync::oneshot;

use crate::Shutdown;
use crate::outage::OutageTracker;
use crate::redis_link::{RedisFailure, RedisLink};
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
    /// Replicas that must acknowledge a token write (`WAIT`); 0: no wait.
    pub min_replicas_ack: u64,
}

/// Where the replies to one request's commands go.
enum Waiter {
    /// A `SET` (and, when `replicas > 0`, a `WAIT replicas`): tells
    /// `on_done` the token it stored, or why not.
    Stored {
        token: String,
        replicas: u64,
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
    /// Whether the request is a token write, which goes on the writes link
    /// when there is one ([`TokenLinks::for_writes`]).
    fn is_write(&self) -> bool {
        matches!(self, Waiter::Stored { .. })
    }

    /// Hands the request's replies to its requester (who may have gone: the
    /// caller's future was dropped, nothing to do). For a token write, returns
    /// whether the token counts as stored (replicas included).
    fn answer(self, replies: Result<Vec<Value>, RedisFailure>) -> Option<bool> {
        match self {
            Waiter::Stored {
                token,
                replicas,
                on_done,
            } => {
                let stored = replies.and_then(|replies| acknowledged(&replies, replicas));
                let ok = stored.is_ok();
                on_done.call(stored.map(|()| token));
                Some(ok)
            }
            Waiter::Checked {
                presented,
                reply: tx,
            } => {
                let checked = match replies {
                    // Whatever another type holds, it is not the token.
                    Err(RedisFailure::Command(err)) if is_wrong_type(&err) => {
                        Ok(LoginCheck::TokenInvalid)
                    }
                    replies => replies.and_then(|mut replies| {
                        let stored = match replies.pop() {
                            None | Some(Value::Nil) => None,
                            Some(value) => Some(
                                redis::from_redis_value::<Vec<u8>>(value)
                                    .map_err(|err| RedisFailure::Command(err.into()))?,
                            ),
                        };
                        Ok(check_stored_token(stored.as_deref(), &presented))
                    }),
                };
                let _ = tx.send(checked);
                None
            }
            Waiter::Revoked { reply: tx } => {
                let deleted = replies.and_then(|mut replies| {
                    redis::from_redis_value::<u64>(replies.pop().unwrap_or(Value::Nil))
                        .map_err(|err| RedisFailure::Command(err.into()))
                });
                let _ = tx.send(deleted.map(|keys| keys > 0));
                None
            }
        }
    }
}

/// Redis's answer to a command on a key of another type (`GET` on a list).
fn is_wrong_type(err: &redis::RedisError) -> bool {
    err.code() == Some("WRONGTYPE")
}

/// Whether a token write counts as stored: the `SET` answered (its replies
/// are all successes by now) and, when `replicas > 0`, `WAIT` counted at
/// least that many acknowledgements.
fn acknowledged(replies: &[Value], replicas: u64) -> Result<(), RedisFailure> {
    if replicas == 0 {
        return Ok(());
    }
    let acks = match replies.get(1) {
        Some(Value::Int(acks)) => *acks,
        _ => -1,
    };
    if u64::try_from(acks).is_ok_and(|acks| acks >= replicas) {
        Ok(())
    } else {
        Err(RedisFailure::Command(redis::RedisError::from((
            redis::ErrorKind::Client,
            "too few replicas acknowledged the token write",
            format!("WAIT counted {acks}, min_replicas_ack is {replicas}"),
        ))))
    }
}

/// The answer to a token request, awaited by the requester on its own task
/// (no future runs on the actor's thread per request).
pub struct PendingReply<T>(oneshot::Receiver<Result<T, RedisFailure>>);

impl<T> Future for PendingReply<T> {
    type Output = Result<T, RedisFailure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|answer| {
            // The request was dropped unanswered: the actor stopped.
            answer.unwrap_or_else(|_| Err(stopped()))
        })
    }
}

/// The answer to a request the actor dropped unanswered: it stopped.
fn stopped() -> RedisFailure {
    RedisFailure::Command(redis::RedisError::from((
        redis::ErrorKind::Client,
        "token actor stopped",
    )))
}

/// A request message and the reply its sender awaits.
fn request<M, T>(
    message: impl FnOnce(oneshot::Sender<Result<T, RedisFailure>>) -> M,
) -> (M, PendingReply<T>) {
    let (tx, rx) = oneshot::channel();
    (message(tx), PendingReply(rx))
}

/// Requests received since the last flush: each one's commands and waiter.
#[derive(Default)]
struct Batch {
    requests: Vec<(Vec<redis::Cmd>, Waiter)>,
}

/// The connections of the token store: one for everything, and, when token
/// writes are followed by a `WAIT`, one of their own (see the module doc).
#[derive(Clone, Debug)]
pub struct TokenLinks {
    pub all: RedisLink,
    pub writes: Option<RedisLink>,
}

impl TokenLinks {
    /// Where token writes go.
    fn for_writes(&self) -> &RedisLink {
        self.writes.as_ref().unwrap_or(&self.all)
    }

    /// Where the request `waiter` answers goes: the same rule as
    /// [`TokenActor::send`]'s split of a batch.
    fn for_request(&self, waiter: &Waiter) -> &RedisLink {
        if waiter.is_write() {
            self.for_writes()
        } else {
            &self.all
        }
    }
}

/// Owns the token store's connections, settings and the batch being filled.
pub struct TokenActor {
    conn: TokenLinks,
    settings: Rc<TokenSettings>,
    batch: Batch,
    /// Round trips sent whose replies have not come back.
    in_flight: usize,
    /// Outcomes of the batches, so an outage is logged once, not once per
    /// request, and errors are counted for the metrics.
    outage: OutageTracker,
    /// Whether a token key of another type was logged already (it is, once).
    wrong_type_logged: bool,
    /// The last batch with token writes had every one of them fail while
    /// Redis answered (out of memory, a read-only replica, too few replicas
    /// acknowledging): GetChatServer cannot succeed, whatever Logins see, so
    /// health counts it as an outage until a write succeeds.
    writes_failing: bool,
    /// Whether a batch where only some requests failed was logged since the
    /// last batch that succeeded whole (one line per episode, not per batch).
    partial_failure_logged: bool,
}

/// One request's replies, or why there are none.
type Replies = Result<Vec<RedisResult<Value>>, RedisFailure>;

impl TokenActor {
    pub fn new(conn: TokenLinks, settings: TokenSettings) -> Self {
        TokenActor {
            conn,
            settings: Rc::new(settings),
            batch: Batch::default(),
            in_flight: 0,
            outage: OutageTracker::default(),
            wrong_type_logged: false,
            writes_failing: false,
            partial_failure_logged: false,
        }
    }

    /// Whether calls that need the token store fail: Redis does not answer,
    /// or it answers but refuses token writes.
    fn in_outage(&self) -> bool {
        self.outage.in_outage() || self.writes_failing
    }

    /// Follows the token writes of one batch (`stored`: each write's outcome)
    /// and logs when they start and stop failing, once each. A batch without
    /// writes says nothing about them.
    fn note_writes(&mut self, stored: &[bool]) {
        if stored.is_empty() {
            return;
        }
        let failing = stored.iter().all(|ok| !ok);
        if failing && !self.writes_failing && !self.outage.in_outage() {
            log::error!(
                "token store: Redis answers but every token write of the last batch failed; \
                 GetChatServer answers UNAVAILABLE and health says not serving until a write \
                 succeeds"
            );
        } else if !failing && self.writes_failing {
            log::info!("token store: token writes succeed again");
        }
        self.writes_failing = failing;
    }

    fn key(&self, uid: i32) -> String {
        // Built by hand: `format!` costs several times more, once per call.
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(uid);
        let mut key = String::with_capacity(self.settings.prefix.len() + digits.len());
        key.push_str(&self.settings.prefix);
        key.push_str(digits);
        key
    }

    /// Adds a request to the batch; the first one schedules the flush, which
    /// runs once the mailbox is drained, so everything queued now joins it. A
    /// request that finds nothing in flight and nothing batched has nothing to
    /// join, the usual case at one call in flight: it is sent at once.
    fn enqueue(&mut self, cmds: Vec<redis::Cmd>, waiter: Waiter, ctx: &mut Context<Self>) {
        if self.batch.requests.is_empty() && self.in_flight == 0 {
            let conn = self.conn.for_request(&waiter).clone();
            self.send_one(conn, cmds, waiter, ctx);
            return;
        }
        if self.batch.requests.is_empty() {
            ctx.notify(Flush);
        }
        self.batch.requests.push((cmds, waiter));
        if self.batch.requests.len() >= MAX_BATCH {
            self.flush(ctx);
        }
    }

    /// Sends the batch being filled (see [`TokenActor::send`]).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Batch { requests } = std::mem::take(&mut self.batch);
        self.send(requests, ctx);
    }

    /// Sends `requests`: the token writes on their own connection when they
    /// have one, everything else on the shared one.
    fn send(&mut self, requests: Vec<(Vec<redis::Cmd>, Waiter)>, ctx: &mut Context<Self>) {
        match self.conn.writes.clone() {
            None => self.send_on(self.conn.all.clone(), requests, ctx),
            Some(writes) => {
                let (stores, others): (Vec<_>, Vec<_>) = requests
                    .into_iter()
                    .partition(|(_, waiter)| waiter.is_write());
                self.send_on(writes, stores, ctx);
                self.send_on(self.conn.all.clone(), others, ctx);
            }
        }
    }

    /// Sends `requests` on `conn` as one pipeline (one per request in a
    /// cluster) and answers their waiters when the replies return.
    fn send_on(
        &mut self,
        conn: RedisLink,
        mut requests: Vec<(Vec<redis::Cmd>, Waiter)>,
        ctx: &mut Context<Self>,
    ) {
        if requests.is_empty() {
            return;
        }
        if requests.len() == 1
            && let Some((cmds, waiter)) = requests.pop()
        {
            self.send_one(conn, cmds, waiter, ctx);
            return;
        }
        let timeout = self.settings.command_timeout;
        let (cmds, waiters): (Vec<_>, Vec<_>) = requests.into_iter().unzip();
        let replies = async move {
            if conn.one_key_per_pipeline() {
                let sent = cmds.into_iter().map(|cmds| {
                    let pipe = pipeline(cmds);
                    let conn = conn.clone();
                    async move { conn.replies(&pipe, timeout).await }
                });
                join_all(sent).await
            } else {
                let counts: Vec<usize> = cmds.iter().map(Vec::len).collect();
                split_replies(conn.replies(&batch_pipeline(cmds), timeout).await, &counts)
            }
        };
        self.in_flight += 1;
        ctx.spawn(replies.into_actor(self).map(move |replies, actor, _ctx| {
            actor.in_flight -= 1;
            actor.note_outcome(&replies);
            let stored: Vec<bool> = waiters
                .into_iter()
                .zip(replies)
                .filter_map(|(waiter, replies)| waiter.answer(all_succeeded(replies)))
                .collect();
            actor.note_writes(&stored);
        }));
    }

    /// Sends one request on `conn` on its own (one command: not even as a
    /// pipeline), without a batch's splitting and joining, and answers its
    /// waiter when the replies return.
    fn send_one(
        &mut self,
        conn: RedisLink,
        cmds: Vec<redis::Cmd>,
        waiter: Waiter,
        ctx: &mut Context<Self>,
    ) {
        let timeout = self.settings.command_timeout;
        let replies = async move {
            match <[redis::Cmd; 1]>::try_from(cmds) {
                Ok([cmd]) => conn.reply(&cmd, timeout).await,
                Err(cmds) => conn.replies(&pipeline(cmds), timeout).await,
            }
        };
        self.in_flight += 1;
        ctx.spawn(replies.into_actor(self).map(move |replies, actor, _ctx| {
            actor.in_flight -= 1;
            actor.note_outcome(std::slice::from_ref(&replies));
            if let Some(stored) = waiter.answer(all_succeeded(replies)) {
                actor.note_writes(&[stored]);
            }
        }));
    }

    /// Counts the batch's failed commands and logs an outage's start and end
    /// once: a batch where every request failed is an outage; one where only
    /// some commands failed means Redis itself answers.
    fn note_outcome(&mut self, replies: &[Replies]) {
        // A key of another type is an answer about that key (see the module doc).
        let failed_command = |r: &RedisResult<Value>| match r {
            Err(err) if !is_wrong_type(err) => Some(err.clone()),
            _ => None,
        };
        let failed = replies
            .iter()
            .filter(|r| !matches!(r, Ok(replies) if replies.iter().all(|r| failed_command(r).is_none())))
            .count();
        let first_failure = replies.iter().find_map(|r| match r {
            Err(failure) => Some(failure.clone()),
            Ok(replies) => replies
                .iter()
                .find_map(|r| failed_command(r).map(RedisFailure::Command)),
        });
        if !self.wrong_type_logged
            && let Some(err) = replies
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .flatten()
                .find_map(|r| r.as_ref().err().filter(|err| is_wrong_type(err)))
        {
            self.wrong_type_logged = true;
            log::warn!(
                "token store: a token key holds another type ({err}); Login answers that its \
                 token is not valid (logged once)"
            );
        }
        match first_failure {
            Some(failure) if failed == replies.len() => {
                if self.outage.record_failure(failed as u64) {
                    log::error!(
                        "token store: {failure}; answering UNAVAILABLE until Redis answers"
                    );
                }
            }
            Some(failure) => {
                self.outage.count_errors(failed as u64);
                if !self.partial_failure_logged {
                    self.partial_failure_logged = true;
                    log::warn!(
                        "token store: {failed} of {} requests failed: {failure} (later partial \
                         failures are counted in the metrics, not logged, until a batch \
                         succeeds whole)",
                        replies.len()
                    );
                }
                self.note_recovery();
            }
            None => {
                self.partial_failure_logged = false;
                self.note_recovery();
            }
        }
    }

    /// Logs the end of an outage once.
    fn note_recovery(&mut self) {
        if self.outage.record_success() {
            log::info!("token store: Redis answers again");
        }
    }
}

/// One request's replies, or the first of its commands that failed.
fn all_succeeded(replies: Replies) -> Result<Vec<Value>, RedisFailure> {
    replies.and_then(|replies| {
        replies
            .into_iter()
            .collect::<RedisResult<Vec<Value>>>()
            .map_err(RedisFailure::Command)
    })
}

/// `cmds` as one pipeline whose commands keep their own errors.
fn pipeline(cmds: Vec<redis::Cmd>) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for cmd in cmds {
        pipe.add_command(cmd);
    }
    pipe.ignore_errors();
    pipe
}

/// One round trip for the whole batch: every request's first command (its
/// `SET` or `GET`), then the rest (the `WAIT`s), in request order. A `WAIT`
/// blocks the connection until replicas answer; behind every `SET` of the
/// batch, the first one covers them all and the others return at once.
fn batch_pipeline(cmds: Vec<Vec<redis::Cmd>>) -> redis::Pipeline {
    let mut firsts = Vec::with_capacity(cmds.len());
    let mut rest = Vec::new();
    for mut request in cmds {
        let tail = request.split_off(1.min(request.len()));
        firsts.extend(request);
        rest.extend(tail);
    }
    firsts.extend(rest);
    pipeline(firsts)
}

/// The replies of a [`batch_pipeline`], given back to each request in its
/// own order (`counts` commands each).
fn split_replies(replies: Replies, counts: &[usize]) -> Vec<Replies> {
    let total: usize = counts.iter().sum();
    let failure = match replies {
        Ok(replies) if replies.len() == total => {
            let mut replies = replies.into_iter();
            let mut firsts: Vec<Vec<RedisResult<Value>>> = counts
                .iter()
                .map(|&n| replies.by_ref().take(n.min(1)).collect())
                .collect();
            for (request, &n) in firsts.iter_mut().zip(counts) {
                request.extend(replies.by_ref().take(n.saturating_sub(1)));
            }
            return firsts.into_iter().map(Ok).collect();
        }
        Ok(replies) => RedisFailure::Command(redis::RedisError::from((
            redis::ErrorKind::Client,
            "pipeline reply count mismatch",
            format!("{} replies for {total} commands", replies.len()),
        ))),
        Err(failure) => failure,
    };
    counts.iter().map(|_| Err(failure.clone())).collect()
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

/// What a finished token write is for: the stored token, or why there is
/// none.
pub type Stored = Result<String, RedisFailure>;

/// Runs on the actor's thread when a token write has finished, exactly once:
/// if the write is dropped unanswered (the actor stopped), it runs with that
/// failure.
pub struct OnStored(Option<Box<dyn FnOnce(Stored) + Send>>);

impl OnStored {
    fn call(mut self, stored: Stored) {
        if let Some(hook) = self.0.take() {
            hook(stored);
        }
    }
}

impl Drop for OnStored {
    fn drop(&mut self) {
        if let Some(hook) = self.0.take() {
            hook(Err(stopped()));
        }
    }
}

impl std::fmt::Debug for OnStored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnStored")
    }
}

/// Mints a token for `uid` and stores it, replacing any earlier one. Sent
/// with `do_send`; `on_done` gets the stored token (or the failure) on the
/// actor's thread, so the one who asked (the registry) settles the placement
/// and answers its caller without another hop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct IssueToken {
    uid: i32,
    on_done: OnStored,
}

impl IssueToken {
    pub fn new(uid: i32, on_done: impl FnOnce(Stored) + Send + 'static) -> IssueToken {
        IssueToken {
            uid,
            on_done: OnStored(Some(Box::new(on_done))),
        }
    }
}

impl TokenActor {
    /// The commands that store a fresh token for `msg.uid` (`SET`, and
    /// `WAIT` when replicas must acknowledge), and their waiter.
    fn store_request(&self, msg: IssueToken) -> (Vec<redis::Cmd>, Waiter) {
        let token = mint_token();
        let key = self.key(msg.uid);
        // Sized at once: the command's buffers would otherwise grow with each argument.
        let mut set = redis::Cmd::with_capacity(5, 3 + key.len() + token.len() + 2 + 20);
        set.arg("SET").arg(key).arg(&token);
        if self.settings.ttl_secs > 0 {
            set.arg("EX").arg(self.settings.ttl_secs);
        }
        let replicas = self.settings.min_replicas_ack;
        let mut cmds = vec![set];
        if replicas > 0 {
            cmds.push(self.wait_cmd());
        }
        let waiter = Waiter::Stored {
            token,
            replicas,
            on_done: msg.on_done,
        };
        (cmds, waiter)
    }

    /// `WAIT min_replicas_ack command_timeout_ms`, sent behind a token write.
    fn wait_cmd(&self) -> redis::Cmd {
        let mut wait = redis::cmd("WAIT");
        let timeout_ms =
            u64::try_from(self.settings.command_timeout.as_millis()).unwrap_or(u64::MAX);
        wait.arg(self.settings.min_replicas_ack).arg(timeout_ms);
        wait
    }

    /// The `GET` that checks `msg`'s token, and its waiter; `None` when the
    /// input alone decides (answered at once, Redis untouched).
    fn check_request(&self, msg: CheckToken) -> Option<(Vec<redis::Cmd>, Waiter)> {
        if let Some(rejected) = reject_login_input(msg.uid, &msg.token) {
            let _ = msg.reply.send(Ok(rejected));
            return None;
        }
        let mut get = redis::cmd("GET");
        get.arg(self.key(msg.uid));
        let waiter = Waiter::Checked {
            presented: msg.token,
            reply: msg.reply,
        };
        Some((vec![get], waiter))
    }

    /// Sends one batch call's requests as a pipeline of their own, whatever
    /// their number (docs/contract.md §9: one round trip per batch). What
    /// is being coalesced goes first, so commands leave in arrival order.
    fn send_batch(&mut self, requests: Vec<(Vec<redis::Cmd>, Waiter)>, ctx: &mut Context<Self>) {
        self.flush(ctx);
        self.send(requests, ctx);
    }
}

impl Handler<IssueToken> for TokenActor {
    type Result = ();

    fn handle(&mut self, msg: IssueToken, ctx: &mut Self::Context) {
        let (cmds, waiter) = self.store_request(msg);
        self.enqueue(cmds, waiter, ctx);
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
        if let Some((cmds, waiter)) = self.check_request(msg) {
            self.enqueue(cmds, waiter, ctx);
        }
    }
}

/// The token writes of one batch call (`statusbatch.v1.Batch/GetChatServers`):
/// each tells its own hook as an [`IssueToken`] would, but they travel
/// together in one pipeline of their own, never split.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct IssueTokens(pub Vec<IssueToken>);

impl Handler<IssueTokens> for TokenActor {
    type Result = ();

    fn handle(&mut self, msg: IssueTokens, ctx: &mut Self::Context) {
        let requests = msg.0.into_iter().map(|issue| self.store_request(issue));
        let requests = requests.collect();
        self.send_batch(requests, ctx);
    }
}

/// The token checks of one batch call (`statusbatch.v1.Batch/Logins`): each
/// answers on its own [`PendingReply`] as a [`CheckToken`] would; the ones
/// that need Redis travel together in one pipeline of their own.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CheckTokens(pub Vec<CheckToken>);

impl Handler<CheckTokens> for TokenActor {
    type Result = ();

    fn handle(&mut self, msg: CheckTokens, ctx: &mut Self::Context) {
        let requests = msg
            .0
            .into_iter()
            .filter_map(|check| self.check_request(check));
        let requests = requests.collect();
        self.send_batch(requests, ctx);
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
        self.enqueue(vec![del], Waiter::Revoked { reply: msg.reply }, ctx);
    }
}

/// New settings (config reload), and new connections when the Redis settings
/// changed or `min_replicas_ack` turned on or off. Commands already batched or in flight finish with the
/// old ones.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub settings: TokenSettings,
    pub conn: Option<TokenLinks>,
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
    /// An outage is going on: the last batch failed as a whole, or the last
    /// token writes all failed, so calls that need the token store answer
    /// UNAVAILABLE. Health follows it.
    pub in_outage: bool,
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
            in_outage: self.in_outage(),
        }
    }
}

/// While an outage is going on, tries one token write, so the outage can end
/// even when no call arrives (health reports it, and load balancers then
/// stop sending calls). The write is what a token write is, at the key of
/// uid 0, which no user has (uids are > 0), kept for 1 ms: Redis refusing
/// writes (out of memory, a read-only replica) fails it as it fails tokens.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ProbeWrites;

impl Handler<ProbeWrites> for TokenActor {
    type Result = ();

    fn handle(&mut self, _msg: ProbeWrites, ctx: &mut Self::Context) {
        if !self.in_outage() {
            return;
        }
        let mut set = redis::cmd("SET");
        set.arg(self.key(0)).arg("").arg("PX").arg(1);
        let mut cmds = vec![set];
        let replicas = self.settings.min_replicas_ack;
        if replicas > 0 {
            cmds.push(self.wait_cmd());
        }
        let pipe = pipeline(cmds);
        let conn = self.conn.for_writes().clone();
        let timeout = self.settings.command_timeout;
        let probe = async move { conn.replies(&pipe, timeout).await };
        ctx.spawn(probe.into_actor(self).map(move |replies, actor, _ctx| {
            actor.note_outcome(std::slice::from_ref(&replies));
            let stored = all_succeeded(replies)
                .and_then(|replies| acknowledged(&replies, replicas))
                .is_ok();
            actor.note_writes(&[stored]);
        }));
    }
}

impl Handler<Shutdown> for TokenActor {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i64) -> RedisResult<Value> {
        Ok(Value::Int(n))
    }

    #[test]
    fn waits_go_behind_every_first_command_and_come_back_to_their_request() {
        let cmds = vec![
            vec![redis::cmd("SET"), redis::cmd("WAIT")],
            vec![redis::cmd("GET")],
            vec![redis::cmd("SET"), redis::cmd("WAIT")],
        ];
        let packed = batch_pipeline(cmds).get_packed_pipeline();
        let text = String::from_utf8_lossy(&packed);
        let order: Vec<&str> = ["SET", "GET", "WAIT"]
            .iter()
            .flat_map(|name| text.match_indices(name).map(|(i, _)| (i, *name)))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect();
        assert_eq!(order, ["SET", "GET", "SET", "WAIT", "WAIT"]);

        // Replies in that order: SET a, GET, SET b, WAIT a, WAIT b.
        let replies = Ok(vec![int(1), int(2), int(3), int(4), int(5)]);
        let split = split_replies(replies, &[2, 1, 2]);
        let values: Vec<Vec<i64>> = split
            .into_iter()
            .map(|r| {
                r.expect("answered")
                    .into_iter()
                    .map(|v| match v {
                        Ok(Value::Int(n)) => n,
                        other => panic!("{other:?}"),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(values, vec![vec![1, 4], vec![2], vec![3, 5]]);
    }

    #[test]
    fn a_short_or_failed_reply_fails_every_request() {
        let split = split_replies(Ok(vec![int(1)]), &[2, 1]);
        assert!(split.iter().all(Result::is_err));
        let split = split_replies(
            Err(RedisFailure::TimedOut(Duration::from_millis(5))),
            &[1, 1],
        );
        assert_eq!(split.len(), 2);
        assert!(split.iter().all(Result::is_err));
    }

    #[test]
    fn a_write_needs_its_replica_acknowledgements() {
        let ok = Value::Okay;
        assert!(acknowledged(std::slice::from_ref(&ok), 0).is_ok());
        assert!(acknowledged(&[ok.clone(), Value::Int(2)], 2).is_ok());
        assert!(acknowledged(&[ok.clone(), Value::Int(1)], 2).is_err());
        assert!(acknowledged(&[ok], 1).is_err(), "no WAIT reply");
    }
}
