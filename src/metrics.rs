//! Prometheus metrics: what the balancer is doing and why.
//!
//! Request counters and latency histograms are recorded on the hot path with
//! handles resolved once at start-up (an atomic add and a histogram bucket
//! per call, no label lookup). Everything about the chat servers and Redis
//! is read from the actors at scrape time, so the actors carry no metrics
//! code and a scrape always shows their current state.

use std::time::{Duration, Instant, SystemTime};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use status_actors::balance::LoadField;
use status_actors::server_registry::RegistrySnapshot;
use status_actors::token_actor::TokenStats;

/// Latency buckets (seconds): 100 us to 2.5 s, around the command timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Which port carried a call, as the `protocol` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    /// HTTP/JSON (docs/contract.md §9).
    Http,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }
}

/// How an RPC ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Business error 1011.
    UidInvalid,
    /// Business error 1010.
    TokenInvalid,
    /// gRPC UNAVAILABLE: no server alive, Redis down, shutting down.
    Unavailable,
    /// gRPC RESOURCE_EXHAUSTED: every alive server full or draining.
    ResourceExhausted,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::UidInvalid,
        Outcome::TokenInvalid,
        Outcome::Unavailable,
        Outcome::ResourceExhausted,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UidInvalid => "uid_invalid_1011",
            Outcome::TokenInvalid => "token_invalid_1010",
            Outcome::Unavailable => "unavailable",
            Outcome::ResourceExhausted => "resource_exhausted",
        }
    }
}

/// Counters and histogram of one RPC, resolved once.
pub struct RpcMetrics {
    outcomes: [IntCounter; Outcome::ALL.len()],
    latency: Histogram,
}

impl RpcMetrics {
    /// Records one finished call that started at `started`.
    pub fn observe(&self, outcome: Outcome, started: Instant) {
        // `ALL` lists the variants in declaration order.
        self.outcomes[outcome as usize].inc();
        self.latency.observe(started.elapsed().as_secs_f64());
    }
}

/// The metrics of both calls on one protocol.
pub struct CallMetrics {
    pub get_chat_server: RpcMetrics,
    pub login: RpcMetrics,
}

/// The metrics of both batch calls (`statusbatch.v1.Batch`, gRPC only): one count per
/// batch, not per item.
pub struct BatchMetrics {
    pub get_chat_servers: RpcMetrics,
    pub logins: RpcMetrics,
}

