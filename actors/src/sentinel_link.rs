//! The sentinel mode's connection: a `ConnectionManager` to the master the
//! sentinels name, replaced when they name another.
//!
//! The redis crate finds the master through the sentinels (and checks that
//! it says ROLE master), but has no connection that follows a failover: one
//! built on the master's address keeps dialling that address. So a resolver
//! task owns the crate's `SentinelClient` and publishes the current master's
//! connection on a watch channel; every user reads it from there. A user
//! whose command fails in a way a failover explains (refused, broken, timed
//! out, READONLY) asks for a new resolution. Requests coalesce (a channel of
//! one) and resolutions are at least [`RESOLVE_GAP`] apart, so a burst of
//! failures costs one question to the sentinels, and at most one is in
//! flight. Calls therefore succeed again within one failed call plus
//! [`RESOLVE_GAP`] of the sentinels announcing the new master.
//!
//! A watcher task also subscribes to `+switch-master` on one sentinel after
//! another and asks for a resolution at each announcement for our master, so
//! a failover that no failing call noticed yet (a manual `SENTINEL
//! FAILOVER`, an idle moment) still moves every caller to the new master.
//!
//! Over TLS (`rediss://` sentinels) the master is reached over TLS too, with the same
//! certificates. Only the crate's builder takes certificates for the master, and it gives
//! every sentinel one user and password: with certificates of our own, those of the first
//! URL (the config requires them to agree); without, each URL keeps its own.
//!
//! The first resolution starts at once; until it succeeds, calls wait for it
//! under their deadline and then fail (UNAVAILABLE), so the process starts
//! with every sentinel down.

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::sentinel::{
    SentinelClient, SentinelClientBuilder, SentinelNodeConnectionInfo, SentinelServerType,
};
use redis::{
    ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisConnectionInfo, RedisError,
    RedisResult, TlsMode,
};
use tokio::sync::{mpsc, watch};

use crate::outage::OutageTracker;
use crate::redis_link::{Password, TlsPem, client_of, lazy_manager};

/// Least time between two resolutions.
pub const RESOLVE_GAP: Duration = Duration::from_millis(100);

/// A handle on the current master; cheap to clone.
#[derive(Clone)]
pub struct SentinelLink {
    master: watch::Receiver<Option<ConnectionManager>>,
    resolve: mpsc::Sender<()>,
}

impl SentinelLink {
    /// Starts the resolver task (needs a tokio runtime). Fails only on
    /// sentinel URLs the redis crate rejects.
    pub(crate) fn open(
        sentinels: &[String],
        master_name: &str,
        password: Option<&Password>,
        tls: Option<&TlsPem>,
        timeout: Duration,
    ) -> RedisResult<SentinelLink> {
        // Each with our certificates, when there are any.
        let sentinels = sentinels
            .iter()
            .map(|url| {
                let client = client_of(url.as_str().into_connection_info()?, tls)?;
                Ok(client.get_connection_info().clone())
            })
            .collect::<RedisResult<Vec<ConnectionInfo>>>()?;
        let client = sentinel_client(&sentinels, master_name, password, tls)?;
        let (publish, master) = watch::channel(None);
        let (resolve, requests) = mpsc::channel(1);
        let resolver = Resolver {
            client,
            master_name: master_name.to_owned(),
            timeout,
            publish,
            known: None,
            outage: OutageTracker::default(),
        };
        tokio::spawn(resolver.run(requests));
        tokio::spawn(watch_switch_master(
            sentinels,
            master_name.to_owned(),
            timeout,
            resolve.downgrade(),
        ));
        let link = SentinelLink { master, resolve };
        link.resolve_again();
        Ok(link)
    }

    /// The current master's connection; waits for the first resolution
    /// (callers bound the wait with their deadline).
    pub(crate) async fn master(&self) -> RedisResult<ConnectionManager> {
        let mut master = self.master.clone();
        let known = master
            .wait_for(Option::is_some)
            .await
            .map_err(|_| RedisError::from((ErrorKind::Client, "the sentinel resolver stopped")))?;
        known
            .clone()
            .ok_or_else(|| RedisError::from((ErrorKind::Client, "no master known yet")))
    }

    /// Asks for the master to be resolved again (coalesced with any request
    /// already waiting).
    pub(crate) fn resolve_again(&self) {
        let _ = self.resolve.try_send(());
    }
}

