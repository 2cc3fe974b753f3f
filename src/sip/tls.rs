//! The TLS material of SIP over TLS: the files of `tls:` read into rustls configurations,
//! with the `ring` provider only. The configuration loader has checked that the files are
//! readable PEM of the right kind; this module parses them for real (a key that does not
//! match its certificate, a broken base64 block) and is what `hotline check` and the
//! transport both call, so a bad file stops the start with a message naming it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;

use crate::config::TlsConfig;

/// Why the TLS files cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("tls: no certificate and key configured (tls.cert and tls.key)")]
    NoCertificate,
    #[error("tls: cannot read the certificates in '{path}': {why}")]
    Certificates { path: PathBuf, why: String },
    #[error("tls: '{path}' holds no certificate")]
    NoCertificateIn { path: PathBuf },
    #[error("tls: cannot read the private key in '{path}': {why}")]
    Key { path: PathBuf, why: String },
    #[error("tls: the certificate and key cannot be used together: {0}")]
    Server(rustls::Error),
    #[error("tls: the certificate authority in '{path}' cannot be used: {why}")]
    Ca { path: PathBuf, why: String },
    #[error("tls: {0}")]
    Client(rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file, in order.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::Certificates {
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificateIn {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// What a `tls:` listener presents: `tls.cert` and `tls.key`.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let (Some(cert), Some(key)) = (&tls.cert, &tls.key) else {
        return Err(TlsError::NoCertificate);
    };
    let chain = certificates(cert)?;
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.clone(),
        why: e.to_string(),
    })?;
    let provider = provider();
    // Parsed on its own first, so that a broken key is blamed on the key's file.
    provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::Key {
            path: key_path.clone(),
            why: e.to_string(),
        })?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Server)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Server)?;
    Ok(Arc::new(config))
}

/// What a connection we open checks the server with: the authorities of `tls.ca`.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(|e| TlsError::Ca {
            path: ca.to_path_buf(),
            why: e.to_string(),
        })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Client)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Parses every file `tls:` names, as the transport will: `hotline check` and the start
/// report a broken one before any socket is opened.
pub fn check(tls: &TlsConfig) -> Result<(), TlsError> {
    if tls.cert.is_some() || tls.key.is_some() {
        server_config(tls)?;
    }
    if let Some(ca) = &tls.ca {
        client_config(ca)?;
    }
    Ok(())
}
