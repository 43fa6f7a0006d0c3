//! TLS to etcd (`https://` members): the cluster's CA, and a client
//! certificate when the members require one (`--client-cert-auth`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// The PEM files of a TLS connection to etcd.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// The CA that signed the members' certificates.
    pub ca: PathBuf,
    /// This client's certificate (with `key`), if the members ask for one.
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// The rustls configuration these files make.
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let bad = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
            Error::Config(format!("TLS {what} {}: {e}", path.display()))
        };
        let mut roots = rustls::RootCertStore::empty();
        let cas =
            CertificateDer::pem_file_iter(&self.ca).map_err(|e| bad("CA file", &self.ca, &e))?;
        for ca in cas {
            let ca = ca.map_err(|e| bad("CA file", &self.ca, &e))?;
            roots
                .add(ca)
                .map_err(|e| bad("CA certificate in", &self.ca, &e))?;
        }
        if roots.is_empty() {
            return Err(bad("CA file", &self.ca, &"no certificate in it"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match (&self.cert, &self.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| bad("certificate file", cert, &e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("certificate file", cert, &e))?;
                let key_der =
                    PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key file", key, &e))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| bad("certificate and key", cert, &e))?
            }
            _ => {
                return Err(Error::Config(
                    "TLS: give a client certificate and its key together".into(),
                ))
            }
        };
        Ok(Arc::new(config))
    }
}