/// The crate's client for the master named `master_name`: the master with `password` and,
/// when the sentinels speak TLS, over TLS with the certificates of `tls`.
fn sentinel_client(
    sentinels: &[ConnectionInfo],
    master_name: &str,
    password: Option<&Password>,
    tls: Option<&TlsPem>,
) -> RedisResult<SentinelClient> {
    // Certificates are always checked (the config refuses `#insecure`).
    let master_tls = match sentinels.first().map(ConnectionInfo::addr) {
        Some(ConnectionAddr::TcpTls { .. }) => Some(TlsMode::Secure),
        _ => None,
    };
    let Some(tls) = tls else {
        let mut master = SentinelNodeConnectionInfo::default();
        if let Some(mode) = master_tls {
            master = master.set_tls_mode(mode);
        }
        if let Some(Password(password)) = password {
            master = master
                .set_redis_connection_info(RedisConnectionInfo::default().set_password(password));
        }
        return SentinelClient::build(
            sentinels.to_vec(),
            master_name,
            Some(master),
            SentinelServerType::Master,
        );
    };
    let mut builder = SentinelClientBuilder::new(
        sentinels.iter().map(|info| info.addr().clone()),
        master_name,
        SentinelServerType::Master,
    )?
    .set_client_to_redis_certificates(tls.certificates());
    if let Some(first) = sentinels.first() {
        let auth = first.redis_settings();
        if let Some(user) = auth.username() {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = auth.password() {
            builder = builder.set_client_to_sentinel_password(password);
        }
    }
    if let Some(mode) = master_tls {
        builder = builder.set_client_to_redis_tls_mode(mode);
    }
    if let Some(Password(password)) = password {
        builder = builder.set_client_to_redis_password(password);
    }
    builder.build()
}

/// The resolver task's state.
struct Resolver {
    client: SentinelClient,
    master_name: String,
    timeout: Duration,
    publish: watch::Sender<Option<ConnectionManager>>,
    /// Address of the published master.
    known: Option<String>,
    outage: OutageTracker,
}

impl Resolver {
    /// Resolves on each request until every link is gone.
    async fn run(mut self, mut requests: mpsc::Receiver<()>) {
        while requests.recv().await.is_some() {
            self.resolve().await;
            tokio::time::sleep(RESOLVE_GAP).await;
        }
    }

    async fn resolve(&mut self) {
        let name = &self.master_name;
        let found = match tokio::time::timeout(self.timeout, self.client.async_get_client()).await {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => return self.failed(&err.to_string()),
            Err(_) => {
                return self.failed(&format!(
                    "no sentinel answered within {} ms",
                    self.timeout.as_millis()
                ));
            }
        };
        if self.outage.record_success() {
            log::info!("sentinel: the sentinels answer again for master {name:?}");
        }
        let addr = found.get_connection_info().addr().to_string();
        if self.known.as_deref() == Some(addr.as_str()) {
            return;
        }
        match lazy_manager(found, self.timeout) {
            Ok(conn) => {
                log::info!("sentinel: master {name:?} is at {addr}");
                self.known = Some(addr);
                self.publish.send_replace(Some(conn));
            }
            Err(err) => self.failed(&err.to_string()),
        }
    }

    fn failed(&mut self, why: &str) {
        if self.outage.record_failure(1) {
            let keeping = self
                .known
                .as_deref()
                .map_or_else(|| "none known yet".to_owned(), |a| format!("keeping {a}"));
            log::error!(
                "sentinel: cannot resolve master {:?} ({why}); {keeping}",
                self.master_name
            );
        }
    }
}

/// Pause before subscribing again after a subscription failed or ended.
const RESUBSCRIBE_GAP: Duration = Duration::from_millis(500);

/// How often the subscription is pinged: a frozen sentinel never closes it.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(2);

/// Subscribes to `+switch-master` on one sentinel after another and asks for
/// a resolution at each announcement for `master_name` (payload: `<name>
/// <old-ip> <old-port> <new-ip> <new-port>`). Ends once every link is gone.
async fn watch_switch_master(
    sentinels: Vec<ConnectionInfo>,
    master_name: String,
    timeout: Duration,
    resolve: mpsc::WeakSender<()>,
) {
    for sentinel in sentinels.iter().cycle() {
        let ask = || match resolve.upgrade() {
            Some(resolve) => {
                let _ = resolve.try_send(());
                true
            }
            None => false,
        };
        let subscribed = tokio::time::timeout(timeout, async {
            let mut pubsub = redis::Client::open(sentinel.clone())?
                .get_async_pubsub()
                .await?;
            pubsub.subscribe("+switch-master").await?;
            Ok::<_, RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(pubsub)) = subscribed {
            log::debug!("sentinel: watching +switch-master for {master_name:?}");
            // A switch may have happened while nobody listened.
            if !ask() {
                return;
            }
            let (mut sink, mut messages) = pubsub.split();
            let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
            loop {
                tokio::select! {
                    message = messages.next() => {
                        let Some(message) = message else { break };
                        let payload: String = message.get_payload().unwrap_or_default();
                        if payload.split(' ').next() == Some(master_name.as_str()) {
                            log::info!("sentinel: +switch-master {payload}");
                            if !ask() {
                                return;
                            }
                        }
                    }
                    _ = ping.tick() => {
                        let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
            }
        }
        if resolve.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(RESUBSCRIBE_GAP).await;
    }
}
