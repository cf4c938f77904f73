//! The admin API over HTTP, independent of how requests arrive (Lambda or the local
//! server): routing, HMAC authentication, api-version, body parsing, the ACS error
//! envelope. Each handler parses, calls one use case and maps the result.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::auth::hmac::{self, HmacRequest};
use crate::identity::CustomId;
use crate::service::{IdentityService, ServiceError};
use crate::store::StoreError;

pub mod front;
mod identities;
mod verification;

use identities::{created_body, identity_body, identity_id, parse_create, parse_issue, token_body};

pub const SUPPORTED_API_VERSIONS: &[&str] = &[
    "2021-03-07",
    "2021-10-31-preview",
    "2021-11-01",
    "2022-06-01",
    "2022-10-01",
    "2023-08-01",
    "2023-10-01",
    "2025-03-02-preview",
    "2025-06-30",
];
/// Bodies of this API are a few hundred bytes; anything much larger is refused unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Shorter than any rotation overlap (the previous key lives ≥ 24 h after a rotation), so
/// verifiers that honour it always know the key of any live token.
pub const JWKS_MAX_AGE_SECONDS: u32 = 300;
const CLIENT_REQUEST_ID: &str = "x-ms-client-request-id";

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
    ) -> Result<Self, crate::keys::KeyError> {
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
            HeaderValue::from_str(v)
                .map_err(|_| crate::keys::KeyError::Invalid("not a header value".into()))
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

pub type ApiResponse = http::Response<Bytes>;

/// The operations of the admin API; each Lambda function serves a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateIdentity,
    GetIdentity,
    DeleteIdentity,
    IssueToken,
    RevokeTokens,
    LookupCustomId,
    Jwks,
    OpenIdConfiguration,
    IntrospectToken,
    UserToken,
    GetUser,
    DeleteUser,
    GuestToken,
}

impl Operation {
    pub const IDENTITIES: &'static [Operation] = &[
        Operation::CreateIdentity,
        Operation::GetIdentity,
        Operation::DeleteIdentity,
    ];
    pub const ISSUE_TOKEN: &'static [Operation] = &[Operation::IssueToken];
    pub const REVOKE_TOKENS: &'static [Operation] = &[Operation::RevokeTokens];
    pub const CUSTOM_ID_LOOKUP: &'static [Operation] = &[Operation::LookupCustomId];
    pub const JWKS: &'static [Operation] = &[Operation::Jwks, Operation::OpenIdConfiguration];
    pub const INTROSPECT: &'static [Operation] = &[Operation::IntrospectToken];
    pub const FRONT: &'static [Operation] = &[
        Operation::UserToken,
        Operation::GetUser,
        Operation::DeleteUser,
        Operation::GuestToken,
    ];
    pub const ALL: &'static [Operation] = &[
        Operation::CreateIdentity,
        Operation::GetIdentity,
        Operation::DeleteIdentity,
        Operation::IssueToken,
        Operation::RevokeTokens,
        Operation::LookupCustomId,
        Operation::Jwks,
        Operation::OpenIdConfiguration,
        Operation::IntrospectToken,
        Operation::UserToken,
        Operation::GetUser,
        Operation::DeleteUser,
        Operation::GuestToken,
    ];

    /// The admin side (ACS operations, introspection): HMAC-signed, with an api-version.
    /// The rest is public (keys) or authenticates its users itself (the end-user front).
    pub fn is_admin(self) -> bool {
        !self.is_front() && !matches!(self, Operation::Jwks | Operation::OpenIdConfiguration)
    }

    pub fn is_front(self) -> bool {
        Operation::FRONT.contains(&self)
    }

    pub fn route_key(self) -> &'static str {
        match self {
            Operation::CreateIdentity => "POST /identities",
            Operation::GetIdentity => "GET /identities/{id}",
            Operation::DeleteIdentity => "DELETE /identities/{id}",
            Operation::IssueToken => "POST /identities/{id}/:issueAccessToken",
            Operation::RevokeTokens => "POST /identities/{id}/:revokeAccessTokens",
            Operation::LookupCustomId => "GET /customIds/{customId}",
            Operation::Jwks => "GET /.well-known/jwks.json",
            Operation::OpenIdConfiguration => "GET /.well-known/openid-configuration",
            Operation::IntrospectToken => "POST /tokens/:introspect",
            Operation::UserToken => "POST /user/token",
            Operation::GetUser => "GET /user",
            Operation::DeleteUser => "DELETE /user",
            Operation::GuestToken => "POST /guest/token",
        }
    }
}

