//! The end-user front over HTTP: `POST /user/token`, `GET /user`, `DELETE /user` for
//! signed-in users (a provider token as `Authorization: Bearer`), `POST /guest/token` for
//! anonymous guests; CORS for browser callers.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;

use super::error::{Challenge, json_response};
use super::identities::{
    IdentityFields, created_body, field, identity_body, parse_lifetime, parse_object,
    parse_scope_list,
};
use super::{ApiError, ApiRequest, ApiResponse, App};
use crate::domain::front::{Caller, Front, FrontError, FrontRequest};
use crate::domain::ports::{ProviderTokenError, ProviderTokens};

/// How signed-in users are recognised.
pub enum UserAuth {
    /// Their identity provider's token, verified here.
    Provider(Arc<dyn ProviderTokens>),
    /// Behind API Gateway's JWT authorizer: its verified claims, from this issuer only.
    Gateway { issuer: String },
    /// No sign-in configured: user routes answer 501.
    None,
}

pub struct FrontApp {
    pub front: Front,
    pub users: UserAuth,
    /// Origins allowed to call the front from a browser; `*` allows any.
    pub cors_origins: Vec<String>,
}

/// The caller API Gateway's JWT authorizer verified (`requestContext.authorizer.jwt`),
/// if its claims come from `expected_issuer`.
pub fn caller_from_gateway_claims(claims: &Value, expected_issuer: &str) -> Option<Caller> {
    let issuer = claims.get("iss")?.as_str()?;
    let subject = claims.get("sub")?.as_str()?;
    (issuer == expected_issuer && !subject.is_empty()).then(|| Caller {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
    })
}

impl From<FrontError> for ApiError {
    fn from(err: FrontError) -> Self {
        match err {
            FrontError::ScopeNotAllowed { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "ScopeNotAllowed",
                format!("The {err}."),
            ),
            FrontError::LifetimeTooLong { .. } => ApiError::validation(
                "ExpiresInMinutes",
                format!("ExpiresInMinutes is invalid: {err}."),
            ),
            FrontError::Throttled { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    format!(
                        "Too many guest tokens from this address. Retry in {retry_after} seconds."
                    ),
                )
            },
            FrontError::NoIdentity => ApiError::new(
                StatusCode::NOT_FOUND,
                "IdentityNotFound",
                "No identity exists for this user yet; POST /user/token makes one.",
            ),
            FrontError::Service(e) => e.into(),
        }
    }
}

fn front(app: &App) -> Result<&FrontApp, ApiError> {
    app.front.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotConfigured",
            "The end-user front is not configured here.",
        )
    })
}

fn unauthorized(code: &'static str, message: String) -> ApiError {
    ApiError {
        bearer_challenge: Some(if code == "InvalidToken" {
            Challenge::InvalidToken
        } else {
            Challenge::Plain
        }),
        ..ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

/// The signed-in user behind a request; nothing runs without one.
pub(super) async fn caller(app: &App, request: &ApiRequest) -> Result<Caller, ApiError> {
    match &front(app)?.users {
        UserAuth::Gateway { issuer } => request
            .gateway_claims
            .as_ref()
            .and_then(|claims| caller_from_gateway_claims(claims, issuer))
            .ok_or_else(|| {
                unauthorized(
                    "MissingToken",
                    "No verified identity came with the request.".into(),
                )
            }),
        UserAuth::Provider(provider) => {
            let token = request
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .filter(|token| !token.is_empty())
                .ok_or_else(|| {
                    unauthorized(
                        "MissingToken",
                        "Sign in: send your identity provider's token as Authorization: Bearer."
                            .into(),
                    )
                })?;
            provider
                .verify(token, Utc::now())
                .await
                .map_err(|error| match error {
                    ProviderTokenError::Unavailable(reason) => {
                        tracing::warn!(%reason, "identity provider keys unavailable");
                        ApiError {
                            retry_after: Some(30),
                            ..ApiError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "IdentityProviderUnavailable",
                                "The identity provider's keys cannot be fetched right now. Retry later.",
                            )
                        }
                    }
                    ProviderTokenError::Rejected(reason) => unauthorized(
                        "InvalidToken",
                        format!("The identity provider token was rejected ({reason})."),
                    ),
                })
        }
        UserAuth::None => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotConfigured",
            "End-user sign-in is not configured here (CALLSIGN_OIDC_ISSUER).",
        )),
    }
}

