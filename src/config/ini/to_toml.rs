//! An INI config written out as the equivalent TOML config, for `statusctl convert-config`
//! (docs/contract.md §8): every key with its value, commented like `config/status.toml`,
//! under a header that says where it came from and what was left out.
//!
//! It is written from the validated [`Settings`], so it parses back to them (the tests
//! check that), except for the Redis password when it is left out: [`PasswordInToml`] says why
//! and how.

use std::fmt::Write as _;

use super::{IniConfig, one_line, redis_url};
use crate::config::REDIS_URL_ENV;

/// What [`IniConfig::to_toml`] does with `[Redis]` `Passwd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordInToml {
    /// Leave it out of `redis.url` and say in a comment how to give it to the server
    /// instead (`STATUS_REDIS_URL`): the TOML file then holds no secret, and the password
    /// stays where the deployment already keeps secrets. The default.
    LeaveOut,
    /// Write it into `redis.url` (percent-encoded), for an operator who keeps the TOML file
    /// as private as the INI file was.
    Keep,
}

/// Column of the `#` of an end-of-line comment, as in `config/status.toml`.
const COMMENT_COLUMN: usize = 34;

impl IniConfig {
    /// The TOML config equivalent to this INI file, commented. With [`PasswordInToml::LeaveOut`]
    /// and a password in the file, it parses to the same settings once `STATUS_REDIS_URL`
    /// gives the URL with the password; otherwise as it is.
    pub fn to_toml(&self, password: PasswordInToml) -> String {
        let settings = &self.settings;
        let mut out = String::new();
        let mut line = |text: &str| {
            out.push_str(text);
            out.push('\n');
        };

        line("# status-server config, converted by `statusctl convert-config` from the C++");
        line(&comment(&format!(
            "StatusServer's INI file {}.",
            self.source.display()
        )));
        line(
            "# Every key is described in the README (\"Config\"). The INI file gave server.listen,",
        );
        line("# redis.url and the [[chat_servers]]; the other values shown are the defaults.");
        if !self.skipped.is_empty() {
            let skipped: Vec<String> = self
                .skipped
                .iter()
                .map(|section| format!("[{}] ({})", section.name, section.why))
                .collect();
            line(&comment(&format!("Left out: {}.", skipped.join(", "))));
        }

        line("");
        line("[server]");
        line(&commented(
            "listen",
            &toml_string(&settings.server.listen.to_string()),
            "gRPC address ([StatusServer] Host, Port)",
        ));
        let metrics_listen = settings
            .server
            .metrics_listen
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        line(&commented(
            "metrics_listen",
            &toml_string(&metrics_listen),
            "HTTP /metrics and /healthz; \"\" turns them off",
        ));
        line(&commented(
            "shutdown_grace_ms",
            &settings.server.shutdown_grace.as_millis().to_string(),
            "drain time after SIGTERM/SIGINT, then cut off (exit 1)",
        ));

        line("");
        line("[redis]");
        let url = match (&self.redis_password, password) {
            (None, _) => redis_url(&self.redis_address, None),
            (Some(_), PasswordInToml::LeaveOut) => {
                line(
                    "# [Redis] Passwd is left out, to keep the password out of this file. Give it to",
                );
                line(&format!(
                    "# status-server in its environment instead: {REDIS_URL_ENV}, when set, replaces url:"
                ));
                line(&comment(&format!(
                    "  {REDIS_URL_ENV}='redis://:PASSWORD@{}'",
                    self.redis_address
                )));
                line("# with PASSWORD percent-encoded (`statusctl convert-config --keep-password`");
                line("# writes it into url instead).");
                redis_url(&self.redis_address, None)
            }
            (Some(secret), PasswordInToml::Keep) => {
                line("# url holds [Redis] Passwd: keep this file as private as the INI file was.");
                redis_url(&self.redis_address, Some(secret))
            }
        };
        line(&commented(
            "url",
            &toml_string(&url),
            &format!("[Redis] Host, Port; env {REDIS_URL_ENV} overrides"),
        ));
        line(&commented(
            "token_ttl_secs",
            &settings.redis.token_ttl_secs.to_string(),
            "0: tokens never expire",
        ));
        line(&commented(
            "command_timeout_ms",
            &settings.redis.command_timeout.as_millis().to_string(),
            "deadline of every Redis command",
        ));
        line(&commented(
            "token_prefix",
            &toml_string(&settings.redis.token_prefix),
            &format!("token of user N: key {}N", settings.redis.token_prefix),
        ));
        line(&commented(
            "login_count_key",
            &toml_string(&settings.redis.login_count_key),
            "hash the ChatServers publish their counts in",
        ));

        line("");
        line("[balancer]");
        line(&commented(
            "poll_interval_ms",
            &settings.balancer.poll_interval.as_millis().to_string(),
            "how often the load hash is read",
        ));
        let probe_interval_ms = settings
            .balancer
            .probe_interval
            .map_or(0, |interval| interval.as_millis());
        line(&commented(
            "probe_interval_ms",
            &probe_interval_ms.to_string(),
            "TCP probe of each chat server; 0 turns probing off",
        ));

        for (server, section) in settings.chat_servers.iter().zip(&self.chat_server_sections) {
            line("");
            line(&with_comment("[[chat_servers]]", &format!("[{section}]")));
            line(&format!("name = {}", toml_string(&server.name)));
            line(&format!("host = {}", toml_string(&server.host)));
            line(&format!("port = {}", server.port));
        }
        out
    }
}

/// `key = value`, then `# comment` at the comment column.
fn commented(key: &str, value: &str, comment: &str) -> String {
    with_comment(&format!("{key} = {value}"), comment)
}

fn with_comment(code: &str, text: &str) -> String {
    let mut line = format!("{code:<width$}", width = COMMENT_COLUMN - 1);
    let _ = write!(line, " # {}", one_line(text));
    line
}

/// `text` as a whole-line comment. Comments may hold no control characters (TOML), and
/// the text may come from the INI file, so anything that could break the line goes.
fn comment(text: &str) -> String {
    format!("# {}", one_line(text))
}

/// `text` as a TOML string, quoted and escaped as TOML needs.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
