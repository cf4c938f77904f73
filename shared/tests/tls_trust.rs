//! The AWS SDK clients' HTTP transport (`app::https_client`: reqwest, a compiled-in root
//! store) still verifies certificates (a server whose certificate chains to no trusted
//! root is refused), has an answer cut off retried, and follows no redirect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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
    let client = secrets_client(&format!("https://localhost:{}", address.port())).await;
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
    let names_in = |der: &[u8], name: &str| {
        der.windows(name.len())
            .any(|window| window == name.as_bytes())
    };
    let roots = callsign::app::AWS_ROOTS;
    for n in 1..=4 {
        let name = format!("Amazon Root CA {n}");
        assert_eq!(
            roots.iter().filter(|der| names_in(der, &name)).count(),
            1,
            "{name}"
        );
    }
    let starfield = "Starfield Services Root Certificate Authority - G2";
    // The Starfield root names itself as subject and issuer: one certificate.
    assert_eq!(
        roots.iter().filter(|der| names_in(der, starfield)).count(),
        1
    );
    assert_eq!(roots.len(), 5);
    let mut store = tokio_rustls::rustls::RootCertStore::empty();
    for der in roots {
        store
            .add(CertificateDer::from(der.to_vec()))
            .expect("each root is a trust anchor");
    }
}

/// A plain-HTTP server on 127.0.0.1 that answers its n-th connection with `answers[n]`
/// (the last one again after that) and counts the connections; its address.
async fn scripted_server(answers: Vec<String>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let answer = &answers[n.min(answers.len() - 1)];
            let mut request = vec![0u8; 16 * 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(answer.as_bytes()).await;
            // Closing cuts a short body off.
        }
    });
    (address, served)
}

/// A Secrets Manager client on the production transport (`common::aws_config`).
async fn secrets_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&common::aws_config(endpoint).await)
}

const SECRET: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n\
    content-length: 50\r\nconnection: close\r\n\r\n{\"Name\":\"s\",\"SecretString\":\"kept\",\"VersionId\":\"v\"}";

/// As with the SDK's own client, the answer's body reaches the SDK as a stream, so an
/// answer cut off is a transient error the SDK retries (never a truncated success).
#[tokio::test]
async fn an_answer_cut_off_is_retried() {
    // Headers promise 50 bytes; 10 arrive before the connection closes.
    const CUT: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n\
        content-length: 50\r\nconnection: close\r\n\r\n{\"Name\":\"s";
    let (address, served) = scripted_server(vec![CUT.into(), SECRET.into()]).await;
    let secret = secrets_client(&format!("http://{address}"))
        .await
        .get_secret_value()
        .secret_id("s")
        .send()
        .await
        .expect("the SDK retries a cut-off answer");
    assert_eq!(secret.secret_string(), Some("kept"));
    assert_eq!(served.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (elsewhere, reached) = scripted_server(vec![SECRET.into()]).await;
    let redirect = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere}/\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    let (address, _) = scripted_server(vec![redirect]).await;
    let outcome = secrets_client(&format!("http://{address}"))
        .await
        .get_secret_value()
        .secret_id("s")
        .send()
        .await;
    assert!(
        outcome.is_err(),
        "a 307 is an error to the SDK: {outcome:?}"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "signed headers went to the redirect's host"
    );
}
