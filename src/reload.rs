//! What a config reload (SIGHUP) changes in a running server.
//!
//! Everything the actors hold is applied live: chat servers (added, removed,
//! moved, their weights, capacities and drains), the balancing strategy, TTL,
//! token prefix, load hash key, intervals, timeouts and the Redis URL (a new
//! connection is opened lazily). What is bound at start-up,
//! the listening addresses (the Admin port's too) and the reply compression, needs a restart: those keys keep their running
//! values and the log says so. A file that does not validate changes nothing.

use crate::config::{LinkSettings, Settings};

/// What a reload did, for the log and the Admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// False when nothing changed because the file did not validate.
    pub applied: bool,
    /// One line: what was applied, or why not (`reload failed, ...`), naming the file and
    /// line of a problem but nothing the file holds (it may hold secrets; the log has it).
    pub message: String,
    /// Keys that changed but need a restart (kept at their running values).
    pub restart_needed: Vec<String>,
}

/// The reloaded settings as they will run, and the keys that changed but
/// need a restart (kept at their running values).
pub fn plan_reload(running: &Settings, mut loaded: Settings) -> (Settings, Vec<String>) {
    let mut restart_needed = Vec::new();
    let addr = |addr: &std::net::SocketAddr| addr.to_string();
    let maybe_addr =
        |addr: &Option<std::net::SocketAddr>| addr.map_or("off".to_string(), |a| a.to_string());
    let (now, new) = (&running.server, &mut loaded.server);
    keep_running(
        "server.listen",
        &now.listen,
        &mut new.listen,
        addr,
        &mut restart_needed,
    );
    keep_running(
        "server.metrics_listen",
        &now.metrics_listen,
        &mut new.metrics_listen,
        maybe_addr,
        &mut restart_needed,
    );
    keep_running(
        "server.http_listen",
        &now.http_listen,
        &mut new.http_listen,
        maybe_addr,
        &mut restart_needed,
    );
    keep_running(
        "server.admin_listen",
        &now.admin_listen,
        &mut new.admin_listen,
        maybe_addr,
        &mut restart_needed,
    );
    // tonic fixes a service's reply encoding when it is built.
    keep_running(
        "server.compression",
        &now.compression,
        &mut new.compression,
        |c| c.name().to_string(),
        &mut restart_needed,
    );
    // The cap is the gRPC accept loop's, built once at start.
    keep_running(
        "server.max_connections",
        &now.max_connections,
        &mut new.max_connections,
        |n| n.to_string(),
        &mut restart_needed,
    );
    // The runtime is built before anything else runs.
    keep_running(
        "server.threads",
        &now.threads,
        &mut new.threads,
        |n| n.to_string(),
        &mut restart_needed,
    );
    // The ports change protocol: clients must be told first. The files themselves reload.
    if now.tls.is_some() != new.tls.is_some() {
        let shown = |on: bool| if on { "on" } else { "off" };
        restart_needed.push(format!(
            "server.tls ({} -> {})",
            shown(now.tls.is_some()),
            shown(new.tls.is_some())
        ));
        new.tls.clone_from(&now.tls);
    }
    (loaded, restart_needed)
}

/// A restart key: when the reloaded value differs, it goes back to the
/// running one and `restart_needed` says `key (running -> reloaded)`.
fn keep_running<T: PartialEq + Clone>(
    key: &str,
    running: &T,
    loaded: &mut T,
    shown: impl Fn(&T) -> String,
    restart_needed: &mut Vec<String>,
) {
    if loaded != running {
        restart_needed.push(format!("{key} ({} -> {})", shown(running), shown(loaded)));
        *loaded = running.clone();
    }
}