/// Everything a handler needs, built once per cold start.
pub struct App {
    pub service: IdentityService,
    pub public_hosts: Vec<String>,
    /// Base URL for discovery metadata; None: from the request's Host header.
    pub public_base_url: Option<String>,
    /// The end-user front, where this function serves it.
    pub front: Option<front::FrontApp>,
}

/// An error in the ACS envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub target: Option<&'static str>,
    allow: Option<&'static str>,
    retry_after: Option<i64>,
    /// Adds `WWW-Authenticate: Bearer` (end-user routes).
    bearer_challenge: Option<bool>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            target: None,
            allow: None,
            retry_after: None,
            bearer_challenge: None,
        }
    }

    fn validation(target: &'static str, message: impl Into<String>) -> Self {
        Self {
            target: Some(target),
            ..Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
        }
    }

    fn denied() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Denied",
            "Denied by the resource provider.",
        )
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "IdentityNotFound",
            "Provided identity doesn't exist.",
        )
    }

    fn into_response(self) -> ApiResponse {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(target) = self.target {
            error["target"] = json!(target);
        }
        let mut response = json_response(self.status, &json!({ "error": error }));
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // RFC 6750: `invalid_token` only when a token was presented.
        if let Some(invalid) = self.bearer_challenge {
            let challenge = if invalid {
                "Bearer realm=\"callsign\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"callsign\""
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound => ApiError::not_found(),
            ServiceError::NotOwned => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "IdentityNotOwned",
                "Provided identity doesn't belong to the resource.",
            ),
            ServiceError::Store(StoreError::Unavailable(reason)) => {
                tracing::warn!(%reason, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Retry the request.",
                )
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "An internal error occurred.",
                )
            }
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> ApiResponse {
    http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Bytes::from(body.to_string()))
        .expect("static headers are valid")
}

fn empty_response(status: StatusCode) -> ApiResponse {
    http::Response::builder()
        .status(status)
        .body(Bytes::new())
        .expect("status only")
}

