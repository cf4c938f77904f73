//! Serves the sample web app (`examples/web-app`) on an origin of its own, so that a
//! browser calls callsign cross-origin as a real app does and CORS is exercised for real.
//! Development only, on 127.0.0.1.
//!
//! It serves the app's three files by name and nothing else: with no path taken from the
//! request, there is no traversal to guard against, and no static-file crate is needed.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// Request path → (file under the app's folder, content type). `app.js` is the bundle the
/// app's `npm run build` makes.
const FILES: &[(&str, &str, &str)] = &[
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/index.html", "index.html", "text/html; charset=utf-8"),
    ("/app.js", "dist/app.js", "text/javascript; charset=utf-8"),
    ("/style.css", "style.css", "text/css; charset=utf-8"),
];

fn answer(status: StatusCode, content_type: &str, body: Bytes) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(body))
        .expect("static headers")
}

async fn file(dir: &std::path::Path, method: &Method, path: &str) -> hyper::Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            text,
            Bytes::from_static(b"GET only\n"),
        );
    }
    let Some((_, name, content_type)) = FILES.iter().find(|(route, _, _)| *route == path) else {
        return answer(
            StatusCode::NOT_FOUND,
            text,
            Bytes::from_static(b"not part of the sample\n"),
        );
    };
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => answer(StatusCode::OK, content_type, Bytes::from(bytes)),
        Err(e) => answer(
            StatusCode::NOT_FOUND,
            text,
            Bytes::from(format!(
                "{name}: {e} (build the app first: cd examples/web-app && npm ci && npm run build)\n"
            )),
        ),
    }
}

/// Serves the app from `dir` until the process ends.
pub async fn serve(listener: TcpListener, dir: PathBuf) {
    let dir = std::sync::Arc::new(dir);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let dir = dir.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let dir = dir.clone();
                async move {
                    Ok::<_, Infallible>(file(&dir, request.method(), request.uri().path()).await)
                }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "sample app connection closed with an error");
            }
        });
    }
}
