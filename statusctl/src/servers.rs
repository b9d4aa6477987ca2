//! `servers`: the chat servers as the balancer sees them (`statusadmin.v1.Admin/ListServers`),
//! as a table or, with `--json`, as the reply's fields: loads, liveness, and how the
//! operator steers each one (weight, capacity, drain), under the running strategy.

use serde::Serialize;
use status_server::admin_proto::admin_client::AdminClient;
use status_server::admin_proto::{ChatServerState, ListServersReq};

use crate::failure::Failure;
use crate::output;
use crate::target::Target;

/// The ListServers reply, field for field (snake_case names, numbers as numbers).
#[derive(Serialize)]
struct ServersOut {
    strategy: String,
    probing: bool,
    redis_ok: bool,
    load_hash_present: bool,
    servers: Vec<ServerOut>,
}

#[derive(Serialize)]
struct ServerOut {
    name: String,
    host: String,
    port: u32,
    /// `null` when the last poll found no valid count.
    polled_count: Option<u64>,
    assigned_since_poll: u64,
    in_flight: u64,
    alive: bool,
    reachable: bool,
    load_field: String,
    last_poll_unix_ms: u64,
    last_probe_unix_ms: u64,
    weight: u64,
    /// 0: no limit.
    max_connections: u64,
    draining: bool,
    drain_from_config: bool,
    drain_from_admin: bool,
    /// Alive, not draining and below `max_connections`: it may take a user now.
    choosable: bool,
}

impl From<ChatServerState> for ServerOut {
    fn from(s: ChatServerState) -> Self {
        ServerOut {
            name: s.name,
            host: s.host,
            port: s.port,
            polled_count: s.polled_count,
            assigned_since_poll: s.assigned_since_poll,
            in_flight: s.in_flight,
            alive: s.alive,
            reachable: s.reachable,
            load_field: s.load_field,
            last_poll_unix_ms: s.last_poll_unix_ms,
            last_probe_unix_ms: s.last_probe_unix_ms,
            weight: s.weight,
            max_connections: s.max_connections,
            draining: s.draining,
            drain_from_config: s.drain_from_config,
            drain_from_admin: s.drain_from_admin,
            choosable: s.choosable,
        }
    }
}

/// The DRAINING column: who drains it (`config`, `admin`, `config+admin`), or `no`.
fn drained_by(s: &ServerOut) -> String {
    match (s.drain_from_config, s.drain_from_admin) {
        (true, true) => "config+admin",
        (true, false) => "config",
        (false, true) => "admin",
        (false, false) => "no",
    }
    .to_string()
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

/// The table people see.
fn render(out: &ServersOut, now_ms: u64) -> String {
    let mut text = format!(
        "probing: {}   redis: {}   strategy: {}",
        if out.probing { "on" } else { "off" },
        if out.redis_ok {
            "ok"
        } else {
            "FAILING (last poll failed)"
        },
        out.strategy
    );
    // Shown only when it matters, so the usual header stays short.
    if !out.load_hash_present {
        text.push_str("   load hash: MISSING (with probing, servers keep their last counts)");
    }
    text.push('\n');
    let rows: Vec<Vec<String>> = out
        .servers
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                format!("{}:{}", s.host, s.port),
                s.polled_count.map_or("-".to_string(), |n| n.to_string()),
                s.assigned_since_poll.to_string(),
                s.in_flight.to_string(),
                yes_no(s.alive),
                if out.probing {
                    yes_no(s.reachable)
                } else {
                    "off".to_string()
                },
                s.load_field.clone(),
                output::ago(s.last_poll_unix_ms, now_ms),
                if out.probing {
                    output::ago(s.last_probe_unix_ms, now_ms)
                } else {
                    "-".to_string()
                },
                // New columns go last, so scripts reading the earlier ones by
                // position keep working.
                s.weight.to_string(),
                match s.max_connections {
                    0 => "-".to_string(),
                    max => max.to_string(),
                },
                drained_by(s),
            ]
        })
        .collect();
    text.push_str(&output::table(
        &[
            "NAME",
            "ADDRESS",
            "POLLED",
            "ASSIGNED",
            "IN-FLIGHT",
            "ALIVE",
            "REACHABLE",
            "LOAD-FIELD",
            "LAST-POLL",
            "LAST-PROBE",
            "WEIGHT",
            "MAX-CONN",
            "DRAINING",
        ],
        &rows,
    ));
    text
}

