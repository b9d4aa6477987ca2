//! Masking the password of a Redis URL before it is shown anywhere.
//!
//! A Redis URL may carry a password (`redis://user:pw@host`, `unix://..?pass=pw`), and
//! whatever shows one ends up in a log: the config's error lines and the start-up line both
//! quote it. Not part of the config for that reason; anything showing a URL goes through
//! [`redact_url`].

/// `url` with its password masked, for error messages and logs: the env override exists
/// precisely so that passwords stay out of files, and error lines end up in logs.
pub fn redact_url(url: &str) -> String {
    const MASK: &str = "***";
    // Only a real scheme name counts: in `user:pa://ss@host` or `://pw@host` the text
    // before `://` may itself be part of the password.
    let (scheme, rest) = match url.find("://") {
        Some(i) if is_url_scheme(&url[..i]) => url.split_at(i + 3),
        _ => ("", url),
    };
    // The last `@` rather than the end of the authority: a password may hold an unescaped
    // `/`, `?` or `#`, and a URL that failed to parse is exactly the one to be careful with.
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => rest.split_at(at),
        None => ("", rest),
    };
    let userinfo = if userinfo.is_empty() {
        String::new()
    } else if scheme.is_empty() {
        // Without a scheme we cannot tell what the part before `@` is: mask it all.
        MASK.to_owned()
    } else if let Some((user, _password)) = userinfo.split_once(':') {
        format!("{user}:{MASK}")
    } else {
        // A user name alone is not secret.
        userinfo.to_owned()
    };
    // unix:// URLs carry the password as `?pass=`.
    let after = match after.split_once('?') {
        Some((before_query, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k == "pass" || k == "password" => format!("{k}={MASK}"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{before_query}?{}", query.join("&"))
        }
        None => after.to_owned(),
    };
    format!("{scheme}{userinfo}{after}")
}

/// RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_url_scheme(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(redact_url("redis://u:p@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://:p@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://u@h"), "redis://u@h");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact_url("p@h"), "***@h");
        assert_eq!(redact_url("redis://:pa/ss@h:1"), "redis://:***@h:1");
        assert_eq!(
            redact_url("redis://u:p?w#x@h/0?db=1"),
            "redis://u:***@h/0?db=1"
        );
        assert_eq!(
            redact_url("unix:///run/redis.sock?db=1&pass=p"),
            "unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(redact_url("redis+unix://u:p@h"), "redis+unix://u:***@h");
        // Found by fuzzing: text before `://` that is no scheme name may be part of the
        // password, and what follows then looked like a user name, shown in full.
        assert_eq!(redact_url("://secret@h"), "***@h");
        assert_eq!(redact_url("u:pa://ss@h:1"), "***@h:1");
        assert_eq!(redact_url("1x://secret@h"), "***@h");
    }
}
