//! Admin authentication: the HMAC signature over a request (with either access key), or
//! a bearer token from a trusted issuer with the roles the operation needs; and the
//! api-version every admin route requires.

use std::sync::Arc;

use chrono::Utc;
use http::{HeaderMap, HeaderName, StatusCode, header};
use percent_encoding::percent_decode_str;

use super::error::ApiError;
use super::hmac::{self, HmacRequest};
use super::identities::IdentityFields;
use super::request::ApiRequest;
use super::{App, Operation};
use crate::domain::access_keys::KeyName;
use crate::domain::admin::{AdminCaller, RoleNames};
use crate::domain::ports::{ProviderTokenError, TrustedTokens};
use crate::domain::signals;

/// Every version ACS has published for the identity operations (its
/// `api-supported-versions` header and Microsoft's REST specifications), so that a client
/// of any of them is served; each gets today's wire format.
pub const SUPPORTED_API_VERSIONS: &[&str] = &[
    "2020-07-20-preview2",
    "2021-02-22-preview1",
    "2021-03-07",
    "2021-03-31-preview1",
    "2021-10-31-preview",
    "2021-11-01",
    "2022-06-01",
    "2022-09-01",
    "2022-10-01",
    "2023-08-01",
    "2023-08-30-preview",
    "2023-10-01",
    "2025-03-02-preview",
    "2025-04-01-preview",
    "2025-06-30",
    "2026-07-22",
    "2026-09-23",
];

const X_MS_DATE: HeaderName = HeaderName::from_static("x-ms-date");
pub(super) const X_MS_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-ms-content-sha256");

/// Looked up by `HeaderName`, not by `&str`, which is parsed again on every lookup.
fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Bearer tokens for the admin API: the issuers trusted, and the role names that grant
/// permissions.
pub struct AdminBearers {
    pub issuers: Arc<dyn TrustedTokens>,
    pub roles: RoleNames,
}

/// The caller: a bearer token's (`Authorization: Bearer …`) or an HMAC signature's;
/// otherwise 401 `Denied`.
pub(super) async fn authenticate(app: &App, request: &ApiRequest) -> Result<AdminCaller, ApiError> {
    let authorization = header_str(&request.headers, &header::AUTHORIZATION);
    match authorization.and_then(bearer_token) {
        Some(token) => authenticate_bearer(app, token).await,
        None => {
            let (name, fingerprint) = authenticate_hmac(app, request, authorization)?;
            Ok(AdminCaller::AccessKey { name, fingerprint })
        }
    }
}

/// 403 unless the caller may perform `operation`. Nothing has been done yet.
pub(super) fn authorize(caller: &AdminCaller, operation: Operation) -> Result<(), ApiError> {
    if caller.may(operation.permission()) {
        Ok(())
    } else {
        if let AdminCaller::Bearer {
            issuer, subject, ..
        } = caller
        {
            tracing::info!(
                operation = operation.route_key(),
                issuer = super::bounded(issuer),
                subject = super::bounded(subject),
                "bearer role does not allow the operation"
            );
        }
        signals::admin_auth_failed(signals::BEARER_FORBIDDEN);
        Err(ApiError::forbidden())
    }
}

fn bearer_token(authorization: &str) -> Option<&str> {
    let value = authorization.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate_bearer(app: &App, token: &str) -> Result<AdminCaller, ApiError> {
    let refused = |reason: &str| {
        // The reason stays in our logs; the token never goes there.
        tracing::info!(reason, "bearer token refused");
        signals::admin_auth_failed(signals::BEARER_REFUSED);
        ApiError::bearer_denied()
    };
    let Some(bearers) = &app.admin_bearers else {
        return Err(refused("no bearer issuer is trusted here"));
    };
    match bearers.issuers.verify(token, Utc::now()).await {
        Ok(verified) => Ok(AdminCaller::Bearer {
            grants: bearers
                .roles
                .grants(verified.roles.iter().map(String::as_str)),
            issuer: verified.issuer,
            subject: verified.subject,
        }),
        Err(ProviderTokenError::Rejected(reason)) => Err(refused(reason.code())),
        Err(ProviderTokenError::Unavailable(why)) => {
            tracing::warn!(%why, "bearer issuer keys unavailable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The token issuer's keys cannot be loaded now. Retry the request.",
            ))
        }
    }
}

/// The access key that signed the request (primary or secondary) and its fingerprint,
/// both from the one snapshot of the keys (a refresh in between must not name another
/// key), or 401 `Denied`.
fn authenticate_hmac(
    app: &App,
    request: &ApiRequest,
    authorization: Option<&str>,
) -> Result<(KeyName, String), ApiError> {
    let Some(keys) = app.service.keys().access_keys() else {
        tracing::error!("an HMAC route reached a function loaded without access keys");
        return Err(ApiError::denied());
    };
    let hmac_request = HmacRequest {
        method: request.method.as_str(),
        path: &request.path,
        query: request.query.as_deref(),
        host: header_str(&request.headers, &header::HOST),
        date: header_str(&request.headers, &X_MS_DATE),
        content_sha256: header_str(&request.headers, &X_MS_CONTENT_SHA256),
        authorization,
        body: &request.body,
    };
    let name =
        hmac::verify(&keys, &hmac_request, &app.public_hosts, Utc::now()).map_err(|reason| {
            // The reason stays in our logs; the client learns only that it was denied.
            tracing::info!(%reason, "authentication denied");
            signals::admin_auth_failed(reason.code());
            ApiError::denied()
        })?;
    let fingerprint = keys.fingerprint(name).unwrap_or_default().to_owned();
    Ok((name, fingerprint))
}

/// The versions whose identity object carries `lastTokenIssuedAt` (the customId
/// previews); the others, GA ones included, do not.
const CUSTOM_ID_API_VERSIONS: &[&str] = &["2025-03-02-preview", "2025-04-01-preview"];

/// The request's api-version, its name matched without regard to case.
fn api_version(request: &ApiRequest) -> Option<std::borrow::Cow<'_, str>> {
    request
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("api-version"))
        .map(|(_, value)| percent_decode_str(value).decode_utf8_lossy())
}

/// Whether `version` is one of `versions`, without regard to case.
fn listed(versions: &[&str], version: &str) -> bool {
    versions.iter().any(|v| v.eq_ignore_ascii_case(version))
}

/// Which fields an identity object has in the request's api-version.
pub(super) fn identity_fields(request: &ApiRequest) -> IdentityFields {
    match api_version(request) {
        Some(version) if listed(CUSTOM_ID_API_VERSIONS, &version) => IdentityFields::All,
        _ => IdentityFields::WithoutLastTokenIssuedAt,
    }
}

/// The name and the version are matched without regard to case, as ACS (ASP.NET API
/// versioning) matches them: `API-Version=2025-03-02-PREVIEW` is that preview.
pub(super) fn check_api_version(request: &ApiRequest) -> Result<(), ApiError> {
    let query = request.query.as_deref().unwrap_or("");
    match api_version(request) {
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedApiVersion",
            format!(
                "The api-version query parameter (?api-version=) is required. Supported versions: {}.",
                SUPPORTED_API_VERSIONS.join(", ")
            ),
        )),
        Some(version) if listed(SUPPORTED_API_VERSIONS, &version) => Ok(()),
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
