//! `health`: `grpc.health.v1.Health/Check` for each service (by default `""`, the whole
//! server, and `message.StatusService`), like grpc-health-probe. Exit 1 unless every one is
//! SERVING.

use std::collections::BTreeMap;

use serde::Serialize;
use status_server::contract::HEALTH_SERVICES;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::failure::Failure;
use crate::output;
use crate::target::Target;

#[derive(Serialize)]
struct HealthOut {
    /// Every service checked is SERVING.
    serving: bool,
    /// Service name (`""` = the whole server) -> `SERVING`, `NOT_SERVING`, ...
    services: BTreeMap<String, &'static str>,
}

/// How a service name reads in the table.
fn display_name(service: &str) -> &str {
    if service.is_empty() {
        "\"\" (server)"
    } else {
        service
    }
}

pub async fn run(target: &Target, json: bool, services: &[String]) -> Result<(), Failure> {
    let services: Vec<String> = if services.is_empty() {
        // Every service the server reports.
        HEALTH_SERVICES.iter().map(|s| (*s).to_string()).collect()
    } else {
        services.to_vec()
    };
    let mut client = crate::client!(target, HealthClient, target.connect().await?);
    let mut statuses = Vec::with_capacity(services.len());
    for service in &services {
        let rsp = client
            .check(HealthCheckRequest {
                service: service.clone(),
            })
            .await
            .map_err(|status| Failure::grpc(&format!("Health/Check {service:?}"), &status))?
            .into_inner();
        let status = ServingStatus::try_from(rsp.status).unwrap_or(ServingStatus::Unknown);
        statuses.push((service.clone(), status));
    }
    let not_serving: Vec<String> = statuses
        .iter()
        .filter(|(_, status)| *status != ServingStatus::Serving)
        .map(|(service, status)| format!("{service:?} is {}", status.as_str_name()))
        .collect();
    if json {
        output::json(&HealthOut {
            serving: not_serving.is_empty(),
            services: statuses
                .iter()
                .map(|(service, status)| (service.clone(), status.as_str_name()))
                .collect(),
        });
    } else {
        let rows: Vec<Vec<String>> = statuses
            .iter()
            .map(|(service, status)| {
                vec![
                    display_name(service).to_string(),
                    status.as_str_name().to_string(),
                ]
            })
            .collect();
        output::emit(&output::table(&["SERVICE", "STATUS"], &rows));
    }
    if not_serving.is_empty() {
        Ok(())
    } else {
        Err(Failure::Refused(format!(
            "not serving: {}",
            not_serving.join(", ")
        )))
    }
}