/// Serves one request for a function that owns `operations`.
pub async fn handle(app: &Arc<App>, operations: &[Operation], request: ApiRequest) -> ApiResponse {
    let started = Instant::now();
    let client_request_id = request.headers.get(CLIENT_REQUEST_ID).cloned();
    // Browser callers of the end-user front: preflights, and CORS on every answer.
    let front_methods = front::front_path_methods(&request.path)
        .filter(|_| operations.iter().any(|op| op.is_front()));
    if let Some(allow) = front_methods
        && request.method == Method::OPTIONS
    {
        return front::preflight(app, &request, allow);
    }
    let (operation, result) = match admit(app, operations, &request) {
        Ok((operation, target)) => (
            Some(operation),
            serve(app, operation, target, &request).await,
        ),
        Err(err) => (None, Err(err)),
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    if request.method == Method::HEAD {
        // Headers as for GET (Content-Length included), no body.
        let length = response.body().len();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        *response.body_mut() = Bytes::new();
    }
    if let Some(id) = client_request_id {
        response.headers_mut().insert(CLIENT_REQUEST_ID, id);
    }
    if front_methods.is_some() {
        front::add_cors(app, &request, &mut response);
    }
    tracing::info!(
        method = %request.method,
        route = operation.map_or("unmatched", Operation::route_key),
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The checks before any work: size (unhashed), authentication (so that unauthenticated
/// callers learn nothing of the routes), route, api-version.
fn admit(
    app: &Arc<App>,
    operations: &[Operation],
    request: &ApiRequest,
) -> Result<(Operation, Option<String>), ApiError> {
    if request.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
        ));
    }
    let routed = route(&request.method, &request.path);
    if let Ok((operation, _)) = &routed
        && !operation.is_admin()
        && operations.contains(operation)
    {
        return routed;
    }
    // A wrong method on a path anyone may call is answered as such, not as unauthenticated.
    if let Err(error) = &routed
        && error.status == StatusCode::METHOD_NOT_ALLOWED
        && (request.path.starts_with("/.well-known/")
            || front::front_path_methods(&request.path).is_some())
    {
        return Err(error.clone());
    }
    authenticate(app, request)?;
    let (operation, target) = routed?;
    if !operations.contains(&operation) {
        return Err(unknown_route());
    }
    check_api_version(request)?;
    Ok((operation, target))
}

async fn serve(
    app: &Arc<App>,
    operation: Operation,
    target: Option<String>,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let service = &app.service;
    match operation {
        Operation::CreateIdentity => {
            let create = parse_create(&request.body)?;
            let created = service.create(create).await?;
            Ok(json_response(StatusCode::CREATED, &created_body(&created)))
        }
        Operation::GetIdentity => {
            let identity = service.get(&identity_id(target)?).await?;
            Ok(json_response(StatusCode::OK, &identity_body(&identity)))
        }
        Operation::DeleteIdentity => {
            service.delete(&identity_id(target)?).await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        Operation::IssueToken => {
            let id = identity_id(target)?;
            let token_request = parse_issue(&request.body)?;
            let token = service.issue_token(&id, token_request).await?;
            Ok(json_response(StatusCode::OK, &token_body(&token)))
        }
        Operation::RevokeTokens => {
            service.revoke_tokens(&identity_id(target)?).await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        Operation::UserToken => front::user_token(app, request).await,
        Operation::GetUser => front::get_user(app, request).await,
        Operation::DeleteUser => front::delete_user(app, request).await,
        Operation::GuestToken => front::guest_token(app, request).await,
        Operation::Jwks => Ok(verification::jwks(app, request)),
        Operation::OpenIdConfiguration => Ok(verification::openid_configuration(app, request)),
        Operation::IntrospectToken => {
            let token = verification::parse_introspection(request)?;
            let result = service.introspect(&token).await?;
            Ok(json_response(
                StatusCode::OK,
                &verification::introspection_body(&result),
            ))
        }
        Operation::LookupCustomId => {
            let raw = target.unwrap_or_default();
            let custom_id = CustomId::parse(&raw)
                .map_err(|e| ApiError::validation("customId", e.to_string()))?;
            let identity = service.find_by_custom_id(&custom_id).await?;
            Ok(json_response(StatusCode::OK, &identity_body(&identity)))
        }
    }
}

fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "No such route.")
}

fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError {
        allow: Some(allow),
        ..ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("Allowed methods: {allow}."),
        )
    }
}

