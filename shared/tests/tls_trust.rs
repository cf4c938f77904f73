//! The AWS SDK clients' HTTPS client (`app::https_client`, a compiled-in root store) still
//! verifies certificates: a server whose certificate chains to no trusted root is refused.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS server on 127.0.0.1 with a self-signed certificate for `localhost`; its address.
async fn untrusted_server() -> std::net::SocketAddr {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // The client must give up during the handshake.
            let _ = acceptor.accept(stream).await;
        }
    });
    address
}

#[tokio::test]
async fn the_sdk_clients_refuse_a_certificate_no_trusted_root_vouches_for() {
    let address = untrusted_server().await;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(callsign::app::https_client())
        .endpoint_url(format!("https://localhost:{}", address.port()))
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let error = client
        .get_secret_value()
        .secret_id("anything")
        .send()
        .await
        .expect_err("an untrusted certificate must fail the call");
    let chain = format!("{:?}", error);
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate"),
        "{chain}"
    );
}

#[test]
fn the_trusted_roots_are_amazons_four_and_the_starfield_root_that_cross_signs_them() {
    let pem = std::str::from_utf8(callsign::app::AWS_ROOTS_PEM).unwrap();
    assert_eq!(
        pem.matches("-----BEGIN CERTIFICATE-----").count(),
        5,
        "{pem}"
    );
}
