//! Starting, reconfiguring and stopping the actors, in the order that keeps
//! every message answered.
//!
//! The `TokenActor` starts first (the registry sends it token writes), then
//! the `ServerRegistry`, then the `LoadPoller` (which feeds the registry).
//! They stop in the reverse order: nothing feeds the registry once the
//! poller is gone, and nothing asks for tokens once the registry is. A
//! reload re-reads the config file and hands each actor its part; the
//! listening addresses need a restart (see [`crate::reload`]). The Redis TLS files are read
//! again on each reload; what they hold is part of the link's settings, so a file replaced in
//! place opens a new connection too.

use std::path::Path;
use std::sync::Mutex;

use actix::{Actor, Addr};
use status_actors::Shutdown;
use status_actors::load_poller::{self, LoadPoller, PollSettings, Refresh};
use status_actors::redis_link::{LinkSettings, RedisLink};
use status_actors::server_registry::{ServerRegistry, UpdateServers};
use status_actors::token_actor::{self, TokenActor, TokenLinks, TokenSettings};

use crate::config::{READ_DEADLINE, Settings};
use crate::redis_tls::read_files_off_thread;
use crate::reload::{ReloadOutcome, needs_new_connection, plan_reload};
use crate::server::StartError;

/// Addresses of the running actors.
pub struct Actors {
    pub poller: Addr<LoadPoller>,
    pub registry: Addr<ServerRegistry>,
    pub tokens: Addr<TokenActor>,
    /// What the running Redis link was opened with (the TLS files' contents included), to
    /// tell whether a reload needs a new one. Only reloads touch it, one at a time.
    link: Mutex<LinkSettings>,
}

fn token_settings(settings: &Settings) -> TokenSettings {
    TokenSettings {
        prefix: settings.redis.token_prefix.clone(),
        ttl_secs: settings.redis.token_ttl_secs,
        command_timeout: settings.redis.command_timeout,
        min_replicas_ack: settings.redis.min_replicas_ack,
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

/// Reads the Redis TLS files of `settings` and opens a link with them.
fn connect_redis(settings: &Settings) -> Result<(TokenLinks, LinkSettings), StartError> {
    let link = settings.redis.link().map_err(StartError::RedisTls)?;
    let links = open_links(&link, settings).map_err(StartError::Redis)?;
    Ok((links, link))
}

/// The token store's links on `link`: token writes get one of their own when a `WAIT`
/// follows them (it would hold up the Logins behind it); the poller uses `all`.
fn open_links(link: &LinkSettings, settings: &Settings) -> redis::RedisResult<TokenLinks> {
    let all = RedisLink::open(link)?;
    let writes = if settings.redis.min_replicas_ack > 0 {
        Some(RedisLink::open(link)?)
    } else {
        None
    };
    Ok(TokenLinks { all, writes })
}

impl Actors {
    /// Starts the actors; must run inside the actix System (actors start on
    /// its thread). The Redis connection opens lazily, so Redis may be down.
    pub fn start(settings: &Settings) -> Result<Actors, StartError> {
        let (links, link) = connect_redis(settings)?;
        let conn = links.all.clone();
        let tokens = TokenActor::new(links, token_settings(settings)).start();
        let probing = settings.balancer.probe_interval.is_some();
        let registry = ServerRegistry::new(
            settings.chat_servers.clone(),
            tokens.clone(),
            probing,
            settings.balancer.strategy,
        )
        .start();
        let poller = LoadPoller::new(conn, registry.clone(), poll_settings(settings)).start();
        Ok(Actors {
            poller,
            registry,
            tokens,
            link: Mutex::new(link),
        })
    }

    /// Polls and probes once, right now, and restarts the periodic chain;
    /// each bounded by its timeout.
    pub async fn refresh(&self) {
        // An error means the poller stopped: only during shutdown.
        let _ = self.poller.send(Refresh).await;
    }

    /// Applies reloaded settings. The registry learns the new map before the
    /// poller reads loads for it; requests in flight finish as they started.
    async fn reconfigure(&self, settings: &Settings, links: Option<TokenLinks>) {
        let conn = links.as_ref().map(|links| links.all.clone());
        // Errors mean an actor stopped: only during shutdown, nothing to apply.
        let _ = self
            .tokens
            .send(token_actor::Reconfigure {
                settings: token_settings(settings),
                conn: links,
            })
            .await;
        let _ = self
            .registry
            .send(UpdateServers {
                servers: settings.chat_servers.clone(),
                probing: settings.balancer.probe_interval.is_some(),
                strategy: settings.balancer.strategy,
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

    /// Re-reads `path` and applies what can be applied live to `running`;
    /// a bad file keeps the running config. The log says why in full; the outcome, which
    /// an Admin caller reads, says where without quoting the file (docs/contract.md §6).
    pub async fn reload(&self, path: &Path, running: &mut Settings) -> ReloadOutcome {
        let not_applied = |why: String, answered: String| {
            log::error!("reload failed, keeping the running config: {why}");
            ReloadOutcome {
                applied: false,
                message: format!("reload failed, keeping the running config: {answered}"),
                restart_needed: Vec::new(),
            }
        };
        let loaded = match Settings::load_off_thread(path.to_path_buf()).await {
            Ok(loaded) => loaded,
            Err(err) => return not_applied(err.to_string(), err.without_contents()),
        };
        let (loaded, restart_needed) = plan_reload(running, loaded);
        for key in &restart_needed {
            log::warn!("reload: {key} changed; restart to apply it, keeping the running value");
        }
        let tls = read_files_off_thread(loaded.redis.tls.clone(), READ_DEADLINE).await;
        let link = match tls {
            Ok(tls) => loaded.redis.link_with(tls),
            Err(err) => return not_applied(err.to_string(), err.to_string()),
        };
        // Writes get a connection of their own exactly when a WAIT follows them.
        let waits_changed =
            (running.redis.min_replicas_ack > 0) != (loaded.redis.min_replicas_ack > 0);
        let conn = if waits_changed || needs_new_connection(&self.running_link(), &link) {
            match open_links(&link, &loaded) {
                Ok(conn) => {
                    *self.link.lock().unwrap_or_else(|e| e.into_inner()) = link;
                    Some(conn)
                }
                Err(err) => {
                    return not_applied(
                        format!("redis: {err}"),
                        "the Redis settings do not open a connection (the server's log says why)"
                            .to_string(),
                    );
                }
            }
        } else {
            None
        };
        self.reconfigure(&loaded, conn).await;
        *running = loaded;
        let message = format!("config reloaded from {}", path.display());
        log::info!("{message}");
        ReloadOutcome {
            applied: true,
            message,
            restart_needed,
        }
    }

    fn running_link(&self) -> LinkSettings {
        // Poisoned only if a reload panicked while swapping it; the value is whole either way.
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the actors in dependency order, each once its mailbox is done.
    pub async fn stop(self) {
        // An error means the actor already stopped, which is what we want.
        let _ = self.poller.send(Shutdown).await;
        let _ = self.registry.send(Shutdown).await;
        let _ = self.tokens.send(Shutdown).await;
    }
}
