//! Health as operators and load balancers see it.
//!
//! - `/healthz` (HTTP, beside `/metrics`): healthy when Redis answers (the
//!   last poll succeeded and the token store is not in an outage) and at
//!   least one chat server is alive.
//! - `grpc.health.v1.Health` for `""` and `message.StatusService`: SERVING
//!   while Redis answers, NOT_SERVING otherwise and while draining. A task
//!   keeps it current from the registry and the token store; at drain it
//!   reports NOT_SERVING and ends every Watch stream, so watchers cannot
//!   hold the shutdown open.
//!
//! "Redis answers" is what calls see: a Redis that answers the poll's reads
//! but refuses writes (out of memory, a read-only replica) fails every
//! GetChatServer, so the token store's outage counts as much as the poll.
//! While it lasts the health task has the token store try a write each
//! period ([`ProbeWrites`]), so the outage ends when Redis takes writes
//! again even if no call arrives.

use std::time::Duration;

use actix::Addr;
use status_actors::server_registry::{RegistrySnapshot, ServerRegistry, Snapshot};
use status_actors::token_actor::{GetTokenStats, ProbeWrites, TokenActor, TokenStats};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::contract::HEALTH_SERVICES;
use crate::drain::DrainSignal;

/// What health is decided from: the registry's view and the token store's.
pub struct HealthInputs {
    pub snapshot: RegistrySnapshot,
    pub tokens: TokenStats,
}

impl HealthInputs {
    /// Asks both actors; `None` when one is gone (shutting down).
    pub async fn ask(registry: &Addr<ServerRegistry>, tokens: &Addr<TokenActor>) -> Option<Self> {
        let snapshot = registry.send(Snapshot).await.ok()?;
        let tokens = tokens.send(GetTokenStats).await.ok()?;
        Some(HealthInputs { snapshot, tokens })
    }
}

/// The `/healthz` verdict: `Ok(summary)` or `Err(reason)`, one line each.
pub fn healthz(inputs: &HealthInputs) -> Result<String, String> {
    let snapshot = &inputs.snapshot;
    let (alive, configured) = (snapshot.alive_count(), snapshot.servers.len());
    if !snapshot.redis_ok {
        Err("redis: the last poll of the load hash failed".to_string())
    } else if inputs.tokens.in_outage {
        Err("redis: the token store's last commands failed".to_string())
    } else if alive == 0 {
        Err(format!("no chat server is alive (0 of {configured})"))
    } else {
        Ok(format!("ok: {alive} of {configured} chat servers alive"))
    }
}

/// The gRPC serving status: it follows Redis only (the poll and the token
/// store), since without a chat server the answers (UNAVAILABLE) are still
/// the right ones.
pub fn grpc_status(inputs: &HealthInputs) -> ServingStatus {
    if inputs.snapshot.redis_ok && !inputs.tokens.in_outage {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Sets every reported service to `status`.
pub async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Keeps the gRPC health current every `period` until draining starts, then
/// reports NOT_SERVING and ends the Watch streams. `current` is what the
/// reporter says now; only changes are sent, so watchers see no repeats.
pub async fn update_grpc_health(
    mut reporter: HealthReporter,
    current: ServingStatus,
    registry: Addr<ServerRegistry>,
    tokens: Addr<TokenActor>,
    period: Duration,
    drain: DrainSignal,
) {
    let drain_started = drain.started();
    tokio::pin!(drain_started);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Some(current);
    loop {
        tokio::select! {
            () = &mut drain_started => break,
            _ = ticks.tick() => {
                let Some(inputs) = HealthInputs::ask(&registry, &tokens).await else { break };
                if inputs.tokens.in_outage {
                    tokens.do_send(ProbeWrites);
                }
                let status = grpc_status(&inputs);
                if last != Some(status) {
                    // Log once it is in effect: tests and operators read the
                    // log as "Check answers this now".
                    set_all(&reporter, status).await;
                    log::info!("gRPC health: {status:?}");
                    last = Some(status);
                }
            }
        }
    }
    set_all(&reporter, ServingStatus::NotServing).await;
    for service in HEALTH_SERVICES {
        reporter.clear_service_status(service).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use status_actors::balance::{Availability, ServerLoad};
    use status_actors::server_registry::Drain;
    use status_actors::server_registry::ServerSnapshot;
    use status_actors::strategy::StrategyKind;
    use status_actors::{ChatServer, ServerPolicy};
    use std::sync::Arc;

    fn inputs(redis_ok: bool, alive: &[bool]) -> HealthInputs {
        HealthInputs {
            snapshot: snapshot(redis_ok, alive),
            tokens: TokenStats::default(),
        }
    }

    fn token_outage() -> HealthInputs {
        HealthInputs {
            snapshot: snapshot(true, &[true]),
            tokens: TokenStats {
                in_outage: true,
                ..TokenStats::default()
            },
        }
    }

    fn snapshot(redis_ok: bool, alive: &[bool]) -> RegistrySnapshot {
        let servers = alive
            .iter()
            .enumerate()
            .map(|(i, &alive)| ServerSnapshot {
                server: Arc::new(ChatServer {
                    name: format!("s{i}"),
                    host: "h".into(),
                    port: 1,
                    policy: ServerPolicy::default(),
                }),
                load: ServerLoad::default(),
                field: None,
                alive,
                last_probe: None,
                drain: Drain::default(),
                availability: Availability::NotAlive,
            })
            .collect();
        RegistrySnapshot {
            servers,
            strategy: StrategyKind::default(),
            probing: false,
            redis_ok,
            load_hash_present: true,
            last_poll: None,
            poll_failures: 0,
            poll_recoveries: 0,
        }
    }

    #[test]
    fn healthy_needs_redis_and_an_alive_server() {
        assert_eq!(
            healthz(&inputs(true, &[false, true])),
            Ok("ok: 1 of 2 chat servers alive".into())
        );
        assert!(healthz(&inputs(true, &[false, false])).is_err_and(|why| why.contains("0 of 2")));
        assert!(healthz(&inputs(false, &[true])).is_err_and(|why| why.contains("redis")));
    }

    #[test]
    fn grpc_health_follows_redis_only() {
        assert_eq!(grpc_status(&inputs(true, &[false])), ServingStatus::Serving);
        assert_eq!(
            grpc_status(&inputs(false, &[true])),
            ServingStatus::NotServing
        );
    }

    #[test]
    fn a_token_store_outage_makes_both_surfaces_unhealthy() {
        assert!(healthz(&token_outage()).is_err_and(|why| why.contains("token store")));
        assert_eq!(grpc_status(&token_outage()), ServingStatus::NotServing);
    }
}