/// Matches a raw path: split on `/` first, then percent-decode the id segment, since ids
/// contain `:` and action segments start with one. The customId is the rest of the path
/// (a gateway that decodes `%2F` would otherwise split it).
pub fn route(method: &Method, path: &str) -> Result<(Operation, Option<String>), ApiError> {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let decode = |segment: &str| -> Result<String, ApiError> {
        percent_decode_str(segment)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| ApiError::validation("id", "The path is not valid percent-encoded UTF-8."))
    };
    match segments.as_slice() {
        ["identities"] => match *method {
            Method::POST => Ok((Operation::CreateIdentity, None)),
            _ => Err(method_not_allowed("POST")),
        },
        ["identities", id] if !id.is_empty() => match *method {
            Method::GET => Ok((Operation::GetIdentity, Some(decode(id)?))),
            Method::DELETE => Ok((Operation::DeleteIdentity, Some(decode(id)?))),
            _ => Err(method_not_allowed("GET, DELETE")),
        },
        [
            "identities",
            id,
            action @ (":issueAccessToken" | ":revokeAccessTokens"),
        ] if !id.is_empty() => {
            if *method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let operation = if *action == ":issueAccessToken" {
                Operation::IssueToken
            } else {
                Operation::RevokeTokens
            };
            Ok((operation, Some(decode(id)?)))
        }
        [".well-known", "jwks.json"] => match *method {
            Method::GET | Method::HEAD => Ok((Operation::Jwks, None)),
            _ => Err(method_not_allowed("GET, HEAD")),
        },
        [".well-known", "openid-configuration"] => match *method {
            Method::GET | Method::HEAD => Ok((Operation::OpenIdConfiguration, None)),
            _ => Err(method_not_allowed("GET, HEAD")),
        },
        ["user", "token"] => match *method {
            Method::POST => Ok((Operation::UserToken, None)),
            _ => Err(method_not_allowed("POST")),
        },
        ["user"] => match *method {
            Method::GET => Ok((Operation::GetUser, None)),
            Method::DELETE => Ok((Operation::DeleteUser, None)),
            _ => Err(method_not_allowed("GET, DELETE")),
        },
        ["guest", "token"] => match *method {
            Method::POST => Ok((Operation::GuestToken, None)),
            _ => Err(method_not_allowed("POST")),
        },
        ["tokens", ":introspect"] => match *method {
            Method::POST => Ok((Operation::IntrospectToken, None)),
            _ => Err(method_not_allowed("POST")),
        },
        ["customIds", rest @ ..] if !rest.is_empty() && !rest[0].is_empty() => match *method {
            Method::GET => {
                let joined = rest.join("/");
                let custom_id = percent_decode_str(&joined).decode_utf8().map_err(|_| {
                    ApiError::validation(
                        "customId",
                        "The customId is not valid percent-encoded UTF-8.",
                    )
                })?;
                Ok((Operation::LookupCustomId, Some(custom_id.into_owned())))
            }
            _ => Err(method_not_allowed("GET")),
        },
        _ => Err(unknown_route()),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn authenticate(app: &Arc<App>, request: &ApiRequest) -> Result<(), ApiError> {
    let Some(keys) = app.service.keys().access_keys() else {
        tracing::error!("an HMAC route reached a function loaded without access keys");
        return Err(ApiError::denied());
    };
    let hmac_request = HmacRequest {
        method: request.method.as_str(),
        path: &request.path,
        query: request.query.as_deref(),
        host: header_str(&request.headers, "host"),
        date: header_str(&request.headers, "x-ms-date"),
        content_sha256: header_str(&request.headers, "x-ms-content-sha256"),
        authorization: header_str(&request.headers, "authorization"),
        body: &request.body,
    };
    hmac::verify(&keys, &hmac_request, &app.public_hosts, Utc::now()).map_err(|reason| {
        // The reason stays in our logs; the client learns only that it was denied.
        tracing::info!(%reason, "authentication denied");
        ApiError::denied()
    })
}

fn check_api_version(request: &ApiRequest) -> Result<(), ApiError> {
    let query = request.query.as_deref().unwrap_or("");
    let version = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "api-version")
        .map(|(_, value)| percent_decode_str(value).decode_utf8_lossy().into_owned());
    match version {
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedApiVersion",
            format!(
                "The api-version query parameter (?api-version=) is required. Supported versions: {}.",
                SUPPORTED_API_VERSIONS.join(", ")
            ),
        )),
        Some(version) if SUPPORTED_API_VERSIONS.contains(&version.as_str()) => Ok(()),
        Some(version) => {
            let uri: String = format!("{}?{query}", request.path)
                .chars()
                .take(300)
                .collect();
            let version: String = version.chars().take(64).collect();
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "UnsupportedApiVersion",
                format!(
                    "The HTTP resource that matches the request URI '{uri}' does not support the API version '{version}'."
                ),
            ))
        }
    }
}
