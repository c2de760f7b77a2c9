//! Optional HTTPS on the relay itself: the rustls server configuration from PEM files.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfigError, TlsPaths};

/// Loads the certificate chain and key; a problem names the variable to fix.
pub fn server_config(paths: &TlsPaths) -> Result<rustls::ServerConfig, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| ConfigError::new("RELAY_TLS_CERT_PATH", format!("{}: {e}", paths.cert.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            "RELAY_TLS_CERT_PATH",
            format!("{} holds no PEM certificate", paths.cert.display()),
        ));
    }
    // The key's own error text could quote key material; say only where and what.
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|_| {
        ConfigError::new(
            "RELAY_TLS_KEY_PATH",
            format!("{} is not a readable PEM private key", paths.key.display()),
        )
    })?;
    rustls::ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("RELAY_TLS_CERT_PATH", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ConfigError::new(
                "RELAY_TLS_KEY_PATH",
                format!("certificate and key do not fit together: {e}"),
            )
        })
}
