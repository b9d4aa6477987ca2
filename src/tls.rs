//! TLS for the client-facing ports (docs/contract.md §6): the PEM files of `[server.tls]`
//! turned into rustls server configs (one per port, for ALPN), and an acceptor whose config a reload replaces.
//!
//! tonic's own TLS fixes its certificates when the server is built; rotating them on SIGHUP
//! needs the handshake in our hands. [`TlsAcceptor`] holds the running config in an
//! [`ArcSwap`]: each new connection takes the configs current at its accept, a reload swaps in
//! a new one, and connections already open keep the one they started with. The whole
//! `ServerConfig` is swapped rather than only a certificate resolver because the client CA
//! (the verifier) is re-read too. `arc-swap` rather than a lock: it is plumbing read on every
//! accept and written once per reload, not balancing state (which lives in actors), and a
//! lock-free load keeps accepts from ever waiting on a reload.
//!
//! The one crypto provider is ring, named explicitly here, so that nothing depends on which
//! provider happens to be the process default.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;
use crate::off_thread::read_off_thread;

/// A TLS file that does not load, named with why.
#[derive(Debug)]
pub struct TlsError {
    pub file: PathBuf,
    pub why: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS file {}: {}", self.file.display(), self.why)
    }
}

impl std::error::Error for TlsError {}

/// The process-wide crypto provider, ring: the one in the dependency graph.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process default, for whatever asks rustls for the default (a client config
/// built without a provider). Harmless when already installed.
pub fn install_default_provider() {
    // Err only when a default is already installed, which is what we want anyway.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The ports that speak TLS; they differ only in the protocol they announce (ALPN).
#[derive(Debug, Clone, Copy)]
pub enum Port {
    /// gRPC: HTTP/2.
    Grpc,
    /// HTTP/JSON: HTTP/1.1.
    Http,
}

/// One config per port, from the same files.
struct Configs {
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
}

impl Configs {
    fn load(files: &TlsFiles) -> Result<Configs, TlsError> {
        let common = server_config(files)?;
        let with_alpn = |protocol: &[u8]| {
            let mut config = common.clone();
            config.alpn_protocols = vec![protocol.to_vec()];
            Arc::new(config)
        };
        Ok(Configs {
            grpc: with_alpn(b"h2"),
            http: with_alpn(b"http/1.1"),
        })
    }
}

/// Reads the files of `[server.tls]` into a server config (without ALPN).
///
/// # Errors
/// The first file that is missing, unreadable or not PEM, or a key that does not match the
/// certificate (named as the key file).
fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError {
            file: files.cert.clone(),
            why: err.to_string(),
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|err| TlsError {
                    file: ca.clone(),
                    why: format!("not a usable CA certificate: {err}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|err| TlsError {
                    file: ca.clone(),
                    why: err.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|err| TlsError {
            file: files.key.clone(),
            why: format!("does not go with {}: {err}", files.cert.display()),
        })
}

/// The raw bytes of `path`, with the error naming it.
///
/// Only a regular file, checked before opening it: opening a FIFO blocks until a writer comes,
/// which would hold the start or a reload.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    let failed = |why: String| TlsError {
        file: path.to_path_buf(),
        why,
    };
    let metadata = std::fs::metadata(path).map_err(|err| failed(format!("cannot read: {err}")))?;
    if !metadata.is_file() {
        return Err(failed("cannot read: not a regular file".to_string()));
    }
    std::fs::read(path).map_err(|err| failed(format!("cannot read: {err}")))
}

/// Every certificate in the PEM file `path`; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certificates_in(path, &read(path)?)
}

/// Every certificate in `bytes`, the contents of the PEM file `path`; at least one.
pub(crate) fn certificates_in(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError {
            file: path.to_path_buf(),
            why: format!("not PEM: {err}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError {
            file: path.to_path_buf(),
            why: "no PEM certificate in it".to_string(),
        });
    }
    Ok(certs)
}

/// The first private key in the PEM file `path`.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    private_key_in(path, &read(path)?)
}

/// The first private key in `bytes`, the contents of the PEM file `path`.
pub(crate) fn private_key_in(
    path: &Path,
    bytes: &[u8],
) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|err| TlsError {
        file: path.to_path_buf(),
        why: format!("no PEM private key in it: {err}"),
    })
}

/// Accepts TLS connections with the config current at each accept; cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    configs: Arc<ArcSwap<Configs>>,
}

impl TlsAcceptor {
    /// Loads the files once, at start.
    ///
    /// # Errors
    /// As [`server_config`].
    pub fn load(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor {
            configs: Arc::new(ArcSwap::from_pointee(Configs::load(files)?)),
        })
    }

    /// Re-reads the files for new connections; on an error the running config stays. The
    /// files are read on a thread of its own, given up after `deadline`: the serving thread
    /// never waits on a hung file system.
    ///
    /// # Errors
    /// As [`server_config`], or the read timed out (naming the certificate file).
    pub async fn reload_off_thread(
        &self,
        files: &TlsFiles,
        deadline: std::time::Duration,
    ) -> Result<(), TlsError> {
        let to_read = files.clone();
        let configs = read_off_thread("TLS files reader", deadline, move || {
            Configs::load(&to_read)
        })
        .await
        .map_err(|failure| TlsError {
            file: files.cert.clone(),
            why: failure.to_string(),
        })??;
        self.configs.store(Arc::new(configs));
        Ok(())
    }

    /// The acceptor for one new connection on `port`.
    pub fn current(&self, port: Port) -> tokio_rustls::TlsAcceptor {
        let configs = self.configs.load();
        tokio_rustls::TlsAcceptor::from(Arc::clone(match port {
            Port::Grpc => &configs.grpc,
            Port::Http => &configs.http,
        }))
    }
}
