//! The INI syntax of the C++ StatusServer's config file, line by line: `[section]` headers,
//! `key = value` lines, whole-line `;` and `#` comments, blank lines. Nothing here knows
//! which sections or keys the StatusServer reads; that is `super`'s business.
//!
//! The rules follow the reader the C++ server used (boost's `read_ini`), so that a file it
//! accepted reads the same here: keys, values and section names are trimmed and taken
//! verbatim otherwise (case-sensitive, quotes kept); a value runs to the end of its line, so
//! a `;` or `#` after the `=` belongs to the value (a password may hold one); a section or
//! a key given twice is an error. Lines may end in CRLF, and a UTF-8 byte order mark at the
//! start is skipped, since these files were edited on Windows too.
//!
//! Every span is a byte range of the original text, so errors found later still name the
//! right line. A line that is not understood is never quoted: it could be a stray password.

use std::collections::HashMap;
use std::ops::Range;

use super::super::ConfigError;
use super::super::errors::Source;

/// The file's sections, in file order.
pub(super) struct IniFile<'a> {
    pub(super) sections: Vec<Section<'a>>,
}

/// One `[name]` and the `key = value` lines under it, in file order.
pub(super) struct Section<'a> {
    pub(super) name: &'a str,
    /// The header line (an error about the section as a whole points here).
    pub(super) header: Range<usize>,
    pub(super) entries: Vec<Entry<'a>>,
}

/// One `key = value` line.
pub(super) struct Entry<'a> {
    pub(super) key: &'a str,
    pub(super) key_span: Range<usize>,
    /// Trimmed; may be empty.
    pub(super) value: &'a str,
    /// Where the value is (empty values: where it would start).
    pub(super) value_span: Range<usize>,
}

impl<'a> Section<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&Entry<'a>> {
        self.entries.iter().find(|entry| entry.key == key)
    }
}

/// Reads the whole file; the first line that breaks the syntax is the error.
pub(super) fn read<'a>(src: &Source<'a>) -> Result<IniFile<'a>, ConfigError> {
    let text = src.text;
    let mut sections: Vec<Section<'a>> = Vec::new();
    // name -> index in `sections`, to name the first one when a section comes twice.
    let mut section_index: HashMap<&'a str, usize> = HashMap::new();
    let mut offset = 0;
    for raw_line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw_line.len();
        let mut line = raw_line.trim_end_matches(['\n', '\r']);
        let mut start = line_start;
        if line_start == 0
            && let Some(rest) = line.strip_prefix('\u{feff}')
        {
            line = rest;
            start += '\u{feff}'.len_utf8();
        }
        let (content, content_start) = trimmed(line, start);
        if content.is_empty() || content.starts_with([';', '#']) {
            continue;
        }
        let span = content_start..content_start + content.len();

        if let Some(after_bracket) = content.strip_prefix('[') {
            let Some(close) = after_bracket.find(']') else {
                return Err(src.at(span, "a section header must end with `]`"));
            };
            let rest = after_bracket[close + 1..].trim_start();
            if !(rest.is_empty() || rest.starts_with([';', '#'])) {
                return Err(src.at(
                    span,
                    "only a comment (`;` or `#`) may follow a section header's `]`",
                ));
            }
            let (name, _) = trimmed(&after_bracket[..close], content_start + 1);
            if name.is_empty() {
                return Err(src.at(span, "`[]`: a section needs a name"));
            }
            if let Some(&first) = section_index.get(name) {
                return Err(src.at(
                    span,
                    format!(
                        "[{name}]: duplicate section, first on line {}",
                        src.line_of(sections[first].header.start)
                    ),
                ));
            }
            section_index.insert(name, sections.len());
            sections.push(Section {
                name,
                header: span,
                entries: Vec::new(),
            });
            continue;
        }

        let Some(eq) = content.find('=') else {
            return Err(src.at(
                span,
                "not a `[section]` header, a `key = value` line or a comment",
            ));
        };
        let (key, key_start) = trimmed(&content[..eq], content_start);
        if key.is_empty() {
            return Err(src.at(span, "`= ...` without a key before the `=`"));
        }
        let key_span = key_start..key_start + key.len();
        let Some(section) = sections.last_mut() else {
            return Err(src.at(
                key_span,
                format!("{key}: a key before any [section] (the StatusServer reads none there)"),
            ));
        };
        if let Some(first) = section.get(key) {
            return Err(src.at(
                key_span,
                format!(
                    "[{}] {key}: duplicate key, first on line {}",
                    section.name,
                    src.line_of(first.key_span.start)
                ),
            ));
        }
        let (value, value_start) = trimmed(&content[eq + 1..], content_start + eq + 1);
        section.entries.push(Entry {
            key,
            key_span,
            value,
            value_span: value_start..value_start + value.len(),
        });
    }
    Ok(IniFile { sections })
}