/// Every metric of the process, in its own registry.
pub struct Metrics {
    registry: Registry,
    grpc: CallMetrics,
    http: CallMetrics,
    /// The batch calls, on gRPC.
    pub batch: BatchMetrics,
    /// Requests answered RESOURCE_EXHAUSTED by the in-flight limit.
    pub shed: IntCounter,
    /// GetChatServer calls refused: every alive server full or draining.
    pub placements_refused: IntCounter,
    polled_count: IntGaugeVec,
    assigned_since_poll: IntGaugeVec,
    in_flight: IntGaugeVec,
    alive: IntGaugeVec,
    reachable: IntGaugeVec,
    draining: IntGaugeVec,
    capacity: IntGaugeVec,
    redis_up: IntGauge,
    load_hash_present: IntGauge,
    poll_age: Gauge,
    redis_errors: IntCounterVec,
    redis_recoveries: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "status_requests_total",
                "Calls answered, by protocol, RPC and outcome",
            ),
            &["protocol", "rpc", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "status_request_duration_seconds",
                "Time from request to reply, by protocol and RPC",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["protocol", "rpc"],
        )?;
        let rpc = |protocol: Protocol, name: &str| RpcMetrics {
            outcomes: Outcome::ALL
                .map(|o| requests.with_label_values(&[protocol.label(), name, o.label()])),
            latency: latency.with_label_values(&[protocol.label(), name]),
        };
        let calls = |protocol| CallMetrics {
            get_chat_server: rpc(protocol, "GetChatServer"),
            login: rpc(protocol, "Login"),
        };
        let per_server =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["server"]);
        let metrics = Metrics {
            grpc: calls(Protocol::Grpc),
            http: calls(Protocol::Http),
            batch: BatchMetrics {
                get_chat_servers: rpc(Protocol::Grpc, "GetChatServers"),
                logins: rpc(Protocol::Grpc, "Logins"),
            },
            shed: IntCounter::new(
                "status_requests_shed_total",
                "Requests answered RESOURCE_EXHAUSTED because too many were in flight",
            )?,
            placements_refused: IntCounter::new(
                "status_placements_refused_full_total",
                "GetChatServer calls answered RESOURCE_EXHAUSTED because every alive chat server \
                 was full (max_connections) or draining",
            )?,
            polled_count: per_server(
                "status_chat_server_polled_count",
                "Connection count the last successful poll read (absent when not a count)",
            )?,
            assigned_since_poll: per_server(
                "status_chat_server_assigned_since_poll",
                "Tokens this instance stored for the server since the last poll",
            )?,
            in_flight: per_server(
                "status_chat_server_in_flight",
                "Placements on the server whose token write has not finished",
            )?,
            alive: per_server(
                "status_chat_server_alive",
                "1 when the server can be chosen (valid count, and reachable when probing)",
            )?,
            reachable: per_server(
                "status_chat_server_reachable",
                "1 when the last TCP probe connected (always 1 with probing off)",
            )?,
            draining: per_server(
                "status_chat_server_draining",
                "1 when no new users are placed on the server (its config or Admin drains it)",
            )?,
            capacity: per_server(
                "status_chat_server_capacity",
                "The server's max_connections (0: unlimited)",
            )?,
            redis_up: IntGauge::new(
                "status_redis_up",
                "1 when the last poll of the load hash succeeded",
            )?,
            load_hash_present: IntGauge::new(
                "status_load_hash_present",
                "0 when the last successful poll found no load hash (login_count_key) at all",
            )?,
            poll_age: Gauge::new(
                "status_load_poll_age_seconds",
                "Seconds since the last successful poll of the load hash (-1: never)",
            )?,
            redis_errors: IntCounterVec::new(
                Opts::new(
                    "status_redis_errors_total",
                    "Failed or timed-out Redis commands, by user",
                ),
                &["user"],
            )?,
            redis_recoveries: IntCounterVec::new(
                Opts::new(
                    "status_redis_recoveries_total",
                    "Runs of failed Redis commands that ended (reconnections), by user",
                ),
                &["user"],
            )?,
            registry,
        };
        let build_info = IntGaugeVec::new(
            Opts::new("status_build_info", "Version of the running status-server"),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let registry = &metrics.registry;
        registry.register(Box::new(requests))?;
        registry.register(Box::new(latency))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(metrics.shed.clone()))?;
        registry.register(Box::new(metrics.placements_refused.clone()))?;
        for gauge in [
            &metrics.polled_count,
            &metrics.assigned_since_poll,
            &metrics.in_flight,
            &metrics.alive,
            &metrics.reachable,
            &metrics.draining,
            &metrics.capacity,
        ] {
            registry.register(Box::new(gauge.clone()))?;
        }
        registry.register(Box::new(metrics.redis_up.clone()))?;
        registry.register(Box::new(metrics.load_hash_present.clone()))?;
        registry.register(Box::new(metrics.poll_age.clone()))?;
        registry.register(Box::new(metrics.redis_errors.clone()))?;
        registry.register(Box::new(metrics.redis_recoveries.clone()))?;
        Ok(metrics)
    }

    /// The metrics of the calls `protocol` carries.
    pub fn calls(&self, protocol: Protocol) -> &CallMetrics {
        match protocol {
            Protocol::Grpc => &self.grpc,
            Protocol::Http => &self.http,
        }
    }

    /// The Prometheus text exposition, with the actors' state as given.
    pub fn render(&self, registry: &RegistrySnapshot, tokens: TokenStats) -> String {
        self.update_from(registry, tokens);
        let mut text = Vec::new();
        // Encoding into a Vec cannot fail on I/O; an error would be a
        // malformed metric of ours, which tests would catch.
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            log::error!("encoding metrics: {err}");
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    fn update_from(&self, snapshot: &RegistrySnapshot, tokens: TokenStats) {
        // Reset first: servers removed by a reload must disappear.
        for gauge in [
            &self.polled_count,
            &self.assigned_since_poll,
            &self.in_flight,
            &self.alive,
            &self.reachable,
            &self.draining,
            &self.capacity,
        ] {
            gauge.reset();
        }
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for server in &snapshot.servers {
            let name = [server.server.name.as_str()];
            if let Some(LoadField::Count(count)) = server.field {
                self.polled_count.with_label_values(&name).set(clamp(count));
            }
            self.assigned_since_poll
                .with_label_values(&name)
                .set(clamp(server.load.assigned_since_poll));
            self.in_flight
                .with_label_values(&name)
                .set(clamp(server.load.in_flight));
            self.alive
                .with_label_values(&name)
                .set(i64::from(server.alive));
            self.reachable
                .with_label_values(&name)
                .set(i64::from(server.load.reachable));
            self.draining
                .with_label_values(&name)
                .set(i64::from(server.drain.any()));
            self.capacity
                .with_label_values(&name)
                .set(clamp(server.server.policy.max_connections));
        }
        self.redis_up.set(i64::from(snapshot.redis_ok));
        self.load_hash_present
            .set(i64::from(snapshot.load_hash_present));
        self.poll_age.set(snapshot.last_poll.map_or(-1.0, |at| {
            SystemTime::now()
                .duration_since(at)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64()
        }));
        set_counter(
            &self.redis_errors.with_label_values(&["poll"]),
            snapshot.poll_failures,
        );
        set_counter(
            &self.redis_errors.with_label_values(&["token"]),
            tokens.command_errors,
        );
        set_counter(
            &self.redis_recoveries.with_label_values(&["poll"]),
            snapshot.poll_recoveries,
        );
        set_counter(
            &self.redis_recoveries.with_label_values(&["token"]),
            tokens.recoveries,
        );
    }
}