/// Whether the Redis connection must be replaced to apply `loaded`: any change of where Redis
/// is, the password, the timeout, or the TLS files (their paths or what they hold).
pub fn needs_new_connection(running: &LinkSettings, loaded: &LinkSettings) -> bool {
    running != loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn settings(extra: &str) -> Settings {
        let text = format!("{extra}\n[[chat_servers]]\nname = \"a\"\nhost = \"h\"\nport = 1\n");
        Settings::parse(&text, Path::new("t.toml"), None).expect("test config is valid")
    }

    /// [`needs_new_connection`] for the links of two configs without TLS files.
    fn needs_new(running: &Settings, loaded: &Settings) -> bool {
        let link = |s: &Settings| s.redis.link().expect("no TLS files to read");
        needs_new_connection(&link(running), &link(loaded))
    }

    #[test]
    fn listen_changes_are_kept_back_and_reported() {
        let running = settings("");
        let loaded = settings(
            "[server]\nlisten = \"127.0.0.1:1\"\nmetrics_listen = \"127.0.0.1:2\"\nhttp_listen = \"127.0.0.1:3\"\nadmin_listen = \"\"\nshutdown_grace_ms = 5",
        );
        let (applied, restart) = plan_reload(&running, loaded);
        assert_eq!(applied.server.listen, running.server.listen);
        assert_eq!(applied.server.metrics_listen, running.server.metrics_listen);
        assert_eq!(applied.server.http_listen, running.server.http_listen);
        assert_eq!(applied.server.admin_listen, running.server.admin_listen);
        assert_eq!(applied.server.shutdown_grace, Duration::from_millis(5));
        assert_eq!(restart.len(), 4);
        assert!(restart[0].starts_with("server.listen (0.0.0.0:50052 -> 127.0.0.1:1)"));
        assert_eq!(restart[2], "server.http_listen (off -> 127.0.0.1:3)");
        assert_eq!(restart[3], "server.admin_listen (127.0.0.1:50053 -> off)");
    }

    #[test]
    fn a_compression_change_is_kept_back_and_reported() {
        let running = settings("");
        let (applied, restart) =
            plan_reload(&running, settings("[server]\ncompression = \"gzip\""));
        assert_eq!(applied, running);
        assert_eq!(restart, ["server.compression (none -> gzip)"]);
    }

    #[test]
    fn a_threads_change_is_kept_back_and_reported() {
        let running = settings("");
        let (applied, restart) = plan_reload(&running, settings("[server]\nthreads = 2"));
        assert_eq!(applied, running);
        assert_eq!(restart, ["server.threads (1 -> 2)"]);
    }

    #[test]
    fn turning_tls_on_or_off_is_kept_back_but_new_paths_apply() {
        let tls = |cert: &str| format!("[server.tls]\ncert = \"{cert}\"\nkey = \"k.pem\"");
        let plain = settings("");
        let (applied, restart) = plan_reload(&plain, settings(&tls("a.pem")));
        assert_eq!(applied, plain);
        assert_eq!(restart, ["server.tls (off -> on)"]);

        let running = settings(&tls("a.pem"));
        let (applied, restart) = plan_reload(&running, plain.clone());
        assert_eq!(applied, running);
        assert_eq!(restart, ["server.tls (on -> off)"]);

        let moved = settings(&tls("b.pem"));
        let (applied, restart) = plan_reload(&running, moved.clone());
        assert_eq!(
            applied, moved,
            "the files are re-read, wherever they now are"
        );
        assert!(restart.is_empty());
    }

    #[test]
    fn other_changes_apply_without_restart() {
        let running = settings("");
        let loaded = settings("[redis]\ntoken_ttl_secs = 5\n[balancer]\npoll_interval_ms = 7");
        let (applied, restart) = plan_reload(&running, loaded.clone());
        assert_eq!(applied, loaded);
        assert!(restart.is_empty());
        assert!(!needs_new(&running, &applied));
    }

    #[test]
    fn url_or_timeout_change_needs_a_new_connection() {
        let running = settings("");
        assert!(needs_new(
            &running,
            &settings("[redis]\nurl = \"redis://other:6379\"")
        ));
        assert!(needs_new(
            &running,
            &settings("[redis]\ncommand_timeout_ms = 5")
        ));
    }

    #[test]
    fn a_strategy_change_applies_without_restart() {
        let running = settings("");
        let loaded = settings("[balancer]\nstrategy = \"p2c\"");
        let (applied, restart) = plan_reload(&running, loaded);
        assert_eq!(applied.balancer.strategy.name(), "p2c");
        assert!(restart.is_empty());
        assert!(!needs_new(&running, &applied));
    }
}
