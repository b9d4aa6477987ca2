//! The server's life: start the actors and take the first readings, serve
//! the bound ports while answering control events (stop, reload), drain,
//! stop the actors.
//!
//! Everything the outside world decides comes in as arguments: the bound
//! [`Listeners`] and a channel of [`Control`] events. `main` turns SIGTERM,
//! SIGINT and SIGHUP into those events; tests run the same code in-process on
//! port 0 and send them directly.
//!
//! The order is the contract's (docs/contract.md §3 "Process"): the first
//! poll and probes (each bounded by its timeout) run in [`Server::start`],
//! before the caller binds the ports; on a stop the gRPC and HTTP/JSON
//! listeners close at once, accepted requests on both finish, then the poller, registry and token actor
//! stop in that order and Redis closes.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tonic_health::ServingStatus;

use crate::actors::Actors;
use crate::calls::StatusCalls;
use crate::config::{READ_DEADLINE, Settings};
use crate::drain::drain_channel;
use crate::fd_budget::{self, Caps};
use crate::grpc::{self, Backends};
use crate::health::{self, HealthInputs};
use crate::http_api;
use crate::http_endpoints::{self, Endpoints};
use crate::metrics::{Metrics, Protocol};
use crate::reload::ReloadOutcome;
use crate::tls::{TlsAcceptor, TlsError};

/// What the process (or a test) asks of a running server.
#[derive(Debug)]
pub enum Control {
    /// Drain and stop; the text names why (e.g. "SIGTERM") for the log. A
    /// second `Stop` while draining cuts the drain short.
    Stop(&'static str),
    /// Re-read the config file; the outcome goes to the sender, if any.
    Reload(Option<oneshot::Sender<ReloadOutcome>>),
}

/// How a run ended, when it did not fail to start.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every accepted request finished within the grace period.
    Drained,
    /// Draining outlasted `shutdown_grace_ms`; the rest was cut off.
    GraceExceeded,
    /// A second stop arrived while draining.
    Forced,
}

