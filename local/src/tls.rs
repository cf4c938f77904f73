//! Opt-in HTTPS for the local server: a self-signed certificate for 127.0.0.1 and
//! localhost, made at start with rcgen, so that ACS code that builds its client from a
//! connection string (the SDKs always rebuild the endpoint as https) and bearer
//! credentials (refused over plain http) reach it.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// The certificate clients must trust, PEM.
    pub certificate_pem: String,
}

/// A fresh self-signed certificate (and key, kept in memory only) for this run.
pub fn self_signed() -> Result<Tls, crate::Error> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        certificate_pem: certified.cert.pem(),
    })
}

/// Writes the certificate where clients can be pointed at it. It holds no secret, but
/// clients trust whatever is there: it is written as the ready file is, so a file or link
/// planted at the path beforehand is replaced, never written through or reused.
pub fn write_certificate(tls: &Tls, path: &Path) -> std::io::Result<()> {
    crate::ready_file::write(path, &tls.certificate_pem)
}
