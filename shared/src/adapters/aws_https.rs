//! The AWS SDK clients' HTTP transport: reqwest (HTTP/1.1, rustls on aws-lc) trusting only
//! the roots it is given. The SDK's own client brings HTTP/2 (h2), which these calls do
//! not need, and a second hyper and rustls stack: `issue-token` went from 10.9 MB to
//! 9.9 MB without them (`scripts/measure-cold-start` reports sizes). reqwest is in the
//! binary anyway, for identity providers' keys.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// Connect and read timeouts, as the SDK's settings give them.
type Timeouts = (Option<Duration>, Option<Duration>);

/// An [`HttpClient`] for the SDK clients: one reqwest client (and its connection pool)
/// per distinct timeout settings, made on first use and kept.
#[derive(Debug)]
pub struct ReqwestHttpClient {
    roots: Vec<reqwest::Certificate>,
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl ReqwestHttpClient {
    /// A client that trusts exactly these DER certificates (DER, not PEM: decoding PEM
    /// cost a cold start 0.2 M instructions).
    pub fn trusting(roots: &[&[u8]]) -> Result<Self, reqwest::Error> {
        Ok(Self {
            roots: roots
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<_, _>>()?,
            connectors: Mutex::default(),
        })
    }

    fn connector(&self, (connect, read): Timeouts) -> SharedHttpConnector {
        // The SDK never follows redirects: its signed headers must not go to another host.
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_only(self.roots.iter().cloned());
        if let Some(timeout) = connect {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = read {
            builder = builder.read_timeout(timeout);
        }
        SharedHttpConnector::new(Connector(builder.build().map_err(Arc::new)))
    }
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let connector = self.connector(timeouts);
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

/// A reqwest client, or why it could not be built (reported by every call).
#[derive(Debug)]
struct Connector(Result<reqwest::Client, Arc<reqwest::Error>>);

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| ConnectorError::other(e.into(), None))?;
            send(&client, request).await
        })
    }
}

/// The request is sent whole (the SDK's bodies here are in memory); the answer's body is
/// handed to the SDK as a stream, so that a failure while reading it is the SDK's to
/// retry and its stalled-stream protection applies, as with its own client.
async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let malformed = |e: BoxError| ConnectorError::other(e, None);
    let (parts, body) = request
        .try_into_http1x()
        .map_err(|e| malformed(e.into()))?
        .into_parts();
    let body = body
        .bytes()
        .ok_or_else(|| malformed("streaming request bodies are not sent".into()))?
        .to_vec();
    let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|e| malformed(e.into()))?;
    let response = client.execute(request).await.map_err(connector_error)?;
    let response = http::Response::from(response).map(SdkBody::from_body_1_x);
    HttpResponse::try_from(response).map_err(|e| malformed(e.into()))
}

/// Timeouts and I/O failures are the SDK's to retry; anything else is not.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}
