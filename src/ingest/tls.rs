//! The HTTPS listener (`[server.tls]`): rustls with ring, HTTP/1.1 by ALPN, TLS 1.2 and 1.3
//! (or 1.3 only). The certificate chain and key are read at start, where a bad file stops sluice
//! with a problem naming its key, and read again whenever either file's modification time or
//! size changes (cert-manager and certbot replace them in place): new connections get the new
//! pair, open ones keep theirs. A pair that does not load (half-written, key and certificate
//! not matching) is logged and the one in force kept, so a botched renewal never takes the
//! listener down.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::{TlsConfig, TlsVersion};

/// Why a certificate and key could not be loaded; names the key of the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct TlsError {
    pub key: &'static str,
    pub problem: String,
}

fn problem(key: &'static str, problem: impl Into<String>) -> TlsError {
    TlsError {
        key,
        problem: problem.into(),
    }
}

/// Reads a certificate chain and its private key, and checks that they belong together.
pub fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    const CERT: &str = "server.tls.cert_file";
    const KEY: &str = "server.tls.key_file";
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| problem(CERT, format!("cannot read {}: {e}", cert_file.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| problem(CERT, format!("{}: {e}", cert_file.display())))?;
    if chain.is_empty() {
        let shown = cert_file.display();
        return Err(problem(CERT, format!("{shown} holds no PEM certificate")));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        let shown = key_file.display();
        problem(KEY, format!("{shown} holds no usable PEM private key: {e}"))
    })?;
    CertifiedKey::from_der(chain, key, &provider::default_provider()).map_err(|e| {
        let shown = key_file.display();
        problem(
            KEY,
            format!("{shown} does not go with the certificate in server.tls.cert_file: {e}"),
        )
    })
}

/// The pair in force, replaced when the files change.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// The listener's TLS side: the acceptor, and the pair it serves.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    current: Arc<Current>,
}

impl Tls {
    /// Loads the pair and builds the acceptor; fails naming the key of a bad file.
    pub fn new(config: &TlsConfig) -> Result<Tls, TlsError> {
        let pair = load(&config.cert_file, &config.key_file)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(pair))));
        let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
            TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::V1_3 => &[&rustls::version::TLS13],
        };
        let mut server =
            ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_protocol_versions(versions)
                .map_err(|e| problem("server.tls.min_version", e.to_string()))?
                .with_no_client_auth()
                .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            current,
        })
    }

    /// Follows the files from a tokio task: every `config.recheck`, a changed modification time
    /// or size of either file loads the pair again.
    pub fn follow(&self, config: &TlsConfig) {
        let current = Arc::clone(&self.current);
        let (cert, key) = (config.cert_file.clone(), config.key_file.clone());
        let every = config.recheck;
        tokio::spawn(async move {
            let mut seen = stamps(&cert, &key);
            loop {
                tokio::time::sleep(every).await;
                let now = stamps(&cert, &key);
                if now == seen {
                    continue;
                }
                seen = now;
                reload(&current, &cert, &key);
            }
        });
    }
}

fn reload(current: &Current, cert: &Path, key: &Path) {
    match load(cert, key) {
        Ok(pair) => {
            *current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
            crate::metrics::tls_reloads("loaded").increment(1);
            tracing::info!(cert_file = %cert.display(), "TLS certificate loaded again");
        }
        Err(e) => {
            crate::metrics::tls_reloads("failed").increment(1);
            tracing::warn!(
                error = %e,
                "TLS certificate files changed but do not load; the previous pair stays in force"
            );
        }
    }
}

type Stamp = Option<(SystemTime, u64)>;

fn stamps(cert: &Path, key: &Path) -> (Stamp, Stamp) {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    (stamp(cert), stamp(key))
}