/// `{"scopes":[…]?, "expiresInMinutes":…?}`; an empty body asks for the defaults.
fn parse_front_request(body: &Bytes) -> Result<FrontRequest, ApiError> {
    let object = parse_object(body)?;
    Ok(FrontRequest {
        scopes: field(&object, "scopes").map(parse_scope_list).transpose()?,
        lifetime: match field(&object, "expiresInMinutes") {
            Some(_) => Some(parse_lifetime(&object)?),
            None => None,
        },
    })
}

pub(super) async fn user_token(app: &App, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = caller(app, request).await?;
    let asked = parse_front_request(&request.body)?;
    let created = front(app)?
        .front
        .user_token(&app.service, &caller, asked)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &created_body(&created, IdentityFields::All),
    ))
}

pub(super) async fn get_user(app: &App, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = caller(app, request).await?;
    let identity = front(app)?.front.user(&app.service, &caller).await?;
    Ok(json_response(StatusCode::OK, &identity_body(&identity)))
}

pub(super) async fn delete_user(app: &App, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = caller(app, request).await?;
    front(app)?.front.delete_user(&app.service, &caller).await?;
    Ok(http::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Bytes::new())
        .expect("status only"))
}

pub(super) async fn guest_token(app: &App, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let asked = parse_front_request(&request.body)?;
    // Behind API Gateway the source address is the client's; it is never a header a
    // client could set. Without one, throttling would put every guest in one bucket.
    let Some(client) = request.source_ip.as_deref() else {
        tracing::error!("a guest request came without a source address; refusing it");
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ClientAddressUnknown",
            "The client's address is unknown here, so guest tokens cannot be throttled.",
        ));
    };
    let created = front(app)?
        .front
        .guest_token(&app.service, client, asked)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &created_body(&created, IdentityFields::All),
    ))
}

/// The request's Origin, if the configuration allows it.
fn allowed_origin<'a>(app: &App, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
    let origins = &app.front.as_ref()?.cors_origins;
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    origins
        .iter()
        .any(|allowed| allowed == "*" || allowed == text)
        .then_some(origin)
}

/// Adds CORS headers to a front response when the caller's origin is allowed; a
/// disallowed origin gets none, so the browser withholds the response.
pub(super) fn add_cors(app: &App, request: &ApiRequest, response: &mut ApiResponse) {
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed_origin(app, &request.headers) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        // What a page needs to read: when to retry, why a token was refused, and the
        // request id to quote.
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After, WWW-Authenticate, x-ms-client-request-id"),
        );
    }
}

/// Answers a CORS preflight for a front route.
pub(super) fn preflight(app: &App, request: &ApiRequest, allow: &str) -> ApiResponse {
    let mut response = http::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Bytes::new())
        .expect("status only");
    if allowed_origin(app, &request.headers).is_some() {
        let headers = response.headers_mut();
        if let Ok(allow) = HeaderValue::from_str(allow) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, allow);
        }
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-ms-client-request-id"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    add_cors(app, request, &mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_claims_must_come_from_the_configured_issuer() {
        let claims = json!({"iss": "https://idp.example", "sub": "u1"});
        assert_eq!(
            caller_from_gateway_claims(&claims, "https://idp.example").map(|c| c.subject),
            Some("u1".into())
        );
        assert!(caller_from_gateway_claims(&claims, "https://other").is_none());
        assert!(
            caller_from_gateway_claims(
                &json!({"iss": "https://idp.example"}),
                "https://idp.example"
            )
            .is_none()
        );
    }
}
