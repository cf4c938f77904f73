//! The HTTP transport, independent of how requests arrive (Lambda or the local server):
//! routing from the one route table, admin authentication (HMAC and api-version), body
//! parsing and the ACS error envelope. Each handler parses, calls one use case and maps
//! the result.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};

use crate::domain::admin::AdminCaller;
use crate::domain::identity::CustomId;
use crate::domain::ports::Attempt;
use crate::domain::service::IdentityService;
use crate::domain::signals::Origin;
use crate::domain::token::IssuedBy;

pub mod admin_auth;
mod error;
pub mod front;
pub mod hmac;
mod identities;
mod request;
pub mod routes;
pub mod teams;
mod verification;

pub use admin_auth::AdminBearers;
pub use error::ApiError;
pub use request::{ApiRequest, ApiResponse};
pub use routes::{Access, Function, Operation, Served};

use error::{empty_response, json_response, method_not_allowed, unknown_route};
use identities::{
    created_body, identity_body, identity_id, parse_create, parse_issue, token_response,
};
use routes::Unrouted;

/// Bodies of this API are a few hundred bytes; anything much larger is refused unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");

/// Everything a handler needs, built once per cold start by the composition root
/// (`crate::app`).
pub struct App {
    pub service: IdentityService,
    pub public_hosts: Vec<String>,
    /// Base URL for discovery metadata; None: from the request's Host header.
    pub public_base_url: Option<String>,
    /// The end-user front, where this function serves it.
    pub front: Option<front::FrontApp>,
    /// Bearer tokens accepted on the admin routes besides HMAC (None: HMAC only).
    pub admin_bearers: Option<AdminBearers>,
    /// The Teams exchange's trusted issuers and policy (None: not configured, so no token
    /// is valid).
    pub teams: Option<teams::TeamsApp>,
}

