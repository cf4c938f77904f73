//! API Gateway (HTTP API, payload 2.0) requests to `ApiRequest` and back, and sample
//! events re-signed for local invokes.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use lambda_http::{Body, RequestExt};

use crate::domain::keys::KeyError;
use crate::http::{self, ApiRequest, ApiResponse, App, Served};

pub fn to_api_request(request: lambda_http::Request) -> ApiRequest {
    // The raw path as API Gateway delivered it (lambda_http's URI is re-normalised).
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let query = request.uri().query().map(str::to_owned);
    let (source_ip, gateway_claims, request_id) = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => (
            context.http.source_ip.clone(),
            context
                .authorizer
                .as_ref()
                .and_then(|authorizer| authorizer.jwt.as_ref())
                .and_then(|jwt| serde_json::to_value(&jwt.claims).ok()),
            context.request_id.clone(),
        ),
        _ => (None, None, None),
    };
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    ApiRequest {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        source_ip,
        gateway_claims,
        request_id,
    }
}

pub fn to_lambda_response(response: ApiResponse) -> lambda_http::Response<Body> {
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(bytes) => Body::Binary(bytes.into_bytes()),
        }
    };
    lambda_http::Response::from_parts(parts, body)
}

/// Serves one Lambda request with `app`.
pub async fn handle(
    app: &Arc<App>,
    served: Served,
    request: lambda_http::Request,
) -> lambda_http::Response<Body> {
    to_lambda_response(http::handle(app, served, to_api_request(request)).await)
}

/// Re-signs an API Gateway (payload 2.0) event with `access_key` at `now`, so that a sample
/// event from `events/` passes HMAC authentication (`callsign-local sign-event`, tests).
pub fn sign_event(
    event: &mut serde_json::Value,
    access_key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), KeyError> {
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let method = text("/requestContext/http/method");
    let host = text("/headers/host");
    let query = text("/rawQueryString");
    let mut path_and_query = text("/rawPath");
    if !query.is_empty() {
        path_and_query = format!("{path_and_query}?{query}");
    }
    let body = text("/body");
    let body = if event["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(|_| KeyError::Invalid("event body is not base64".into()))?
    } else {
        body.into_bytes()
    };
    let date = http::hmac::http_date(now);
    let (date, hash, authorization) =
        http::hmac::sign_request(access_key, &method, &path_and_query, &host, &date, &body)?;
    let headers = &mut event["headers"];
    headers["x-ms-date"] = date.into();
    headers["x-ms-content-sha256"] = hash.into();
    headers["authorization"] = authorization.into();
    Ok(())
}
