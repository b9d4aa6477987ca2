//! The Redis connection the actors share, in any of the three topologies,
//! and the deadline every command gets.
//!
//! One [`RedisLink`] value carries all commands, whatever the deployment:
//! - standalone: one multiplexed `ConnectionManager` (clones are cheap, many
//!   commands in flight, reconnects by itself once Redis is back);
//! - sentinel: the same, to the master the sentinels name, re-resolved by a
//!   task of its own ([`crate::sentinel_link`]) whenever a command fails in a
//!   way a failover explains;
//! - cluster: the redis crate's async `ClusterConnection`, which follows
//!   MOVED/ASK and a killed master by itself, replaced by a fresh one (which
//!   reads the slot map afresh) by a task of its own ([`crate::cluster_link`])
//!   whenever a command times out or fails in a way a moved master explains:
//!   a frozen master gives timeouts only, which the crate does not act on. A
//!   pipeline there must stay in one hash slot, so callers ask
//!   [`RedisLink::one_key_per_pipeline`].
//!
//! `rediss://` URLs speak TLS (rustls, through the redis crate) in every mode; [`TlsPem`]
//! replaces the system roots with a CA of its own and adds a client certificate
//! (docs/contract.md §6). In sentinel mode the master is reached over TLS exactly when the
//! sentinels are.
//!
//! Each call runs under `command_timeout`, which also bounds waiting for a
//! (re)connect or a master resolution, so a down or hung Redis turns into a
//! prompt, clear error instead of a stall. Nothing connects eagerly: the
//! process starts with Redis down and the first command (or poll) connects.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{
    ClientTlsConfig, FromRedisValue, IntoConnectionInfo, Pipeline, RedisResult, TlsCertificates,
    Value,
};

use crate::cluster_link::ClusterLink;
use crate::sentinel_link::SentinelLink;

/// Where Redis is: docs/contract.md §5.
#[derive(Clone, PartialEq, Eq)]
pub enum Topology {
    /// One node (`redis://` or `rediss://` URL).
    Standalone { url: String },
    /// The master that these sentinels monitor under `master_name`.
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
    /// A Redis Cluster, found from these seed nodes.
    Cluster { nodes: Vec<String> },
}

impl Topology {
    /// The mode's name as the config spells it.
    pub fn mode(&self) -> &'static str {
        match self {
            Topology::Standalone { .. } => "standalone",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster { .. } => "cluster",
        }
    }
}

// URLs may hold passwords: Debug shows the mode and the number of nodes only.
impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::Standalone { .. } => f.write_str("Standalone"),
            Topology::Sentinel {
                sentinels,
                master_name,
            } => write!(
                f,
                "Sentinel({master_name:?}, {} sentinels)",
                sentinels.len()
            ),
            Topology::Cluster { nodes } => write!(f, "Cluster({} seed nodes)", nodes.len()),
        }
    }
}

/// A password that never shows in Debug output (and so in no log line).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Everything needed to open a [`RedisLink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    pub topology: Topology,
    /// For every data-node connection (`STATUS_REDIS_PASSWORD`), in every mode.
    pub password: Option<Password>,
    /// Deadline of every call; also the connect and response timeout.
    pub command_timeout: Duration,
    /// Certificates of our own for `rediss://`; `None`: the system roots, no client
    /// certificate. Only with `rediss://` URLs.
    pub tls: Option<TlsPem>,
}

/// PEM contents for `rediss://` connections, as read from their files: a CA bundle trusted
/// instead of the system roots, and a client certificate for servers that ask for one
/// (`tls-auth-clients yes`). The contents never show in Debug output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsPem {
    pub ca: Option<Vec<u8>>,
    pub client: Option<ClientPem>,
}

/// A client certificate chain and its private key, in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsPem")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field("client", &self.client.as_ref().map(|_| "<pem>"))
            .finish()
    }
}

impl TlsPem {
    /// The redis crate's form of the same.
    pub(crate) fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.as_ref().map(|client| ClientTlsConfig {
                client_cert: client.cert.clone(),
                client_key: client.key.clone(),
            }),
            root_cert: self.ca.clone(),
        }
    }
}