/// Why the server could not start or went on serving.
#[derive(Debug)]
pub enum StartError {
    Redis(redis::RedisError),
    /// A `[redis]` TLS file that does not load.
    RedisTls(crate::redis_tls::RedisTlsError),
    Bind(SocketAddr, std::io::Error),
    Metrics(prometheus::Error),
    Reflection(tonic_reflection::server::Error),
    Serve(tonic::transport::Error),
    Tls(TlsError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Redis(err) => write!(f, "cannot set up the Redis client: {err}"),
            StartError::RedisTls(err) => err.fmt(f),
            StartError::Bind(addr, err) => write!(f, "cannot listen on {addr}: {err}"),
            StartError::Metrics(err) => write!(f, "cannot set up metrics: {err}"),
            StartError::Reflection(err) => write!(f, "cannot set up gRPC reflection: {err}"),
            StartError::Serve(err) => write!(f, "gRPC server failed: {err}"),
            StartError::Tls(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

/// The bound ports: gRPC, the Admin API's gRPC when on, HTTP for `/metrics` and
/// `/healthz` when on, and HTTP/JSON when on.
pub struct Listeners {
    pub grpc: std::net::TcpListener,
    pub admin: Option<std::net::TcpListener>,
    pub metrics: Option<std::net::TcpListener>,
    pub http: Option<std::net::TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `settings` (port 0 picks a free port).
    pub fn bind(settings: &Settings) -> Result<Listeners, StartError> {
        let bind = |addr: SocketAddr| {
            std::net::TcpListener::bind(addr)
                // tokio takes over the socket: it must not block.
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .map_err(|err| StartError::Bind(addr, err))
        };
        let grpc = bind(settings.server.listen)?;
        let admin = settings.server.admin_listen.map(bind).transpose()?;
        let metrics = settings.server.metrics_listen.map(bind).transpose()?;
        let http = settings.server.http_listen.map(bind).transpose()?;
        Ok(Listeners {
            grpc,
            admin,
            metrics,
            http,
        })
    }
}

/// Turns a bound std listener into tokio's (needs the runtime).
fn into_tokio(listener: std::net::TcpListener) -> Result<tokio::net::TcpListener, StartError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    tokio::net::TcpListener::from_std(listener).map_err(|err| StartError::Bind(addr, err))
}

/// A server whose actors run and have their first readings; not serving yet.
pub struct Server {
    config_path: PathBuf,
    settings: Settings,
    actors: Actors,
    /// `Some` when `[server.tls]` is set.
    tls: Option<TlsAcceptor>,
    /// The connection caps as the open-file limit lets them be.
    caps: Caps,
}

impl Server {
    /// Fits the connection caps to the open-file limit ([`fd_budget::fit`]), starts the
    /// actors and runs the first poll and probes, each bounded by
    /// its timeout. Must be awaited inside the actix System. `config_path`
    /// is what a reload re-reads.
    pub async fn start(config_path: PathBuf, settings: Settings) -> Result<Server, StartError> {
        // Before anything connects anywhere: bad certificate files are a config error.
        let tls = settings
            .server
            .tls
            .as_ref()
            .map(TlsAcceptor::load)
            .transpose()
            .map_err(StartError::Tls)?;
        let caps = fd_budget::fit(
            wanted_caps(&settings),
            fd_budget::RESERVED_FDS + settings.chat_servers.len() as u64,
        );
        let actors = Actors::start(&settings)?;
        let started = Instant::now();
        actors.refresh().await;
        log::debug!("first poll and probes took {:?}", started.elapsed());
        Ok(Server {
            config_path,
            settings,
            actors,
            tls,
            caps,
        })
    }

    /// The settings it runs with (to bind the listeners).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stops the actors without serving (when binding failed).
    pub async fn stop(self) {
        self.actors.stop().await;
    }

    /// Serves `listeners` until a [`Control::Stop`] (or until every sender of
    /// `control` is gone, which counts as a stop), then drains and stops.
    pub async fn serve(
        self,
        listeners: Listeners,
        mut control: mpsc::Receiver<Control>,
    ) -> Result<Exit, StartError> {
        let Server {
            config_path,
            mut settings,
            actors,
            tls,
            caps,
        } = self;
        let bound = (|| {
            let grpc = into_tokio(listeners.grpc)?;
            let admin = listeners.admin.map(into_tokio).transpose()?;
            let metrics = listeners.metrics.map(into_tokio).transpose()?;
            let http = listeners.http.map(into_tokio).transpose()?;
            // Metrics are recorded only when someone can read them.
            let recorder = match metrics {
                Some(_) => Some(Arc::new(Metrics::new().map_err(StartError::Metrics)?)),
                None => None,
            };
            Ok((grpc, admin, metrics, http, recorder))
        })();
        let (grpc_listener, admin_listener, metrics_listener, http_listener, metrics) = match bound
        {
            Ok(bound) => bound,
            Err(err) => {
                actors.stop().await;
                return Err(err);
            }
        };
        let local_addr = grpc_listener.local_addr().unwrap_or(settings.server.listen);
        if let Some(addr) = admin_listener.as_ref().and_then(|l| l.local_addr().ok()) {
            log::info!("Admin API on {addr}");
        }

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
        // Joined while draining, like the gRPC port.
        let mut http_api = http_listener.map(|listener| {
            let addr = listener.local_addr().ok();
            let calls = StatusCalls::new(
                actors.registry.clone(),
                actors.tokens.clone(),
                metrics.clone(),
                Protocol::Http,
            );
            log::info!(
                "HTTP/JSON on {}://{}",
                if tls.is_some() { "https" } else { "http" },
                addr.map_or_else(String::new, |a| a.to_string())
            );
            tokio::spawn(http_api::serve(
                listener,
                tls.clone(),
                calls,
                caps.http,
                drain_signal.clone(),
            ))
        });
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        {
            // Health is right from the first request on; the task keeps it so.
            let initial = match HealthInputs::ask(&actors.registry, &actors.tokens).await {
                Some(inputs) => health::grpc_status(&inputs),
                None => ServingStatus::NotServing,
            };
            health::set_all(&health_reporter, initial).await;
            log::info!("gRPC health: {initial:?}");
            let period = settings.balancer.poll_interval.min(Duration::from_secs(1));
            tokio::spawn(health::update_grpc_health(
                health_reporter,
                initial,
                actors.registry.clone(),
                actors.tokens.clone(),
                period,
                drain_signal.clone(),
            ));
        }
        let (reload_tx, mut reload_rx) = mpsc::channel(4);
        let backends = Backends {
            registry: actors.registry.clone(),
            tokens: actors.tokens.clone(),
            metrics,
            reloads: reload_tx,
            health: health_service,
        };
        let serve = match grpc::serve(
            grpc_listener,
            admin_listener,
            tls.clone(),
            backends,
            settings.server.compression,
            caps,
            drain_signal,
        ) {
            Ok(serve) => serve,
            Err(err) => {
                actors.stop().await;
                return Err(StartError::Reflection(err));
            }
        };
        log_summary(&settings, Some(local_addr));
        tokio::pin!(serve);

        let mut reloading: Option<(Reloading<'_>, ReplyTo)> = None;
        let reason = loop {
            tokio::select! {
                served = &mut serve => {
                    // The server ended without being asked to: a transport failure.
                    drop(reloading);
                    actors.stop().await;
                    return Err(served.err().map_or_else(
                        || StartError::Bind(local_addr, std::io::Error::other("listener closed")),
                        StartError::Serve,
                    ));
                }
                // The reload runs beside serving and control events: new connections are
                // accepted and a stop is honoured however long it takes.
                (outcome, reloaded) = async {
                    match &mut reloading {
                        Some((running, _)) => running.await,
                        None => std::future::pending().await,
                    }
                }, if reloading.is_some() => {
                    settings = reloaded;
                    if let Some((_, Some(reply))) = reloading.take() {
                        let _ = reply.send(outcome);
                    }
                }
                event = control.recv() => match event {
                    Some(Control::Stop(reason)) => break reason,
                    None => break "control channel closed",
                    Some(Control::Reload(reply)) if reloading.is_some() => {
                        log::info!("a reload is already running; not starting another");
                        if let Some(reply) = reply {
                            let _ = reply.send(ReloadOutcome {
                                applied: false,
                                message: "a reload is already running".to_string(),
                                restart_needed: Vec::new(),
                            });
                        }
                    }
                    Some(Control::Reload(reply)) => {
                        log::info!("reloading {}", config_path.display());
                        let running = reload(&actors, tls.as_ref(), &config_path, settings.clone());
                        reloading = Some((Box::pin(running), reply));
                    }
                },
                Some(reply) = reload_rx.recv(), if reloading.is_none() => {
                    log::info!("Admin API: reloading {}", config_path.display());
                    let running = reload(&actors, tls.as_ref(), &config_path, settings.clone());
                    reloading = Some((Box::pin(running), Some(reply)));
                }
            }
        };
        // A reload still running is given up: the server stops anyway.
        drop(reloading);

        let grace = settings.server.shutdown_grace;
        log::info!(
            "{reason}: closing the listener, draining accepted requests (grace {} ms)",
            grace.as_millis()
        );
        // The listeners close, connections that never spoke (and idle HTTP/JSON ones) end,
        // health turns NOT_SERVING and ends its Watch streams, the metrics listener closes.
        drain.start();
        let drain_started = Instant::now();
        let drained = async {
            let served = (&mut serve).await;
            if let Some(http_api) = &mut http_api
                && let Err(err) = http_api.await
            {
                log::error!("HTTP/JSON port failed while draining: {err}");
            }
            served
        };
        let exit = tokio::select! {
            served = tokio::time::timeout(grace, drained) => match served {
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
            // A reload while draining is ignored: nothing is left to reconfigure.
            reason = next_stop(&mut control) => {
                log::warn!("{reason} again while draining: exiting now");
                Exit::Forced
            }
        };
        if let Some(http_api) = http_api {
            // Past the grace: cut off the HTTP/JSON requests still running.
            http_api.abort();
        }
        actors.stop().await;
        log::info!("stopped");
        Ok(exit)
    }
}

/// The connection caps `settings` ask for: `server.max_connections` on each gRPC port, the
/// HTTP/JSON port's own; 0 for a port that is off.
fn wanted_caps(settings: &Settings) -> Caps {
    let server = &settings.server;
    let on = |addr: Option<SocketAddr>, cap: usize| addr.map_or(0, |_| cap);
    Caps {
        listen: server.max_connections,
        admin: on(server.admin_listen, grpc::ADMIN_MAX_CONNECTIONS),
        http: on(server.http_listen, http_api::MAX_CONNECTIONS),
    }
}

/// What a reload answers, and the settings that run after it.
type Reloaded = (ReloadOutcome, Settings);

/// A reload running beside the serve loop.
type Reloading<'a> = Pin<Box<dyn Future<Output = Reloaded> + 'a>>;

/// Who waits for a reload's outcome (nobody for a SIGHUP).
type ReplyTo = Option<oneshot::Sender<ReloadOutcome>>;

/// Reloads `running`, re-reads the TLS files for new connections, and logs the summary of
/// what now runs. TLS files that do not load keep the running certificates; the rest of the
/// reload stands, and the outcome says so.
async fn reload(
    actors: &Actors,
    tls: Option<&TlsAcceptor>,
    path: &std::path::Path,
    mut running: Settings,
) -> Reloaded {
    let mut outcome = actors.reload(path, &mut running).await;
    if outcome.applied {
        // `server.tls` on/off is a restart key: `running.server.tls` is set exactly when
        // `tls` is.
        if let (Some(tls), Some(files)) = (tls, &running.server.tls) {
            match tls.reload_off_thread(files, READ_DEADLINE).await {
                Ok(()) => log::info!("TLS files re-read for new connections"),
                Err(err) => {
                    let why =
                        format!("reload failed for TLS, keeping the running certificates: {err}");
                    log::error!("{why}");
                    outcome.message = format!("{}; {why}", outcome.message);
                }
            }
        }
        log_summary(&running, None);
    }
    (outcome, running)
}

/// The next stop while draining, skipping reloads; never, once the control
/// channel is closed (the drain then runs to its end or its grace).
async fn next_stop(control: &mut mpsc::Receiver<Control>) -> &'static str {
    loop {
        match control.recv().await {
            Some(Control::Stop(reason)) => return reason,
            Some(Control::Reload(_)) => {}
            None => std::future::pending().await,
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
        settings.redis.describe(),
        settings.redis.token_ttl_secs,
        settings.redis.command_timeout.as_millis(),
        servers.join(", "),
        settings.balancer.poll_interval.as_millis(),
    );
}
