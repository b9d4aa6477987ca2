//! Server wiring in one place: start the actors, take the first readings,
//! open the ports, serve (reloading the config on SIGHUP or the Admin API's
//! Reload) until a stop signal, drain, stop the actors.
//!
//! The gRPC port carries `message.StatusService` (the deployed contract),
//! `statusadmin.v1.Admin`, `grpc.health.v1.Health` and server reflection,
//! behind the in-flight limit. `metrics_listen`, when set, serves `/metrics`
//! and `/healthz` over HTTP.
//!
//! The order is the contract's (CONTRACT §3 "Process"): the port opens only
//! after the first poll and probes (each bounded by its timeout), and on
//! SIGTERM/SIGINT the listener closes at once, accepted requests finish, then
//! the poller, registry and token actor stop in that order and Redis closes.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use futures_util::TryStreamExt;
use redis::aio::ConnectionManager;
use status_actors::Shutdown;
use status_actors::load_poller::{self, LoadPoller, PollSettings, Refresh};
use status_actors::redis_link;
use status_actors::server_registry::{ServerRegistry, Snapshot, UpdateServers};
use status_actors::token_actor::{self, TokenActor, TokenSettings};
use tokio::sync::mpsc;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::admin_proto::admin_server::AdminServer;
use crate::admin_service::{AdminService, ReloadRequest};
use crate::config::Settings;
use crate::drain::drain_channel;
use crate::health;
use crate::http_endpoints::{self, Endpoints};
use crate::in_flight_limit::InFlightLimitLayer;
use crate::metrics::Metrics;
use crate::proto::status_service_server::StatusServiceServer;
use crate::redact::redact_url;
use crate::reload::{ReloadOutcome, needs_new_connection, plan_reload};
use crate::signals::{SignalEvent, Signals};
use crate::silent_connections::SilentUntilDrain;
use crate::status_service::StatusService;

/// Largest request accepted; real requests are a few dozen bytes.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Requests in flight beyond which new ones are shed with RESOURCE_EXHAUSTED.
/// Far above what 2 cores serve well (about 512 in flight) and far below
/// what would strain memory (a request in flight costs a few KiB).
pub const MAX_IN_FLIGHT: usize = 8192;

