//! Health as operators and load balancers see it.
//!
//! - `/healthz` (HTTP, beside `/metrics`): healthy when Redis answers (the
//!   last poll succeeded) and at least one chat server is alive.
//! - `grpc.health.v1.Health` for `""` and `message.StatusService`: SERVING
//!   while Redis answers, NOT_SERVING otherwise and while draining. A task
//!   keeps it current from the registry; at drain it reports NOT_SERVING and
//!   ends every Watch stream, so watchers cannot hold the shutdown open.

use std::time::Duration;

use actix::Addr;
use status_actors::server_registry::{RegistrySnapshot, ServerRegistry, Snapshot};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::contract::HEALTH_SERVICES;
use crate::drain::DrainSignal;

/// The `/healthz` verdict: `Ok(summary)` or `Err(reason)`, one line each.
pub fn healthz(snapshot: &RegistrySnapshot) -> Result<String, String> {
    let (alive, configured) = (snapshot.alive_count(), snapshot.servers.len());
    if !snapshot.redis_ok {
        Err("redis: the last poll of the load hash failed".to_string())
    } else if alive == 0 {
        Err(format!("no chat server is alive (0 of {configured})"))
    } else {
        Ok(format!("ok: {alive} of {configured} chat servers alive"))
    }
}

/// The gRPC serving status: it follows Redis only, since without a chat
/// server the answers (UNAVAILABLE) are still the right ones.
pub fn grpc_status(snapshot: &RegistrySnapshot) -> ServingStatus {
    if snapshot.redis_ok {
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
                let Ok(snapshot) = registry.send(Snapshot).await else { break };
                let status = grpc_status(&snapshot);
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
            healthz(&snapshot(true, &[false, true])),
            Ok("ok: 1 of 2 chat servers alive".into())
        );
        assert!(healthz(&snapshot(true, &[false, false])).is_err_and(|why| why.contains("0 of 2")));
        assert!(healthz(&snapshot(false, &[true])).is_err_and(|why| why.contains("redis")));
    }

    #[test]
    fn grpc_health_follows_redis_only() {
        assert_eq!(
            grpc_status(&snapshot(true, &[false])),
            ServingStatus::Serving
        );
        assert_eq!(
            grpc_status(&snapshot(false, &[true])),
            ServingStatus::NotServing
        );
    }
}