/// Raises a counter to a total the actors keep (they only ever grow).
fn set_counter(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> RegistrySnapshot {
        RegistrySnapshot {
            servers: Vec::new(),
            strategy: status_actors::strategy::StrategyKind::default(),
            probing: false,
            redis_ok: true,
            load_hash_present: false,
            last_poll: Some(SystemTime::now()),
            poll_failures: 2,
            poll_recoveries: 1,
        }
    }

    #[test]
    fn records_outcomes_and_renders_prometheus_text() {
        let metrics = Metrics::new().expect("metric definitions are valid");
        let started = Instant::now();
        let grpc = metrics.calls(Protocol::Grpc);
        grpc.get_chat_server.observe(Outcome::Ok, started);
        grpc.get_chat_server.observe(Outcome::Ok, started);
        grpc.login.observe(Outcome::TokenInvalid, started);
        metrics
            .calls(Protocol::Http)
            .get_chat_server
            .observe(Outcome::Ok, started);
        metrics
            .batch
            .get_chat_servers
            .observe(Outcome::Unavailable, started);
        metrics.batch.logins.observe(Outcome::Ok, started);
        let text = metrics.render(
            &snapshot(),
            TokenStats {
                command_errors: 3,
                recoveries: 1,
                in_outage: false,
            },
        );
        assert!(
            text.contains(
                "status_requests_total{outcome=\"ok\",protocol=\"grpc\",rpc=\"GetChatServer\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "status_requests_total{outcome=\"ok\",protocol=\"http\",rpc=\"GetChatServer\"} 1"
        ));
        assert!(text.contains(
            "status_requests_total{outcome=\"token_invalid_1010\",protocol=\"grpc\",rpc=\"Login\"} 1"
        ));
        assert!(text.contains(
            "status_requests_total{outcome=\"unavailable\",protocol=\"grpc\",rpc=\"GetChatServers\"} 1"
        ));
        assert!(
            text.contains(
                "status_requests_total{outcome=\"ok\",protocol=\"grpc\",rpc=\"Logins\"} 1"
            )
        );
        assert!(!text.contains("protocol=\"http\",rpc=\"Logins\""), "{text}");
        assert!(text.contains("status_redis_errors_total{user=\"token\"} 3"));
        assert!(text.contains("status_redis_errors_total{user=\"poll\"} 2"));
        assert!(text.contains("status_load_hash_present 0"), "{text}");
        assert!(text.contains("status_build_info{version="));
        assert!(text.contains(
            "status_request_duration_seconds_bucket{protocol=\"grpc\",rpc=\"Login\",le=\"0.0001\"}"
        ));
    }

    #[test]
    fn counters_follow_actor_totals_without_double_counting() {
        let metrics = Metrics::new().expect("metric definitions are valid");
        let stats = TokenStats {
            command_errors: 5,
            recoveries: 0,
            in_outage: false,
        };
        metrics.render(&snapshot(), stats);
        let text = metrics.render(&snapshot(), stats);
        assert!(
            text.contains("status_redis_errors_total{user=\"token\"} 5"),
            "{text}"
        );
    }

    #[test]
    fn per_server_drain_and_capacity_and_refusals_are_rendered() {
        use status_actors::balance::{Availability, ServerLoad};
        use status_actors::server_registry::{Drain, ServerSnapshot};
        use status_actors::{ChatServer, ServerPolicy};

        let server = |name: &str, max_connections, by_admin| ServerSnapshot {
            server: std::sync::Arc::new(ChatServer {
                name: name.into(),
                host: "h".into(),
                port: 1,
                policy: ServerPolicy {
                    max_connections,
                    ..ServerPolicy::default()
                },
            }),
            load: ServerLoad::default(),
            field: None,
            alive: false,
            last_probe: None,
            drain: Drain {
                by_config: false,
                by_admin,
            },
            availability: Availability::NotAlive,
        };
        let mut registry = snapshot();
        registry.servers = vec![server("a", 10, true), server("b", 0, false)];
        let metrics = Metrics::new().expect("metric definitions are valid");
        metrics.placements_refused.inc();
        metrics
            .calls(Protocol::Grpc)
            .get_chat_server
            .observe(Outcome::ResourceExhausted, Instant::now());
        let text = metrics.render(&registry, TokenStats::default());
        for line in [
            "status_chat_server_draining{server=\"a\"} 1",
            "status_chat_server_draining{server=\"b\"} 0",
            "status_chat_server_capacity{server=\"a\"} 10",
            "status_chat_server_capacity{server=\"b\"} 0",
            "status_placements_refused_full_total 1",
            "status_requests_total{outcome=\"resource_exhausted\",protocol=\"grpc\",rpc=\"GetChatServer\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from {text}"
            );
        }
    }
}