/// The shared connection; cheap to clone, one per user.
#[derive(Clone)]
pub struct RedisLink(Inner);

impl fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.0 {
            Inner::Direct(_) => "standalone",
            Inner::Sentinel(_) => "sentinel",
            Inner::Cluster(_) => "cluster",
        };
        write!(f, "RedisLink({mode})")
    }
}

#[derive(Clone)]
enum Inner {
    Direct(ConnectionManager),
    Sentinel(SentinelLink),
    Cluster(ClusterLink),
}

/// A `ConnectionManager` of `client` that connects lazily, under the command timeout.
pub(crate) fn lazy_manager(
    client: redis::Client,
    command_timeout: Duration,
) -> RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(command_timeout))
        // No response timeout of its own: every call through a `RedisLink` runs under the
        // command deadline already (`with_deadline`, which also covers waiting for a
        // reconnect), and a second timer per command costs about 400 instructions.
        .set_response_timeout(None)
        // No background retry loop: the next command (at the latest the next
        // poll) starts a fresh attempt, so recovery follows Redis within one
        // poll interval and no request waits on a stale backoff.
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client, config)
}

/// A client of `info`, with our certificates when `tls` has them (`info` is then a
/// `rediss://` one).
pub(crate) fn client_of(
    info: redis::ConnectionInfo,
    tls: Option<&TlsPem>,
) -> RedisResult<redis::Client> {
    match tls {
        Some(tls) => redis::Client::build_with_tls(info, tls.certificates()),
        None => redis::Client::open(info),
    }
}

/// `url`'s connection info, with `password` when given.
pub(crate) fn connection_info(
    url: &str,
    password: Option<&Password>,
) -> RedisResult<redis::ConnectionInfo> {
    let info = url.into_connection_info()?;
    Ok(match password {
        Some(Password(password)) => {
            let redis = info.redis_settings().clone().set_password(password);
            info.set_redis_settings(redis)
        }
        None => info,
    })
}

impl RedisLink {
    /// Opens the link lazily; must run inside a tokio runtime (the sentinel
    /// and cluster modes start a task of their own). Fails only on settings the redis crate
    /// rejects (a malformed URL).
    pub fn open(settings: &LinkSettings) -> RedisResult<RedisLink> {
        let timeout = settings.command_timeout;
        let password = settings.password.as_ref();
        let tls = settings.tls.as_ref();
        let inner = match &settings.topology {
            Topology::Standalone { url } => Inner::Direct(lazy_manager(
                client_of(connection_info(url, password)?, tls)?,
                timeout,
            )?),
            Topology::Sentinel {
                sentinels,
                master_name,
            } => Inner::Sentinel(SentinelLink::open(
                sentinels,
                master_name,
                password,
                tls,
                timeout,
            )?),
            Topology::Cluster { nodes } => {
                Inner::Cluster(ClusterLink::open(nodes, password, tls, timeout)?)
            }
        };
        Ok(RedisLink(inner))
    }

    /// Whether one pipeline may carry only the commands of one key: in a
    /// cluster, commands of different keys live in different slots.
    pub fn one_key_per_pipeline(&self) -> bool {
        matches!(self.0, Inner::Cluster(_))
    }

