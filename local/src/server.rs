//! The local server's front door: hyper on 127.0.0.1, every request through the same
//! handler the Lambda functions run. Hardened for a machine where others may reach it:
//! requests must arrive within time limits (headers, then body), open connections are
//! capped, and failing accepts (file descriptors exhausted) back off instead of spinning.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use callsign::http::{self as api, ApiError, ApiRequest, App, Served};
use http::StatusCode;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;

use crate::dev_oidc::DevIssuer;

/// How long a client may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From connecting (or the end of the previous response) to the end of the headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body; also how long a write of an
    /// answer may stall (a client that stops reading).
    pub body_timeout: Duration,
    pub max_connections: usize,
    /// Whether connections speak TLS (for the scheme in discovery metadata).
    pub tls: bool,
}

/// Accept errors come in bursts (descriptors exhausted): each burst is logged once, and
/// the loop waits longer between tries, up to a second, instead of spinning.
#[derive(Default)]
struct AcceptFailures {
    in_burst: u64,
}

impl AcceptFailures {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const LONGEST_PAUSE: Duration = Duration::from_secs(1);

    /// How long to wait before the next try.
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        if self.in_burst == 0 {
            tracing::warn!(%error, "accept failed; backing off until it succeeds again");
        }
        self.in_burst += 1;
        let doublings = u32::try_from(self.in_burst - 1).unwrap_or(u32::MAX).min(7);
        (Self::FIRST_PAUSE * 2u32.pow(doublings)).min(Self::LONGEST_PAUSE)
    }

    fn succeeded(&mut self) {
        if self.in_burst > 0 {
            tracing::info!(failed = self.in_burst, "accepting connections again");
            self.in_burst = 0;
        }
    }
}

/// One connection, plain or TLS, until it closes or the server shuts down.
async fn serve_connection<IO, S>(
    io: TokioIo<IO>,
    service: S,
    watcher: Watcher,
    limits: Limits,
) -> Result<(), String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // hyper enforces the header timeout only with a timer.
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    watcher.watch(connection).await.map_err(|e| e.to_string())
}

pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    dev_issuer: Option<Arc<DevIssuer>>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
) -> Result<(), crate::Error> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut failures = AcceptFailures::default();
    loop {
        // At the cap, wait for a connection to close before accepting another (the
        // kernel's backlog holds the next ones meanwhile).
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit?,
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => {
                failures.succeeded();
                connection
            }
            Err(error) => {
                let pause = failures.failed(&error);
                drop(permit);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        let (app, dev_issuer) = (app.clone(), dev_issuer.clone());
        let service = service_fn(move |request| {
            let (app, dev_issuer) = (app.clone(), dev_issuer.clone());
            async move {
                Ok::<_, Infallible>(route(&app, dev_issuer.as_deref(), peer, request, limits).await)
            }
        });
        // hyper times out only reads: a client that stops reading its answers would hold
        // its connection, and a slot, for good. A write that stalls for the body timeout
        // ends the connection.
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.body_timeout));
        let stream = Box::pin(stream);
        let (watcher, tls) = (graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let served = match tls {
                None => serve_connection(TokioIo::new(stream), service, watcher, limits).await,
                // The handshake counts against the header timeout, like the headers.
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            serve_connection(TokioIo::new(stream), service, watcher, limits).await
                        }
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("TLS handshake timed out".to_owned()),
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    tracing::info!("shutting down");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// One request, through the same handler the Lambda functions run.
async fn route(
    app: &Arc<App>,
    dev_issuer: Option<&DevIssuer>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
    limits: Limits,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // Read at most one byte past the limit: enough for the handler to answer 413.
    let read = Limited::new(body, api::MAX_BODY_BYTES + 1).collect();
    let body = match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Bytes::from(vec![0; api::MAX_BODY_BYTES + 1]),
        // Broken framing (a bad chunk size, a body cut short): the connection cannot carry
        // another request.
        Ok(Err(_)) => {
            return closing(
                &parts.headers,
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestBody",
                    "The request body could not be read.",
                ),
            );
        }
        Err(_) => {
            let seconds = limits.body_timeout.as_secs();
            return closing(
                &parts.headers,
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "RequestTimeout",
                    format!("The request body did not arrive within {seconds} seconds."),
                ),
            );
        }
    };
    if let Some(response) = dev_issuer
        .and_then(|issuer| issuer.handle(&parts.method, &parts.uri, &parts.headers, &body))
    {
        return response.map(Full::new);
    }
    let mut headers = parts.headers;
    // Tells discovery metadata which scheme this front door speaks.
    let scheme = if limits.tls { "https" } else { "http" };
    headers
        .entry("x-forwarded-proto")
        .or_insert(http::HeaderValue::from_static(scheme));
    let request = ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body,
        source_ip: Some(peer.ip().to_string()),
        gateway_claims: None,
        request_id: Some(uuid::Uuid::new_v4().to_string()),
    };
    api::handle(app, Served::All, request).await.map(Full::new)
}

/// `error`'s answer to a request whose body never arrived whole, closing the connection
/// after it. It echoes `x-ms-client-request-id`, as every answer does.
fn closing(request: &http::HeaderMap, error: ApiError) -> hyper::Response<Full<Bytes>> {
    tracing::info!(
        status = error.status.as_u16(),
        code = error.code,
        "request body refused"
    );
    let mut response = error.into_response().map(Full::new);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    if let Some(id) = request.get("x-ms-client-request-id") {
        headers.insert("x-ms-client-request-id", id.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_up_to_a_second_and_reset() {
        let mut failures = AcceptFailures::default();
        let error = std::io::Error::other("too many open files");
        let pauses: Vec<Duration> = (0..10).map(|_| failures.failed(&error)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*pauses.last().unwrap(), Duration::from_secs(1));
        failures.succeeded();
        assert_eq!(failures.failed(&error), Duration::from_millis(10));
    }
}