pub async fn run(target: &Target, json: bool) -> Result<(), Failure> {
    let mut client = crate::client!(target, AdminClient, target.connect().await?);
    let rsp = client
        .list_servers(ListServersReq {})
        .await
        .map_err(|status| Failure::grpc("ListServers", &status))?
        .into_inner();
    let out = ServersOut {
        strategy: rsp.strategy,
        probing: rsp.probing,
        redis_ok: rsp.redis_ok,
        load_hash_present: rsp.load_hash_present,
        servers: rsp.servers.into_iter().map(ServerOut::from).collect(),
    };
    if json {
        output::json(&out);
    } else {
        output::emit(&render(&out, output::now_unix_ms()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_missing_counts_and_ages() {
        let now = 1_700_000_010_000;
        let out = ServersOut {
            strategy: "weighted".into(),
            probing: true,
            redis_ok: true,
            load_hash_present: true,
            servers: vec![
                ServerOut::from(ChatServerState {
                    name: "chatserver1".into(),
                    host: "127.0.0.1".into(),
                    port: 8090,
                    polled_count: Some(12),
                    assigned_since_poll: 3,
                    in_flight: 1,
                    alive: true,
                    reachable: true,
                    load_field: "count".into(),
                    last_poll_unix_ms: now - 1200,
                    last_probe_unix_ms: now - 400,
                    weight: 3,
                    max_connections: 500,
                    draining: true,
                    drain_from_config: true,
                    drain_from_admin: true,
                    choosable: false,
                }),
                ServerOut::from(ChatServerState {
                    name: "chatserver2".into(),
                    host: "127.0.0.1".into(),
                    port: 8091,
                    polled_count: None,
                    load_field: "missing".into(),
                    weight: 1,
                    ..Default::default()
                }),
            ],
        };
        let text = render(&out, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "probing: on   redis: ok   strategy: weighted");
        assert!(lines[1].starts_with("NAME "), "{text}");
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            first,
            [
                "chatserver1",
                "127.0.0.1:8090",
                "12",
                "3",
                "1",
                "yes",
                "yes",
                "count",
                "1.2s",
                "ago",
                "0.4s",
                "ago",
                "3",
                "500",
                "config+admin"
            ]
        );
        let second: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(second[2], "-");
        assert_eq!(second[5], "no");
        assert_eq!(&second[7..], ["missing", "never", "never", "1", "-", "no"]);
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["load_hash_present"], true);
        assert_eq!(json["servers"][1]["polled_count"], serde_json::Value::Null);
        assert_eq!(json["servers"][0]["polled_count"], 12);
        assert_eq!(json["strategy"], "weighted");
        assert_eq!(json["servers"][0]["weight"], 3);
        assert_eq!(json["servers"][0]["max_connections"], 500);
        assert_eq!(json["servers"][0]["drain_from_admin"], true);
        assert_eq!(json["servers"][1]["draining"], false);
        assert_eq!(json["servers"][1]["choosable"], false);
    }

    #[test]
    fn the_header_says_when_the_load_hash_is_missing() {
        let out = ServersOut {
            strategy: "least_loaded".into(),
            probing: true,
            redis_ok: true,
            load_hash_present: false,
            servers: Vec::new(),
        };
        let text = render(&out, 0);
        assert_eq!(
            text.lines().next(),
            Some(
                "probing: on   redis: ok   strategy: least_loaded   load hash: MISSING (with probing, servers keep their last counts)"
            )
        );
    }
}