/// How a run ended, when it did not fail to start.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every accepted request finished within the grace period.
    Drained,
    /// Draining outlasted `shutdown_grace_ms`; the rest was cut off.
    GraceExceeded,
    /// A second stop signal arrived while draining.
    Forced,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Signals(std::io::Error),
    Redis(redis::RedisError),
    Bind(SocketAddr, std::io::Error),
    Metrics(prometheus::Error),
    Reflection(tonic_reflection::server::Error),
    Serve(tonic::transport::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Signals(err) => write!(f, "cannot install signal handlers: {err}"),
            StartError::Redis(err) => write!(f, "cannot set up the Redis client: {err}"),
            StartError::Bind(addr, err) => write!(f, "cannot listen on {addr}: {err}"),
            StartError::Metrics(err) => write!(f, "cannot set up metrics: {err}"),
            StartError::Reflection(err) => write!(f, "cannot set up gRPC reflection: {err}"),
            StartError::Serve(err) => write!(f, "gRPC server failed: {err}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Addresses of the actors, in the order they stop.
struct Actors {
    poller: Addr<LoadPoller>,
    registry: Addr<ServerRegistry>,
    tokens: Addr<TokenActor>,
}

fn token_settings(settings: &Settings) -> TokenSettings {
    TokenSettings {
        prefix: settings.redis.token_prefix.clone(),
        ttl_secs: settings.redis.token_ttl_secs,
        command_timeout: settings.redis.command_timeout,
    }
}

fn poll_settings(settings: &Settings) -> PollSettings {
    PollSettings {
        servers: settings.chat_servers.clone(),
        login_count_key: settings.redis.login_count_key.clone(),
        poll_interval: settings.balancer.poll_interval,
        probe_interval: settings.balancer.probe_interval,
        command_timeout: settings.redis.command_timeout,
    }
}

fn connect_redis(settings: &Settings) -> Result<ConnectionManager, redis::RedisError> {
    redis_link::connect(&settings.redis.url, settings.redis.command_timeout)
}

impl Actors {
    /// Must run inside the actix System (actors start on its thread).
    fn start(settings: &Settings) -> Result<Actors, StartError> {
        let conn = connect_redis(settings).map_err(StartError::Redis)?;
        let tokens = TokenActor::new(conn.clone(), token_settings(settings)).start();
        let probing = settings.balancer.probe_interval.is_some();
        let registry =
            ServerRegistry::new(settings.chat_servers.clone(), tokens.clone(), probing).start();
        let poller = LoadPoller::new(conn, registry.clone(), poll_settings(settings)).start();
        Ok(Actors {
            poller,
            registry,
            tokens,
        })
    }

    /// Applies reloaded settings. The registry learns the new map before the
    /// poller reads loads for it; requests in flight finish as they started.
    async fn reconfigure(&self, settings: &Settings, conn: Option<ConnectionManager>) {
        // Errors mean an actor stopped: only during shutdown, nothing to apply.
        let _ = self
            .tokens
            .send(token_actor::Reconfigure {
                settings: token_settings(settings),
                conn: conn.clone(),
            })
            .await;
        let _ = self
            .registry
            .send(UpdateServers {
                servers: settings.chat_servers.clone(),
                probing: settings.balancer.probe_interval.is_some(),
            })
            .await;
        let _ = self
            .poller
            .send(load_poller::Reconfigure {
                settings: poll_settings(settings),
                conn,
            })
            .await;
    }

    /// Stops the actors in dependency order: nothing feeds the registry once
    /// the poller is gone, and nothing asks for tokens once the registry is.
    async fn stop(self) {
        // An error means the actor already stopped, which is what we want.
        let _ = self.poller.send(Shutdown).await;
        let _ = self.registry.send(Shutdown).await;
        let _ = self.tokens.send(Shutdown).await;
    }
}

/// Re-reads `path` and applies what can be applied live; a bad file keeps
/// the running config.
async fn reload(path: &Path, running: &mut Settings, actors: &Actors) -> ReloadOutcome {
    let not_applied = |why: String| {
        log::error!("reload failed, keeping the running config: {why}");
        ReloadOutcome {
            applied: false,
            message: why,
            restart_needed: Vec::new(),
        }
    };
    let loaded = match Settings::load(path) {
        Ok(loaded) => loaded,
        Err(err) => return not_applied(err.to_string()),
    };
    let (loaded, restart_needed) = plan_reload(running, loaded);
    for key in &restart_needed {
        log::warn!("reload: {key} changed; restart to apply it, keeping the running value");
    }
    let conn = if needs_new_connection(running, &loaded) {
        match connect_redis(&loaded) {
            Ok(conn) => Some(conn),
            Err(err) => return not_applied(format!("redis: {err}")),
        }
    } else {
        None
    };
    actors.reconfigure(&loaded, conn).await;
    *running = loaded;
    let message = format!("config reloaded from {}", path.display());
    log::info!("{message}");
    log_summary(running, None);
    ReloadOutcome {
        applied: true,
        message,
        restart_needed,
    }
}

/// Binds `addr`, naming it in the error.
async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| StartError::Bind(addr, err))
}

