//! The end-user front over HTTP: `POST /user/token`, `GET /user`, `DELETE /user` for
//! signed-in users (a provider token as `Authorization: Bearer`), `POST /guest/token` for
//! anonymous guests; CORS for browser callers.

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::identities::{
    created_body, field, identity_body, parse_lifetime, parse_object, parse_scope_list,
};
use super::{ApiError, ApiRequest, ApiResponse, App, json_response};
use crate::auth::oidc::{Caller, OidcVerifier};
use crate::front::{Front, FrontError, FrontRequest};

/// How signed-in users are recognised.
pub enum UserAuth {
    Oidc(ProviderVerifier),
    /// Behind API Gateway's JWT authorizer: its verified claims, from this issuer only.
    Gateway {
        issuer: String,
    },
    None,
}

/// The provider's verifier, made at cold start when the provider answers, else on first
/// use: an unreachable provider then fails the user routes (503) until it is back, not the
/// whole function (guests keep working).
pub struct ProviderVerifier {
    settings: crate::auth::oidc::OidcSettings,
    verifier: tokio::sync::OnceCell<OidcVerifier>,
}

impl ProviderVerifier {
    pub fn new(settings: crate::auth::oidc::OidcSettings) -> Self {
        Self {
            settings,
            verifier: tokio::sync::OnceCell::new(),
        }
    }

    /// One already built (the local server's development issuer).
    pub fn ready(verifier: OidcVerifier) -> Self {
        Self {
            settings: verifier.settings().clone(),
            verifier: tokio::sync::OnceCell::new_with(Some(verifier)),
        }
    }

    pub async fn get(&self) -> Result<&OidcVerifier, crate::keys::KeyError> {
        self.verifier
            .get_or_try_init(|| OidcVerifier::discover(self.settings.clone()))
            .await
    }
}

pub struct FrontApp {
    pub front: Front,
    pub users: UserAuth,
    pub cors_origins: Vec<String>,
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
        bearer_challenge: Some(code == "InvalidToken"),
        ..ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

/// The signed-in user behind a request; nothing runs without one.
pub(super) async fn caller(app: &App, request: &ApiRequest) -> Result<Caller, ApiError> {
    match &front(app)?.users {
        UserAuth::Gateway { issuer } => request
            .gateway_claims
            .as_ref()
            .and_then(|claims| Caller::from_gateway_claims(claims, issuer))
            .ok_or_else(|| {
                unauthorized(
                    "MissingToken",
                    "No verified identity came with the request.".into(),
                )
            }),
        UserAuth::Oidc(verifier) => {
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
            let verifier = verifier.get().await.map_err(|e| {
                tracing::warn!(error = %e, "identity provider keys unavailable");
                ApiError {
                    retry_after: Some(30),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "IdentityProviderUnavailable",
                        "The identity provider's keys cannot be fetched right now. Retry later.",
                    )
                }
            })?;
            verifier.verify(token, Utc::now()).await.map_err(|reason| {
                unauthorized(
                    "InvalidToken",
                    format!("The identity provider token was rejected ({reason})."),
                )
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
        scopes: field(&object, "scopes")
            .map(|s| parse_scope_list(s, "scopes"))
            .transpose()?,
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
    Ok(json_response(StatusCode::OK, &created_body(&created)))
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
    Ok(json_response(StatusCode::OK, &created_body(&created)))
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
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
}

/// Answers a CORS preflight for a front route.
pub(super) fn preflight(app: &App, request: &ApiRequest, allow: &'static str) -> ApiResponse {
    let mut response = http::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Bytes::new())
        .expect("status only");
    if allowed_origin(app, &request.headers).is_some() {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(allow),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    add_cors(app, request, &mut response);
    response
}

/// The methods a front path serves, for preflights; None for other paths.
pub(super) fn front_path_methods(path: &str) -> Option<&'static str> {
    match path {
        "/user/token" | "/guest/token" => Some("POST, OPTIONS"),
        "/user" => Some("GET, DELETE, OPTIONS"),
        _ => None,
    }
}

impl FrontApp {
    /// Builds the front from configuration: with OIDC, the provider's keys are found and
    /// loaded here, once per cold start.
    pub async fn build(
        config: crate::config::FrontConfig,
        throttle: std::sync::Arc<dyn crate::store::Throttle>,
    ) -> Result<Self, crate::keys::KeyError> {
        let users = match config.users {
            crate::config::UserAuthConfig::Oidc(settings) => {
                let provider = ProviderVerifier::new(settings);
                // Warm at cold start if the provider answers quickly; otherwise on first use.
                let warm =
                    tokio::time::timeout(std::time::Duration::from_secs(3), provider.get()).await;
                if !matches!(warm, Ok(Ok(_))) {
                    tracing::warn!(
                        "identity provider keys not loaded at cold start; retrying on first use"
                    );
                }
                UserAuth::Oidc(provider)
            }
            crate::config::UserAuthConfig::Gateway { issuer } => UserAuth::Gateway { issuer },
            crate::config::UserAuthConfig::None => UserAuth::None,
        };
        Ok(Self {
            front: Front::new(config.policy, throttle),
            users,
            cors_origins: config.cors_origins,
        })
    }
}