/// Serves one request for a process that serves `served`.
pub async fn handle(app: &Arc<App>, served: Served, request: ApiRequest) -> ApiResponse {
    let started = Instant::now();
    let client_request_id = request.headers.get(CLIENT_REQUEST_ID).cloned();
    // Browser callers of the end-user front: preflights, and CORS on every answer.
    let cors_methods = served
        .has(Access::EndUser)
        .then(|| routes::end_user_methods(&request.path))
        .flatten();
    if let Some(allow) = &cors_methods
        && request.method == Method::OPTIONS
    {
        return front::preflight(app, &request, allow);
    }
    let (operation, result) = match admit(app, served, &request).await {
        Ok((operation, target, caller)) => {
            let result = serve(app, operation, target.clone(), caller.as_ref(), &request).await;
            if let Some(caller) = &caller {
                audit(operation, caller, target.as_deref(), &request, &result);
            }
            (Some(operation), result)
        }
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
    if cors_methods.is_some() {
        front::add_cors(app, &request, &mut response);
    }
    tracing::info!(
        method = %request.method,
        route = operation.map_or("unmatched", Operation::route_key),
        status = response.status().as_u16(),
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// How long a retried create is recognised: the HMAC signature's window.
const RETRY_WINDOW_MINUTES: i64 = 15;

/// A create its client may retry: the SDKs keep `x-ms-client-request-id` across their
/// retries of one call, with the same credential. The body's hash is the
/// `x-ms-content-sha256` that HMAC authentication has just checked against the body, or
/// for a bearer caller the body's own.
fn attempt(caller: Option<&AdminCaller>, request: &ApiRequest) -> Option<Attempt> {
    let caller = caller?;
    let body_hash = match caller {
        AdminCaller::AccessKey { .. } => request
            .headers
            .get(admin_auth::X_MS_CONTENT_SHA256)?
            .to_str()
            .ok()?
            .to_owned(),
        AdminCaller::Bearer { .. } => hmac::content_hash(&request.body),
    };
    let id = request
        .headers
        .get(CLIENT_REQUEST_ID)?
        .to_str()
        .ok()?
        .trim();
    if id.is_empty() || id.len() > 200 {
        return None;
    }
    Some(Attempt {
        key: format!("{}#{id}", caller.retry_scope()),
        body_hash,
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(RETRY_WINDOW_MINUTES),
    })
}

/// One audit line for every admin mutation (create, issue, revoke, delete, Teams
/// exchange), whatever its outcome: which access key or bearer (issuer and subject),
/// what, which identity, the request ids, the status. Never a token, key or signature.
fn audit(
    operation: Operation,
    caller: &AdminCaller,
    target: Option<&str>,
    request: &ApiRequest,
    result: &Result<ApiResponse, ApiError>,
) {
    let action = match operation {
        Operation::CreateIdentity => "create",
        Operation::IssueToken => "issue",
        Operation::RevokeTokens => "revoke",
        Operation::DeleteIdentity => "delete",
        Operation::ExchangeTeamsToken => "exchange",
        _ => return,
    };
    let status = match result {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.status.as_u16(),
    };
    // A create names its identity only in its answer, an exchange only in its token.
    let created = match (operation, result) {
        (Operation::CreateIdentity, Ok(response)) => {
            serde_json::from_slice::<serde_json::Value>(response.body())
                .ok()
                .and_then(|body| body["identity"]["id"].as_str().map(str::to_owned))
        }
        (Operation::ExchangeTeamsToken, Ok(response)) => {
            serde_json::from_slice::<serde_json::Value>(response.body())
                .ok()
                .and_then(|body| body["token"].as_str().and_then(token_subject))
        }
        _ => None,
    };
    let identity = bounded(created.as_deref().or(target).unwrap_or("-"));
    let client_request_id = bounded(
        request
            .headers
            .get(CLIENT_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-"),
    );
    let (key, issuer, subject) = match caller {
        AdminCaller::AccessKey { name, .. } => (name.as_str(), "-", "-"),
        AdminCaller::Bearer {
            issuer, subject, ..
        } => ("bearer", bounded(issuer), bounded(subject)),
    };
    tracing::info!(
        target: "callsign::audit",
        action,
        key,
        issuer = %issuer,
        subject = %subject,
        identity = %identity,
        status,
        request_id = request.request_id.as_deref().unwrap_or("-"),
        client_request_id = %client_request_id,
        "admin action"
    );
}

/// What a caller sent, bounded for a log line (no place for a large header): its first
/// 200 characters.
pub(super) fn bounded(text: &str) -> &str {
    if text.len() <= 200 {
        return text;
    }
    match text.char_indices().nth(200) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The `sub` of a token we just issued (its payload, not verified: we signed it).
fn token_subject(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["sub"].as_str().map(str::to_owned)
}

/// The checks before any work: size (unhashed), authentication (so that unauthenticated
/// callers learn nothing of the admin routes), route, api-version, the caller's
/// permission. With the caller of an admin request.
async fn admit(
    app: &App,
    served: Served,
    request: &ApiRequest,
) -> Result<(Operation, Option<String>, Option<AdminCaller>), ApiError> {
    if request.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
        ));
    }
    let routed = routes::match_route(&request.method, &request.path);
    match &routed {
        Ok(matched)
            if matched.operation.access() != Access::Admin && served.serves(matched.operation) =>
        {
            return Ok((matched.operation, matched.parameter.clone(), None));
        }
        // A wrong method on a path anyone may call is answered as such, not as
        // unauthenticated.
        Err(Unrouted::MethodNotAllowed { allow, access }) if *access != Access::Admin => {
            return Err(method_not_allowed(allow.clone()));
        }
        _ => {}
    }
    let caller = admin_auth::authenticate(app, request).await?;
    let matched = routed.map_err(|unrouted| match unrouted {
        Unrouted::NotFound => unknown_route(),
        Unrouted::MethodNotAllowed { allow, .. } => method_not_allowed(allow),
        Unrouted::BadParameter(name) => ApiError::validation(
            name,
            format!("The {name} is not valid percent-encoded UTF-8."),
        ),
    })?;
    if !served.serves(matched.operation) {
        return Err(unknown_route());
    }
    admin_auth::check_api_version(request)?;
    admin_auth::authorize(&caller, matched.operation)?;
    Ok((matched.operation, matched.parameter, Some(caller)))
}

async fn serve(
    app: &App,
    operation: Operation,
    target: Option<String>,
    caller: Option<&AdminCaller>,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let service = &app.service;
    let ours = service.settings().resource_id;
    // Admin operations have a caller; the others issue nothing under this name.
    let issued_by = caller.map_or(IssuedBy::Guest, AdminCaller::issued_by);
    match operation {
        Operation::CreateIdentity => {
            let create = parse_create(&request.body, attempt(caller, request), issued_by)?;
            let created = service.create(create).await?;
            let fields = admin_auth::identity_fields(request);
            Ok(json_response(
                StatusCode::CREATED,
                &created_body(&created, fields),
            ))
        }
        Operation::GetIdentity => {
            let identity = service.get(&identity_id(target, ours)?).await?;
            Ok(json_response(StatusCode::OK, &identity_body(&identity)))
        }
        Operation::DeleteIdentity => {
            service
                .delete(&identity_id(target, ours)?, Origin::Admin)
                .await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        Operation::IssueToken => {
            let token_request = parse_issue(&request.body)?;
            let id = identity_id(target, ours)?;
            let token = service.issue_token(&id, token_request, &issued_by).await?;
            Ok(token_response(&token))
        }
        Operation::RevokeTokens => {
            service.revoke_tokens(&identity_id(target, ours)?).await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        Operation::ExchangeTeamsToken => teams::exchange(app, request, &issued_by).await,
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
