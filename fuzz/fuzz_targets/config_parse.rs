//! `Settings::parse` on arbitrary text: it must never panic, and every error must be one line
//! starting with the path.
//!
//! Seed it with the shipped config (`cp ../config/status.toml corpus/config_parse/`, see
//! `fuzz/README.md`) and `seeds/config_parse`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use status_server::config::{Settings, breaks_line};

const PATH: &str = "fuzz/status.toml";

fuzz_target!(|data: &[u8]| {
    // Only UTF-8 reaches `parse` (`Settings::load` reads with `read_to_string`). Text before
    // a \x01 is the env override of `redis.url` (STATUS_REDIS_URL).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (text, url_override) = match text.split_once('\u{1}') {
        Some((url, rest)) => (rest, Some(url)),
        None => (text, None),
    };
    if let Err(e) = Settings::parse(text, Path::new(PATH), url_override) {
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("{PATH}: ")),
            "does not start with the path: {message:?}"
        );
        assert!(
            !message.chars().any(breaks_line),
            "not one line: {message:?}"
        );
    }
});