    /// Sends `pipe` in one round trip and decodes the reply as `T`, under
    /// `deadline`; a failure a failover explains asks for a new master or
    /// cluster connection.
    pub async fn query<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
        deadline: Duration,
    ) -> Result<T, RedisFailure> {
        self.round_trip(&Decoded(pipe, PhantomData), deadline).await
    }

    /// Sends `request` in one round trip under `deadline`. A failure a
    /// failover explains (refused, broken, timed out, READONLY) asks for the
    /// master to be re-resolved (sentinel) or for a fresh cluster connection
    /// (cluster).
    async fn round_trip<R: RoundTrip>(
        &self,
        request: &R,
        deadline: Duration,
    ) -> Result<R::Output, RedisFailure> {
        match &self.0 {
            Inner::Direct(conn) => with_deadline(deadline, request.send(&mut conn.clone())).await,
            Inner::Cluster(link) => {
                let outcome = with_deadline(deadline, request.send(&mut link.connection())).await;
                if let Err(failure) = &outcome
                    && failure.suggests_failover()
                {
                    link.rebuild();
                }
                outcome
            }
            Inner::Sentinel(link) => {
                let outcome = with_deadline(deadline, async {
                    let mut conn = link.master().await?;
                    request.send(&mut conn).await
                })
                .await;
                if let Err(failure) = &outcome
                    && failure.suggests_failover()
                {
                    link.resolve_again();
                }
                outcome
            }
        }
    }

    /// Sends `pipe` (whose commands keep their own errors) and returns each
    /// command's reply; a READONLY reply (a demoted master) counts as a
    /// failure that a failover explains.
    pub async fn replies(
        &self,
        pipe: &Pipeline,
        deadline: Duration,
    ) -> Result<Vec<RedisResult<Value>>, RedisFailure> {
        let replies: Vec<RedisResult<Value>> = self.query(pipe, deadline).await?;
        Ok(self.checked(replies))
    }

    /// Sends one command and returns its reply as [`RedisLink::replies`]
    /// would for a pipeline of just that command, without a pipeline's cost
    /// (measured: about 1k instructions less per call).
    pub async fn reply(
        &self,
        cmd: &redis::Cmd,
        deadline: Duration,
    ) -> Result<Vec<RedisResult<Value>>, RedisFailure> {
        // An error reply is the command's own: a value here, as in a pipeline
        // that ignores errors; only a failed round trip is an `Err`.
        let reply = self.round_trip(cmd, deadline).await?.extract_error();
        Ok(self.checked(vec![reply]))
    }

    /// `replies` as they are; a READONLY reply among them (a demoted master)
    /// counts as a failure that a failover explains.
    fn checked(&self, replies: Vec<RedisResult<Value>>) -> Vec<RedisResult<Value>> {
        if replies
            .iter()
            .any(|r| matches!(r, Err(err) if is_read_only(err)))
        {
            match &self.0 {
                Inner::Direct(_) => {}
                Inner::Sentinel(link) => link.resolve_again(),
                Inner::Cluster(link) => link.rebuild(),
            }
        }
        replies
    }
}

/// What one round trip carries: a pipeline whose replies decode as a `T`
/// ([`Decoded`]), or one command ([`redis::Cmd`]) whose reply stays a
/// [`Value`], an error reply included.
trait RoundTrip {
    type Output;

    fn send<'a>(
        &'a self,
        conn: &'a mut (impl ConnectionLike + Send),
    ) -> impl Future<Output = RedisResult<Self::Output>> + Send + 'a;
}

/// A pipeline and the type its replies decode as.
struct Decoded<'a, T>(&'a Pipeline, PhantomData<fn() -> T>);

impl<T: FromRedisValue> RoundTrip for Decoded<'_, T> {
    type Output = T;

    fn send<'a>(
        &'a self,
        conn: &'a mut (impl ConnectionLike + Send),
    ) -> impl Future<Output = RedisResult<T>> + Send + 'a {
        self.0.query_async(conn)
    }
}

impl RoundTrip for redis::Cmd {
    type Output = Value;

    fn send<'a>(
        &'a self,
        conn: &'a mut (impl ConnectionLike + Send),
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        conn.req_packed_command(self)
    }
}

/// Why a Redis command did not give an answer.
#[derive(Debug, Clone)]
pub enum RedisFailure {
    /// Redis answered with an error, or the connection failed.
    Command(redis::RedisError),
    /// No answer within the command timeout (Redis down, hung or overloaded).
    TimedOut(Duration),
}

impl RedisFailure {
    /// Whether a master that moved would explain this failure.
    fn suggests_failover(&self) -> bool {
        match self {
            RedisFailure::TimedOut(_) => true,
            RedisFailure::Command(err) => {
                err.is_io_error()
                    || err.is_connection_refusal()
                    || err.is_connection_dropped()
                    || is_read_only(err)
                    || err.kind() == redis::ErrorKind::Client
            }
        }
    }
}

/// A replica (a demoted master) refusing a write.
fn is_read_only(err: &redis::RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
    )
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
