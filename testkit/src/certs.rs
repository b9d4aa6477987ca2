//! Certificates made by the tests themselves (rcgen): a CA, server certificates for
//! `localhost` / `127.0.0.1` signed by it, client certificates for mTLS, certificates for
//! Redis nodes (which are servers and, to their replicas' masters and cluster peers, clients
//! too), written as PEM files into a temporary folder, and the `[server.tls]` lines that name
//! them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SerialNumber,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A CA whose certificates the tests hand out.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, in PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names to check");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("ring generates a key pair");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a self-signed CA"),
        }
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1 with serial number `serial`.
    pub fn server(&self, serial: u64) -> Leaf {
        self.leaf(
            vec!["localhost".to_string(), "127.0.0.1".to_string()],
            serial,
            &[ExtendedKeyUsagePurpose::ServerAuth],
        )
    }

    /// A Redis node's certificate for `localhost` and 127.0.0.1: a server's, and a client's for
    /// the connections it opens itself (replication, the cluster bus, a sentinel's).
    pub fn redis_node(&self) -> Leaf {
        self.leaf(
            vec!["localhost".to_string(), "127.0.0.1".to_string()],
            1,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A client certificate (for mTLS).
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(
            vec![name.to_string()],
            1,
            &[ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn leaf(&self, names: Vec<String>, serial: u64, usages: &[ExtendedKeyUsagePurpose]) -> Leaf {
        let mut params = CertificateParams::new(names).expect("valid test names");
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = usages.to_vec();
        let key = KeyPair::generate().expect("ring generates a key pair");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("the test CA signs");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The PEM files of one server's `[server.tls]`, in a temporary folder.
pub struct TlsDir {
    dir: tempfile::TempDir,
    pub ca: TestCa,
}

impl TlsDir {
    /// A CA, its server certificate (serial 1) as `server.crt`/`server.key` and the CA as
    /// `ca.crt`.
    pub fn new() -> TlsDir {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let tls = TlsDir {
            dir,
            ca: TestCa::new("status-server test CA"),
        };
        tls.write("ca.crt", &tls.ca.pem());
        tls.install_server(&tls.ca.server(1));
        tls
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` as the file `name` in the folder.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("writing a test PEM file");
    }

    /// Makes `leaf` the server's certificate (for a rotation).
    pub fn install_server(&self, leaf: &Leaf) {
        self.write("server.crt", &leaf.cert_pem);
        self.write("server.key", &leaf.key_pem);
    }

    /// `[server.tls]` naming the files; with `client_ca`, the CA file for mTLS.
    pub fn section(&self, client_ca: bool) -> String {
        let mut section = format!(
            "\n[server.tls]\ncert = {:?}\nkey = {:?}\n",
            self.path("server.crt"),
            self.path("server.key")
        );
        if client_ca {
            section.push_str(&format!("client_ca = {:?}\n", self.path("ca.crt")));
        }
        section
    }

    /// A client config trusting this CA, presenting `identity` when `Some`.
    pub fn client_config(&self, identity: Option<&Leaf>) -> ClientTlsConfig {
        client_config(&self.ca.pem(), identity)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TlsDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A tonic client config trusting `ca_pem` for `localhost`, with `identity` when `Some`.
pub fn client_config(ca_pem: &str, identity: Option<&Leaf>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    match identity {
        Some(leaf) => config.identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem)),
        None => config,
    }
}