/// Runs the server until a stop signal; must be awaited inside the actix System.
/// `config_path` is re-read on SIGHUP and on the Admin API's Reload.
pub async fn run(config_path: &Path, mut settings: Settings) -> Result<Exit, StartError> {
    let mut signals = Signals::install().map_err(StartError::Signals)?;
    let actors = Actors::start(&settings)?;

    // First readings before the ports open; each is bounded by its timeout.
    let started = Instant::now();
    let _ = actors.poller.send(Refresh).await;
    log::debug!("first poll and probes took {:?}", started.elapsed());

    let listeners = async {
        let grpc = bind(settings.server.listen).await?;
        let metrics = match settings.server.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok::<_, StartError>((grpc, metrics))
    };
    let (listener, metrics_listener) = match listeners.await {
        Ok(listeners) => listeners,
        Err(err) => {
            actors.stop().await;
            return Err(err);
        }
    };
    let local_addr = listener.local_addr().unwrap_or(settings.server.listen);

    // Metrics are recorded only when someone can read them.
    let metrics = match metrics_listener {
        Some(_) => Some(Arc::new(Metrics::new().map_err(StartError::Metrics)?)),
        None => None,
    };
    let (drain, drain_signal) = drain_channel();
    if let (Some(listener), Some(metrics)) = (metrics_listener, &metrics) {
        let endpoints = Endpoints {
            registry: actors.registry.clone(),
            tokens: actors.tokens.clone(),
            metrics: Arc::clone(metrics),
        };
        let addr = listener.local_addr().ok();
        tokio::spawn(http_endpoints::serve(
            listener,
            endpoints,
            drain_signal.clone(),
        ));
        log::info!(
            "metrics and health on http://{}",
            addr.map_or_else(String::new, |a| a.to_string())
        );
    }
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    {
        // Health is right from the first request on; the task keeps it so.
        let initial = match actors.registry.send(Snapshot).await {
            Ok(snapshot) => health::grpc_status(&snapshot),
            Err(_) => ServingStatus::NotServing,
        };
        health::set_all(&health_reporter, initial).await;
        log::info!("gRPC health: {initial:?}");
        let period = settings.balancer.poll_interval.min(Duration::from_secs(1));
        tokio::spawn(health::update_grpc_health(
            health_reporter,
            initial,
            actors.registry.clone(),
            period,
            drain_signal.clone(),
        ));
    }
    // Both reflection versions: grpcurl and older tools still ask v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(StartError::Reflection)?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(StartError::Reflection)?;
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    log_summary(&settings, Some(local_addr));

    let status_service = StatusServiceServer::new(StatusService::new(
        actors.registry.clone(),
        actors.tokens.clone(),
        metrics.clone(),
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let admin_service = AdminServer::new(AdminService::new(actors.registry.clone(), reload_tx))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let serve = tonic::transport::Server::builder()
        .layer(InFlightLimitLayer::new(
            MAX_IN_FLIGHT,
            metrics.as_ref().map(|m| m.shed.clone()),
        ))
        .add_service(status_service)
        .add_service(admin_service)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .map_ok({
                    let drain_signal = drain_signal.clone();
                    move |stream| SilentUntilDrain::new(stream, drain_signal.clone())
                }),
            drain_signal.started(),
        );
    tokio::pin!(serve);

    let signal = loop {
        tokio::select! {
            served = &mut serve => {
                // The server ended without being asked to: a transport failure.
                actors.stop().await;
                return Err(served.err().map_or_else(
                    || StartError::Bind(local_addr, std::io::Error::other("listener closed")),
                    StartError::Serve,
                ));
            }
            event = signals.next() => match event {
                SignalEvent::Stop(signal) => break signal,
                SignalEvent::Reload => {
                    log::info!("SIGHUP: reloading {}", config_path.display());
                    reload(config_path, &mut settings, &actors).await;
                }
            },
            Some(reply) = reload_rx.recv() => {
                log::info!("Admin API: reloading {}", config_path.display());
                let _ = reply.send(reload(config_path, &mut settings, &actors).await);
            }
        }
    };

    let grace = settings.server.shutdown_grace;
    log::info!(
        "{signal}: closing the listener, draining accepted requests (grace {} ms)",
        grace.as_millis()
    );
    // The listener closes, connections that never spoke end, health turns
    // NOT_SERVING and ends its Watch streams, the metrics listener closes.
    drain.start();
    let drain_started = Instant::now();
    let exit = tokio::select! {
        served = tokio::time::timeout(grace, &mut serve) => match served {
            Ok(Ok(())) => {
                log::info!("drained in {} ms", drain_started.elapsed().as_millis());
                Exit::Drained
            }
            Ok(Err(err)) => {
                log::error!("gRPC server failed while draining: {err}");
                Exit::GraceExceeded
            }
            Err(_) => {
                log::error!(
                    "draining outlasted the {} ms grace period; cutting off the rest",
                    grace.as_millis()
                );
                Exit::GraceExceeded
            }
        },
        // SIGHUP while draining is ignored: nothing is left to reconfigure.
        signal = next_stop(&mut signals) => {
            log::warn!("{signal} again while draining: exiting now");
            Exit::Forced
        }
    };
    actors.stop().await;
    log::info!("stopped");
    Ok(exit)
}

/// The next SIGTERM or SIGINT, skipping SIGHUPs.
async fn next_stop(signals: &mut Signals) -> &'static str {
    loop {
        if let SignalEvent::Stop(signal) = signals.next().await {
            return signal;
        }
    }
}

/// One line with everything an operator checks first; `local_addr` once bound.
fn log_summary(settings: &Settings, local_addr: Option<SocketAddr>) {
    let servers: Vec<String> = settings
        .chat_servers
        .iter()
        .map(|s| format!("{}={}:{}", s.name, s.host, s.port))
        .collect();
    let probe = match settings.balancer.probe_interval {
        Some(interval) => format!("every {} ms", interval.as_millis()),
        None => "off".to_string(),
    };
    let listening = local_addr.map_or_else(String::new, |addr| format!("listening on {addr}; "));
    log::info!(
        "status-server {listening}redis {} (token ttl {} s, timeout {} ms); chat servers [{}]; poll every {} ms, probe {probe}",
        redact_url(&settings.redis.url),
        settings.redis.token_ttl_secs,
        settings.redis.command_timeout.as_millis(),
        servers.join(", "),
        settings.balancer.poll_interval.as_millis(),
    );
}
