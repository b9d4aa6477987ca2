//! The cluster mode's connection: the redis crate's async `ClusterConnection`,
//! replaced by a fresh one when a call fails in a way a moved master explains.
//!
//! The crate follows MOVED and ASK, and re-reads the slot map when a node
//! refuses or drops connections (a killed master). A timeout does neither: a
//! master that is frozen rather than killed (SIGSTOP, a hung host: its port
//! still accepts connections, nothing answers) keeps every call on its slots
//! timing out on the crate's old connection to it, even after the cluster
//! has promoted its replica, until the frozen node answers again. The slot
//! refresh is private to the crate, but a new `ClusterConnection` reads
//! `CLUSTER SLOTS` afresh: it connects to every seed at once, drops those
//! that do not answer within the connect timeout (a frozen one among them),
//! and asks one that answered.
//!
//! So a rebuild task owns the crate's `ClusterClient` and publishes the
//! current connection on a watch channel; every clone of the link reads it
//! from there, and calls already in flight finish on the connection they
//! started on (the crate closes it once the last of them ends). A call that
//! times out or fails in a way a moved master explains asks for a rebuild.
//! Requests coalesce (a channel of one), one rebuild runs at a time, and
//! rebuilds start at least [`REBUILD_GAP`] apart. A new connection is
//! published only once it has read the slots, so calls never wait on a
//! connect that a frozen seed stretches to the whole connect timeout.
//!
//! The bound: a rebuild takes about one `command_timeout` (the frozen seed's
//! connect timeout) and, while the frozen node still owns slots, a second
//! one (connecting to the nodes the slots name). One that read the slots
//! just before the promotion ends at most one `command_timeout` after it;
//! the next one starts then (traffic keeps asking) and publishes the
//! promoted replica about one `command_timeout` later. Calls on the slots
//! succeed again within about 2 x `command_timeout` of the promotion, inside
//! docs/contract.md §5's `command_timeout_ms` + 2 s as long as
//! `command_timeout_ms` stays under 2 s.
//!
//! The first connection is built lazily (the process starts with every node
//! down); calls made before it connects wait for it under their deadline.

use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo, RedisResult};
use tokio::sync::{mpsc, watch};

use crate::outage::OutageTracker;
use crate::redis_link::{Password, TlsPem};

/// Least time between the starts of two rebuilds. Each rebuild opens a
/// connection to every node and reads the slot map; the cluster itself
/// needs `cluster-node-timeout` (at least a second, 15 s by default) to
/// promote a replica, so rebuilding more often only reads the same map
/// again. At 500 ms a burst of timeouts costs each instance at most two
/// rebuilds a second, while a rebuild that a frozen seed stretches (about
/// one `command_timeout`) already spaces them wider, so the gap adds nothing
/// to the recovery bound above.
pub const REBUILD_GAP: Duration = Duration::from_millis(500);

/// How many command timeouts one rebuild may take: connecting to the seeds,
/// reading the slots, connecting to the nodes they name, one timeout each at
/// most.
const REBUILD_TIMEOUTS: u32 = 3;

/// A handle on the current cluster connection; cheap to clone.
#[derive(Clone)]
pub struct ClusterLink {
    current: watch::Receiver<ClusterConnection>,
    rebuild: mpsc::Sender<()>,
}

impl ClusterLink {
    /// Starts the rebuild task (needs a tokio runtime) with a first
    /// connection that connects on first use. Fails only on node URLs the
    /// redis crate rejects.
    pub(crate) fn open(
        nodes: &[String],
        password: Option<&Password>,
        tls: Option<&TlsPem>,
        timeout: Duration,
    ) -> RedisResult<ClusterLink> {
        let mut builder = ClusterClient::builder(
            nodes
                .iter()
                .map(|node| node.as_str().into_connection_info())
                .collect::<RedisResult<Vec<_>>>()?,
        )
        .connection_timeout(timeout)
        .response_timeout(timeout)
        // The crate retries a failed command itself (after re-reading the
        // slots where it sees a reason); our deadline bounds it all.
        .retries(3)
        .min_retry_wait(20)
        .max_retry_wait(200);
        if let Some(Password(password)) = password {
            builder = builder.password(password);
        }
        // The TLS mode comes from the nodes' scheme (`rediss://`: verified TLS).
        if let Some(tls) = tls {
            builder = builder.certs(tls.certificates());
        }
        let client = builder.build()?;
        // A config replaces the builder's timeouts: it must carry them too.
        let config = ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let first = client.get_pending_async_connection_with_config(config.clone());
        let (publish, current) = watch::channel(first);
        let (rebuild, requests) = mpsc::channel(1);
        let rebuilder = Rebuilder {
            client,
            config,
            timeout,
            publish,
            outage: OutageTracker::default(),
        };
        tokio::spawn(rebuilder.run(requests));
        Ok(ClusterLink { current, rebuild })
    }

    /// The current connection.
    pub(crate) fn connection(&self) -> ClusterConnection {
        self.current.borrow().clone()
    }

    /// Asks for a fresh connection (coalesced with any request already
    /// waiting).
    pub(crate) fn rebuild(&self) {
        let _ = self.rebuild.try_send(());
    }
}

/// The rebuild task's state.
struct Rebuilder {
    client: ClusterClient,
    config: ClusterConfig,
    timeout: Duration,
    publish: watch::Sender<ClusterConnection>,
    outage: OutageTracker,
}

impl Rebuilder {
    /// Rebuilds on each request until every link is gone.
    async fn run(mut self, mut requests: mpsc::Receiver<()>) {
        while requests.recv().await.is_some() {
            let started = Instant::now();
            self.rebuild().await;
            tokio::time::sleep_until((started + REBUILD_GAP).into()).await;
        }
    }

    async fn rebuild(&mut self) {
        let limit = self.timeout * REBUILD_TIMEOUTS;
        let connecting = self
            .client
            .get_async_connection_with_config(self.config.clone());
        match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(conn)) => {
                if self.outage.record_success() {
                    log::info!("cluster: the nodes answer again; slot map read afresh");
                }
                log::debug!("cluster: new connection, slot map read afresh");
                self.publish.send_replace(conn);
            }
            Ok(Err(err)) => self.failed(&err.to_string()),
            Err(_) => self.failed(&format!("no slot map within {} ms", limit.as_millis())),
        }
    }

    fn failed(&mut self, why: &str) {
        if self.outage.record_failure(1) {
            log::error!("cluster: cannot read the slot map afresh ({why}); keeping the connection");
        }
    }
}
