//! Why a command failed, and the exit code each reason maps to.
//!
//! Scripts rely on these codes (they are listed in `statusctl --help`):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the server answered, but no: a business error (`error != 0`), a ChatServer refusing the login of `connect`, a service NOT_SERVING, a reload not applied, a benchmark with business errors; or the INI file of `convert-config` is missing or bad |
//! | 2 | bad command line (clap's usage errors) |
//! | 3 | the server (or Redis, for `bench --seed-redis`, or the ChatServer, for `connect`) could not be reached, or a call failed with a gRPC status |
//!
//! Every failure prints exactly one line on stderr: `statusctl: error: <message>`.

use std::error::Error as StdError;
use std::fmt;

use status_server::contract::error_code;

/// Exit code: the server answered, but with a refusal.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: bad command line (what clap uses).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: not reached, or a gRPC error.
pub const EXIT_UNREACHABLE: u8 = 3;

/// A command's failure: which exit code, and the one-line message.
#[derive(Debug)]
pub enum Failure {
    /// The server answered, but not with success (exit 1).
    Refused(String),
    /// The server could not be reached, or a call ended with a gRPC status (exit 3).
    Unreachable(String),
    /// A file to read is missing or bad (exit 1, as status-server exits for a bad config).
    BadFile(String),
}

impl Failure {
    /// A call that ended with gRPC status `status`, e.g.
    /// `GetChatServer: UNAVAILABLE: no chat server is alive (...)`.
    pub fn grpc(rpc: &str, status: &tonic::Status) -> Failure {
        let code = code_name(status.code());
        let message = one_line(status.message());
        if message.is_empty() {
            Failure::Unreachable(format!("{rpc}: {code}"))
        } else {
            Failure::Unreachable(format!("{rpc}: {code}: {message}"))
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(_) | Failure::BadFile(_) => EXIT_REFUSED,
            Failure::Unreachable(_) => EXIT_UNREACHABLE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Failure::Refused(message) | Failure::Unreachable(message) | Failure::BadFile(message)) =
            self;
        f.write_str(&one_line(message))
    }
}

/// `err` and its sources as one line: `transport error: tcp connect error: Connection refused`.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let text = one_line(&err.to_string());
        // Many errors repeat their source's text in their own.
        if !text.is_empty() && parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// `text` with line breaks and runs of blanks folded into single spaces.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical name of a gRPC status code, as grpcurl and the gRPC docs spell it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A business error code with its meaning, `1011 (uid invalid)`; the bare code when the
/// contract does not define it.
pub fn describe_code(code: i32) -> String {
    match error_code::meaning(code) {
        Some(meaning) => format!("{code} ({meaning})"),
        None => code.to_string(),
    }
}

/// `Ok` for `error == 0`; otherwise the refusal naming the RPC and the code.
pub fn check_business(rpc: &str, error: i32) -> Result<(), Failure> {
    if error == error_code::SUCCESS {
        Ok(())
    } else {
        Err(Failure::Refused(format!(
            "{rpc} answered error {}",
            describe_code(error)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_failures_are_one_line_with_the_canonical_code() {
        let status = tonic::Status::unavailable("no chat server\nis alive");
        let failure = Failure::grpc("GetChatServer", &status);
        assert_eq!(failure.exit_code(), EXIT_UNREACHABLE);
        assert_eq!(
            failure.to_string(),
            "GetChatServer: UNAVAILABLE: no chat server is alive"
        );
        let bare = Failure::grpc(
            "Login",
            &tonic::Status::new(tonic::Code::DeadlineExceeded, ""),
        );
        assert_eq!(bare.to_string(), "Login: DEADLINE_EXCEEDED");
    }

    #[test]
    fn business_codes_map_to_refusals() {
        assert!(check_business("Login", 0).is_ok());
        let failure = check_business("Login", 1010).unwrap_err();
        assert_eq!(failure.exit_code(), EXIT_REFUSED);
        assert_eq!(
            failure.to_string(),
            "Login answered error 1010 (token invalid)"
        );
        assert_eq!(
            check_business("Login", 7).unwrap_err().to_string(),
            "Login answered error 7"
        );
    }

    #[test]
    fn error_chains_skip_repeated_text() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(inner);
        assert_eq!(error_chain(&outer), "refused");
    }
}
