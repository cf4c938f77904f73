//! An HTTP request as a function (or the local server) received it, whatever the front
//! door, and the response type.

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::Value;

use super::hmac;
use crate::domain::keys::KeyError;

pub type ApiResponse = http::Response<Bytes>;

/// An HTTP request as the function (or local server) received it. Its Debug output leaves
/// out headers and body: they carry signatures and tokens.
#[derive(Clone, Default)]
pub struct ApiRequest {
    pub method: Method,
    /// The raw path: percent-encoded or already decoded, depending on the front door.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address as the front door saw it (API Gateway's `sourceIp`).
    pub source_ip: Option<String>,
    /// Claims verified by API Gateway's JWT authorizer, if one is in front.
    pub gateway_claims: Option<Value>,
    /// The front door's id for this request (API Gateway's `requestId`), for the logs.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl ApiRequest {
    /// A request signed the way the ACS SDKs sign, for tests, benchmarks and tools.
    /// `path_and_query` is exactly what goes on the wire.
    pub fn signed(
        access_key: &str,
        method: Method,
        path_and_query: &str,
        host: &str,
        body: &str,
    ) -> Result<Self, KeyError> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (path_and_query.to_owned(), None),
        };
        let date = hmac::http_date(Utc::now());
        let (date, hash, authorization) = hmac::sign_request(
            access_key,
            method.as_str(),
            path_and_query,
            host,
            &date,
            body.as_bytes(),
        )?;
        let value = |v: &str| {
            HeaderValue::from_str(v).map_err(|_| KeyError::Invalid("not a header value".into()))
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, value(host)?);
        headers.insert("x-ms-date", value(&date)?);
        headers.insert("x-ms-content-sha256", value(&hash)?);
        headers.insert(header::AUTHORIZATION, value(&authorization)?);
        if !body.is_empty() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Ok(Self {
            method,
            path,
            query,
            headers,
            body: Bytes::from(body.to_owned()),
            ..Self::default()
        })
    }
}
