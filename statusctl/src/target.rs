//! Reaching the server: `--addr` and `--timeout` parsing, one tonic `Channel` per
//! HTTP/2 connection, bounded by the timeout, `--compress` applied to each client, and TLS
//! for `https://` addresses (`--tls-ca`, `--tls-cert`, `--tls-key`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

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
    /// For `https://` addresses: whom to trust and what to present; `None` for `http://`.
    pub tls: Option<ClientTlsConfig>,
}

/// `--tls-ca`, `--tls-cert`, `--tls-key` as given.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// The client TLS config, `None` when no TLS flag is given.
    ///
    /// # Errors
    /// A file that cannot be read, or `--tls-cert` without `--tls-key` (or the reverse).
    /// The contents are checked when the endpoint is built ([`Target::endpoint`]).
    pub fn client_config(&self) -> Result<Option<ClientTlsConfig>, Failure> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|err| Failure::BadFile(format!("cannot read {}: {err}", path.display())))
        };
        let mut config = match &self.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?)),
            None if self.cert.is_none() && self.key.is_none() => return Ok(None),
            // No built-in roots: the server's CA must be named.
            None => {
                return Err(Failure::BadFile(
                    "--tls-cert and --tls-key need --tls-ca".to_string(),
                ));
            }
        };
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(Failure::BadFile(
                    "--tls-cert and --tls-key go together".to_string(),
                ));
            }
        }
        Ok(Some(config))
    }
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
    /// as `grpc-timeout`, too) are both `timeout`; TLS for `https://`.
    ///
    /// # Errors
    /// An `https://` address without `--tls-ca`, TLS flags with an `http://` address, or TLS
    /// files whose contents are not PEM certificates and keys.
    pub fn endpoint(&self) -> Result<Endpoint, Failure> {
        let endpoint = Endpoint::from_shared(self.addr.clone())
            .map_err(|err| Failure::Unreachable(format!("{}: {}", self.addr, error_chain(&err))))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .tcp_nodelay(true);
        match (self.addr.starts_with("https://"), &self.tls) {
            (false, None) => Ok(endpoint),
            (true, Some(tls)) => endpoint.tls_config(tls.clone()).map_err(|err| {
                Failure::BadFile(format!(
                    "TLS files for {}: {}",
                    self.addr,
                    error_chain(&err)
                ))
            }),
            (true, None) => Err(Failure::BadFile(format!(
                "{} is https://: name the server's CA with --tls-ca",
                self.addr
            ))),
            (false, Some(_)) => Err(Failure::BadFile(format!(
                "--tls-* given but {} is not https://",
                self.addr
            ))),
        }
    }

    /// Opens one HTTP/2 connection (TCP connect and handshake within the timeout).
    pub async fn connect(&self) -> Result<Channel, Failure> {
        self.connect_endpoint(&self.endpoint()?).await
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

/// `--addr`: `http://host:port` or `https://host:port`; a bare `host:port` gets `http://`
/// in front.
pub fn parse_addr(text: &str) -> Result<String, String> {
    let addr = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    if !addr.starts_with("http://") && !addr.starts_with("https://") {
        return Err("only http:// and https:// are supported".to_string());
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
    fn addresses_get_a_scheme_http_or_https() {
        assert_eq!(
            parse_addr("127.0.0.1:50052").unwrap(),
            "http://127.0.0.1:50052"
        );
        assert_eq!(
            parse_addr("http://status:50052").unwrap(),
            "http://status:50052"
        );
        assert_eq!(
            parse_addr("https://status:50052").unwrap(),
            "https://status:50052"
        );
        assert!(parse_addr("ftp://status:50052").is_err());
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
