//! The `[redis]` TLS files (`tls_ca`, `tls_cert`, `tls_key`, docs/contract.md §6) read into
//! the PEM contents the Redis link hands to the redis crate.
//!
//! Read and checked here, with rustls as the crate will use them, so that a bad file stops
//! the start (or a reload) with one line naming the key and the file, rather than turning into
//! a failed handshake at every connection. Read again on every reload: a file replaced in
//! place gives a new connection, like the `[server.tls]` files. On a reload they are read off
//! the async threads, within a deadline, as the config file is.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};
use status_actors::redis_link::{ClientPem, TlsPem};

use crate::config::RedisTlsFiles;
use crate::off_thread::read_off_thread;
use crate::tls::{TlsError, certificates_in, private_key_in, provider, read};

/// A `[redis]` TLS file that does not load: the key that names it, and why.
#[derive(Debug)]
pub struct RedisTlsError {
    pub key: &'static str,
    pub error: TlsError,
}

impl fmt::Display for RedisTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis.{}: {}", self.key, self.error)
    }
}

impl std::error::Error for RedisTlsError {}

/// The contents of `files`; `None` when none is set (the system roots, no client certificate).
///
/// # Errors
/// The first file that is missing, unreadable or not PEM (a CA file must hold at least one
/// usable CA certificate, a key file a private key), or a key that does not go with its
/// certificate (named as the key).
pub fn read_files(files: &RedisTlsFiles) -> Result<Option<TlsPem>, RedisTlsError> {
    if files.ca.is_none() && files.client.is_none() {
        return Ok(None);
    }
    let named = |key| move |error| RedisTlsError { key, error };
    let mut roots = RootCertStore::empty();
    let ca = match &files.ca {
        None => None,
        Some(path) => {
            let pem = read(path).map_err(named("tls_ca"))?;
            for cert in certificates_in(path, &pem).map_err(named("tls_ca"))? {
                roots.add(cert).map_err(|err| RedisTlsError {
                    key: "tls_ca",
                    error: TlsError {
                        file: path.clone(),
                        why: format!("not a usable CA certificate: {err}"),
                    },
                })?;
            }
            Some(pem)
        }
    };
    let client = match &files.client {
        None => None,
        Some(files) => {
            let cert = read(&files.cert).map_err(named("tls_cert"))?;
            let key = read(&files.key).map_err(named("tls_key"))?;
            let chain = certificates_in(&files.cert, &cert).map_err(named("tls_cert"))?;
            let private = private_key_in(&files.key, &key).map_err(named("tls_key"))?;
            // What the redis crate does with them at each connect, done once now.
            let unusable = |why: String| RedisTlsError {
                key: "tls_key",
                error: TlsError {
                    file: files.key.clone(),
                    why,
                },
            };
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|err| unusable(err.to_string()))?
                .with_root_certificates(Arc::new(roots))
                .with_client_auth_cert(chain, private)
                .map_err(|err| {
                    unusable(format!("does not go with {}: {err}", files.cert.display()))
                })?;
            Some(ClientPem { cert, key })
        }
    };
    Ok(Some(TlsPem { ca, client }))
}

/// [`read_files`] on a thread of its own, given up after `deadline`: a file that never
/// answers (a FIFO, a hung network file system) must not hold a reload, nor the serve loop
/// beside it.
///
/// # Errors
/// As [`read_files`]; also a read that takes longer than `deadline`, named as the first file.
pub async fn read_files_off_thread(
    files: RedisTlsFiles,
    deadline: Duration,
) -> Result<Option<TlsPem>, RedisTlsError> {
    let (key, first) = match (&files.ca, &files.client) {
        (Some(ca), _) => ("tls_ca", ca.clone()),
        (None, Some(client)) => ("tls_cert", client.cert.clone()),
        (None, None) => return Ok(None),
    };
    read_off_thread("redis TLS files reader", deadline, move || {
        read_files(&files)
    })
    .await
    .unwrap_or_else(|failure| {
        Err(RedisTlsError {
            key,
            error: TlsError {
                file: first,
                why: failure.to_string(),
            },
        })
    })
}