/// `part` (which starts at byte `start` of the text) without surrounding whitespace, and
/// where what is left starts.
fn trimmed(part: &str, start: usize) -> (&str, usize) {
    let content = part.trim();
    let leading = part.len() - part.trim_start().len();
    (content, start + leading)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const PATH: &str = "conf/status.ini";

    fn sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
        let src = Source {
            text,
            path: Path::new(PATH),
        };
        let file = read(&src).unwrap_or_else(|e| panic!("{text:?} is valid INI: {e}"));
        file.sections
            .iter()
            .map(|section| {
                let entries = section
                    .entries
                    .iter()
                    .map(|entry| {
                        // Spans point at exactly the key and the value.
                        assert_eq!(&text[entry.key_span.clone()], entry.key);
                        assert_eq!(&text[entry.value_span.clone()], entry.value);
                        (entry.key.to_owned(), entry.value.to_owned())
                    })
                    .collect();
                (section.name.to_owned(), entries)
            })
            .collect()
    }

    fn error(text: &str) -> String {
        let src = Source {
            text,
            path: Path::new(PATH),
        };
        let Err(err) = read(&src) else {
            panic!("{text:?} should be rejected");
        };
        let message = err.to_string();
        assert!(!message.contains('\n'), "{message:?}");
        message
    }

    fn owned(section: &str, entries: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        (
            section.to_owned(),
            entries
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    #[test]
    fn sections_keys_and_values_trimmed_in_file_order() {
        let text = "[B]\nz = 1\n  a=2  \n\t[ A ]\nkey   =   some value  \nempty =\n";
        assert_eq!(
            sections(text),
            vec![
                owned("B", &[("z", "1"), ("a", "2")]),
                owned("A", &[("key", "some value"), ("empty", "")]),
            ]
        );
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "; a comment\n# another\n\n[S] ; trailing comment\n  ; indented\nk = v\n   \n";
        assert_eq!(sections(text), vec![owned("S", &[("k", "v")])]);
    }

    #[test]
    fn a_value_runs_to_the_end_of_its_line() {
        // As the C++ server read it: `;`, `#`, `=` and quotes after the first `=` are the value.
        let text = "[Redis]\nPasswd = a;b#c=d \"e\"\n";
        assert_eq!(
            sections(text),
            vec![owned("Redis", &[("Passwd", "a;b#c=d \"e\"")])]
        );
    }

    #[test]
    fn crlf_line_endings_and_a_byte_order_mark() {
        let text = "\u{feff}[S]\r\nk = v\r\n\r\nl = w\r\n";
        assert_eq!(sections(text), vec![owned("S", &[("k", "v"), ("l", "w")])]);
        let text = "\u{feff}k = v\r\n";
        assert_eq!(
            error(text),
            format!(
                "{PATH}: line 1: k: a key before any [section] (the StatusServer reads none there)"
            )
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, expected) in [
            (
                "[S]\nk = v\n[T\n",
                "line 3: a section header must end with `]`",
            ),
            (
                "[S] x\n",
                "line 1: only a comment (`;` or `#`) may follow a section header's `]`",
            ),
            ("\n[ ]\n", "line 2: `[]`: a section needs a name"),
            (
                "[S]\n\nstray words\n",
                "line 3: not a `[section]` header, a `key = value` line or a comment",
            ),
            (
                "[S]\n = v\n",
                "line 2: `= ...` without a key before the `=`",
            ),
            (
                "[S]\nk = 1\n[T]\n[S]\n",
                "line 4: [S]: duplicate section, first on line 1",
            ),
            (
                "[S]\nk = 1\r\nk = 2\r\n",
                "line 3: [S] k: duplicate key, first on line 2",
            ),
        ] {
            assert_eq!(error(text), format!("{PATH}: {expected}"), "{text:?}");
        }
    }

    #[test]
    fn a_line_not_understood_is_never_quoted() {
        let message = error("[Redis]\nHost = h\nhunter2\n");
        assert!(!message.contains("hunter2"), "{message}");
        let message = error("[hunter2\n");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn names_are_case_sensitive() {
        assert_eq!(
            sections("[S]\nk = 1\nK = 2\n[s]\n"),
            vec![owned("S", &[("k", "1"), ("K", "2")]), owned("s", &[])]
        );
    }
}
