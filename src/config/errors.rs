//! [`ConfigError`], and how its one line is made: where in the text a problem is (line,
//! column, the key a value belongs to) and toml's messages put in the config's words.
//!
//! A bad config stops start-up with one line that names the file and the problem (key,
//! value, line; docs/contract.md §3), and that line lands in logs. Hence every message is
//! collapsed to one line, anything that could break or reorder it is replaced, and nothing
//! here panics on any input. What the line quotes of the file (keys, values) may be secret:
//! [`ConfigError::without_contents`] is the same error for callers outside the process
//! (the Admin API's Reload, docs/contract.md §6), who learn only where the problem is.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why the config was rejected. Displays as one line: `PATH: [line N: ]problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    path: PathBuf,
    /// 1-based line the problem was found on, when it has one.
    line: Option<usize>,
    /// Already collapsed to one line.
    message: String,
    /// Whether the message may quote what the file holds (a key, a value); false when it
    /// is about the file as a whole (it cannot be read) or the environment.
    quotes_contents: bool,
}

impl ConfigError {
    /// A problem with what the file says; the message may quote it.
    pub(super) fn new(path: &Path, line: Option<usize>, message: impl AsRef<str>) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            message: one_line(message.as_ref()),
            quotes_contents: true,
        }
    }

    /// A problem that quotes nothing of the file: it cannot be read, or the environment is
    /// wrong.
    pub(super) fn outside_contents(path: &Path, message: impl AsRef<str>) -> Self {
        Self {
            quotes_contents: false,
            ..Self::new(path, None, message)
        }
    }

    /// The error without anything the file holds: the path, and for a problem with what
    /// the file says only its line (when it has one). The whole line goes to the log.
    pub fn without_contents(&self) -> String {
        if !self.quotes_contents {
            return self.to_string();
        }
        let path = one_line(&self.path.display().to_string());
        let at = self
            .line
            .map_or_else(String::new, |line| format!("line {line}: "));
        format!("{path}: {at}does not validate (the server's log says why)")
    }

    /// The same problem in other words, at the same place: the INI reader names its own
    /// keys where validation names TOML's.
    pub(super) fn reworded(self, reword: impl FnOnce(&str) -> String) -> Self {
        let message = one_line(&reword(&self.message));
        Self { message, ..self }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Even the path could hold a newline; the one-line promise covers it too.
        let path = one_line(&self.path.display().to_string());
        match self.line {
            Some(line) => write!(f, "{path}: line {line}: {}", self.message),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The text being parsed and the path it is reported under.
pub(super) struct Source<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
}

impl Source<'_> {
    /// 1-based line of byte `offset` (clamped to the text).
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        1 + self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// 1-based column, in characters, of byte `offset`.
    fn column_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        let bytes = &self.text.as_bytes()[..end];
        let line_start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // Count UTF-8 lead bytes rather than slicing a &str, which could panic off a boundary.
        1 + bytes[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count()
    }

    pub(super) fn at(&self, span: Range<usize>, message: impl AsRef<str>) -> ConfigError {
        ConfigError::new(self.path, Some(self.line_of(span.start)), message)
    }

    pub(super) fn no_line(&self, message: impl AsRef<str>) -> ConfigError {
        ConfigError::new(self.path, None, message)
    }

    /// The text is not TOML at all.
    pub(super) fn syntax_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = match e.span() {
            Some(span) => format!(
                "invalid TOML: line {}, column {}: {}",
                self.line_of(span.start),
                self.column_of(span.start),
                e.message()
            ),
            None => format!("invalid TOML: {}", e.message()),
        };
        self.no_line(message)
    }

    /// Valid TOML that does not fit [`RawConfig`](super::raw::RawConfig): an unknown key (toml's message names it),
    /// a wrong type or a missing required key.
    pub(super) fn schema_error(&self, e: &toml::de::Error) -> ConfigError {
        let Some(span) = e.span() else {
            return self.no_line(e.message());
        };
        // A wrong type is reported at the value (or at a table's header), and toml's
        // message does not say whose value it is; recover the key from the text.
        let problem = in_config_words(e.message());
        let message =
            match key_before(self.text, span.start).or_else(|| header_at(self.text, span.start)) {
                Some(key) => format!("{key}: {problem}"),
                None => problem,
            };
        self.at(span, message)
    }
}

/// The key of the `key = value` whose value starts at byte `offset`, if the text right
/// before `offset` on the same line is `key =` (as in `port = "x"` or `{ port = "x" }`).
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let eq = line.rfind('=')?;
    if !line[eq + 1..].trim().is_empty() {
        return None;
    }
    let key = &line[..eq];
    let key = key[key.rfind(['{', ',']).map_or(0, |i| i + 1)..].trim();
    (!key.is_empty()).then_some(key)
}

