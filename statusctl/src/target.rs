//! Reaching the server: `--addr` and `--timeout` parsing, one tonic `Channel` per
//! HTTP/2 connection, bounded by the timeout, and `--compress` applied to each client.

use std::time::Duration;

use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::failure::{Failure, error_chain};

/// Where the server is and how long anything may take.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://host:port`, validated by [`parse_addr`].
    pub addr: String,
    /// Bound on connecting and on every RPC.
    pub timeout: Duration,
    /// `--compress`: requests go compressed with it, and replies so compressed are
    /// accepted; `None`: plain.
    pub compress: Option<CompressionEncoding>,
}

/// `--compress`: the encodings status-server accepts (docs/contract.md §9).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Compress {
    Gzip,
    Deflate,
    Zstd,
}

impl From<Compress> for CompressionEncoding {
    fn from(compress: Compress) -> Self {
        match compress {
            Compress::Gzip => CompressionEncoding::Gzip,
            Compress::Deflate => CompressionEncoding::Deflate,
            Compress::Zstd => CompressionEncoding::Zstd,
        }
    }
}

/// A generated tonic client on `channel`, with the target's `--compress` applied. A
/// macro: every generated client has these builders, but no trait shares them.
#[macro_export]
macro_rules! client {
    ($target:expr, $client:ident, $channel:expr) => {{
        let client = $client::new($channel);
        match $target.compress {
            Some(encoding) => client.send_compressed(encoding).accept_compressed(encoding),
            None => client,
        }
    }};
}

impl Target {
    /// The endpoint of `addr`: connect timeout and per-call deadline (sent to the server
    /// as `grpc-timeout`, too) are both `timeout`.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(self.addr.clone())
            .expect("--addr was validated by parse_addr")
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .tcp_nodelay(true)
    }

    /// Opens one HTTP/2 connection (TCP connect and handshake within the timeout).
    pub async fn connect(&self) -> Result<Channel, Failure> {
        self.connect_endpoint(&self.endpoint()).await
    }

    /// Opens one more HTTP/2 connection to `endpoint` (each call opens its own).
    pub async fn connect_endpoint(&self, endpoint: &Endpoint) -> Result<Channel, Failure> {
        match tokio::time::timeout(self.timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(err)) => Err(Failure::Unreachable(format!(
                "cannot connect to {}: {}",
                self.addr,
                error_chain(&err)
            ))),
            Err(_) => Err(Failure::Unreachable(format!(
                "cannot connect to {}: no answer within {:?}",
                self.addr, self.timeout
            ))),
        }
    }
}

/// `--addr`: `http://host:port`; a bare `host:port` gets `http://` in front. TLS is not
/// supported (status-server serves plaintext gRPC).
pub fn parse_addr(text: &str) -> Result<String, String> {
    let addr = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    if !addr.starts_with("http://") {
        return Err("only http:// (plaintext gRPC) is supported".to_string());
    }
    let endpoint = Endpoint::from_shared(addr.clone()).map_err(|err| error_chain(&err))?;
    if endpoint.uri().host().is_none_or(str::is_empty) {
        return Err("no host in the address".to_string());
    }
    Ok(addr)
}

/// A positive number of seconds (`5`, `0.5`).
pub fn parse_positive_secs(text: &str) -> Result<Duration, String> {
    match parse_secs(text)? {
        secs if secs.is_zero() => Err("must be more than 0 seconds".to_string()),
        secs => Ok(secs),
    }
}

/// A number of seconds >= 0 (`0`, `2.5`).
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_a_scheme_and_must_be_plaintext() {
        assert_eq!(
            parse_addr("127.0.0.1:50052").unwrap(),
            "http://127.0.0.1:50052"
        );
        assert_eq!(
            parse_addr("http://status:50052").unwrap(),
            "http://status:50052"
        );
        assert!(parse_addr("https://status:50052").is_err());
        assert!(parse_addr("http://").is_err());
        assert!(parse_addr("not a uri").is_err());
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_positive_secs("0.25").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_positive_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("inf").is_err());
    }
}
