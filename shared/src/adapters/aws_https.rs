//! The AWS SDK clients' HTTP transport: reqwest (HTTP/1.1, rustls on aws-lc) trusting only
//! the roots it is given. The SDK's own client adds HTTP/2 (h2) and a second hyper and
//! rustls stack to every function, about 0.7 MB of a binary, for a protocol DynamoDB and
//! Secrets Manager are not spoken in here; reqwest is in the binary anyway, for identity
//! providers' keys (`scripts/measure-cold-start` reports the sizes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
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
    /// A client that trusts exactly the PEM certificates in `roots_pem`.
    pub fn trusting(roots_pem: &[u8]) -> Result<Self, reqwest::Error> {
        Ok(Self {
            roots: reqwest::Certificate::from_pem_bundle(roots_pem)?,
            connectors: Mutex::default(),
        })
    }

    fn connector(&self, (connect, read): Timeouts) -> SharedHttpConnector {
        let mut builder = reqwest::Client::builder()
            .http1_only()
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

async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let body = request
        .body()
        .bytes()
        .ok_or_else(|| ConnectorError::other("streaming request bodies are not sent".into(), None))?
        .to_vec();
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| ConnectorError::other(e.into(), None))?;
    let mut outgoing = client.request(method, request.uri());
    for (name, value) in request.headers() {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.body(body).send().await.map_err(connector_error)?;
    let status = StatusCode::try_from(response.status().as_u16())
        .map_err(|e| ConnectorError::other(e.into(), None))?;
    let headers = response.headers().clone();
    let bytes = response.bytes().await.map_err(connector_error)?;
    let mut answer = HttpResponse::new(status, SdkBody::from(bytes));
    for (name, value) in &headers {
        // AWS answers with ASCII header values; anything else is not for the SDK.
        if let Ok(value) = value.to_str() {
            answer
                .headers_mut()
                .append(name.as_str().to_owned(), value.to_owned());
        }
    }
    Ok(answer)
}

/// Timeouts and I/O failures are the SDK's to retry; anything else is not.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}