/// The table header (`[a.b]` or `[[a]]`) on the line of byte `offset`, if that line is one:
/// a table-level error (missing key, table where a value belongs) is reported at the header.
fn header_at(text: &str, offset: usize) -> Option<&str> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    // Drop a trailing comment. A `#` inside a quoted key cuts the header short, so it is
    // not recognised and the message merely goes without the hint.
    let header = line.split('#').next()?.trim();
    (header.starts_with('[') && header.ends_with(']')).then_some(header)
}

/// serde speaks of fields; the config and its operators speak of keys.
fn in_config_words(message: &str) -> String {
    for (serde_words, ours) in [
        ("unknown field ", "unknown key "),
        ("missing field ", "missing key "),
    ] {
        if let Some(rest) = message.strip_prefix(serde_words) {
            return format!("{ours}{rest}");
        }
    }
    message.to_owned()
}

/// Collapses a (possibly multi-line) message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .map(|c| if breaks_line(c) { ' ' } else { c })
        .collect()
}

/// Whether `c` could end a log line or rearrange it: a control character (C0, C1), a line
/// or paragraph separator, or a bidi control. Messages quote config text verbatim (an
/// unknown key, for one), so any of these may reach them. Public so that the property tests
/// and fuzz targets check messages against the same definition.
pub fn breaks_line(c: char) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{ONE_SERVER, assert_mentions, error};

    #[test]
    fn invalid_toml() {
        let message = error("[server]\nlisten = 0.0.0.0:50052\n");
        assert_mentions(&message, &["invalid TOML", "line 2, column"]);
    }

    #[test]
    fn invalid_toml_duplicate_key() {
        let message = error("[server]\nlisten = \"0.0.0.0:1\"\nlisten = \"0.0.0.0:2\"\n");
        assert_mentions(
            &message,
            &["invalid TOML", "line 3, column 1", "duplicate key"],
        );
    }

    #[test]
    fn odd_input_never_panics_and_stays_one_line() {
        let inputs = [
            "\u{feff}",
            "\u{feff}[server]\nlisten = \"é:1\"\n",
            "[server]\nlisten = \"a\\nb\"\n",
            "\"\"\"",
            "[[chat_servers]]\nname = \"\"\"\nx\ny\n\"\"\"\nhost = 3\n",
            "chat_servers = [1, 2]",
            "chat_servers = [[]]",
            "[[chat_servers]]\n[[chat_servers]]",
            "[server.listen]\nx = 1",
            "server.listen = 1",
            "\0\0\0",
            "é = é",
        ];
        for input in inputs {
            error(input);
        }
    }

    #[test]
    fn line_separators_and_bidi_controls_never_reach_the_message() {
        // Found by fuzzing: toml quotes an unknown key verbatim, so a quoted key holding
        // U+2028 (LINE SEPARATOR) or U+202E (RIGHT-TO-LEFT OVERRIDE) split or reordered
        // the "one" line.
        for odd in [
            '\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{200f}', '\u{85}',
        ] {
            let message = error(&format!("\"a{odd}b\" = 1\n{ONE_SERVER}"));
            assert_mentions(&message, &["line 1: ", "unknown key `a b`"]);
            assert!(!message.chars().any(breaks_line), "{message:?}");
        }
    }

    #[test]
    fn newlines_in_values_are_escaped() {
        let message = error(&format!("[server]\nlisten = \"a\\nb\"\n{ONE_SERVER}"));
        assert_mentions(&message, &["line 2: ", r#"server.listen = "a\nb""#]);
    }

    #[test]
    fn without_contents_keeps_the_place_and_drops_what_the_file_says() {
        let bad_value = ConfigError::new(
            Path::new("s.toml"),
            Some(4),
            "redis.url = \"redis://:hunter2@h\": not a URL",
        );
        assert_eq!(
            bad_value.without_contents(),
            "s.toml: line 4: does not validate (the server's log says why)"
        );
        assert!(bad_value.to_string().contains("hunter2"));
        let no_line = ConfigError::new(Path::new("s.toml"), None, "unknown key `hunter2`");
        assert_eq!(
            no_line.without_contents(),
            "s.toml: does not validate (the server's log says why)"
        );
        let unreadable =
            ConfigError::outside_contents(Path::new("s.toml"), "cannot read: not a regular file");
        assert_eq!(
            unreadable.without_contents(),
            "s.toml: cannot read: not a regular file"
        );
    }

    #[test]
    fn key_before_value() {
        let text = "port = \"x\"\n{ a = 1, port = \"y\" }\nports = [1, \"z\"]";
        let at = |needle: &str| text.find(needle).expect("needle in text");
        assert_eq!(key_before(text, at("\"x")), Some("port"));
        assert_eq!(key_before(text, at("\"y")), Some("port"));
        assert_eq!(key_before(text, at("[1")), Some("ports"));
        // Inside the array: the `=` is not right before the value.
        assert_eq!(key_before(text, at("\"z")), None);
        assert_eq!(key_before(text, 0), None);
        assert_eq!(key_before(text, text.len() + 1), None);
    }
}
