//! `Settings::parse` on arbitrary text: it must never panic, and every error must be one line
//! starting with the path.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use status_server::config::Settings;

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

/// A control character (C0, C1), a line or paragraph separator, or a bidi control.
fn breaks_line(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}
