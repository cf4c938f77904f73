//! Errors in the ACS envelope (`{"error":{"code","message","target"?}}`), with the
//! status code and headers each one carries.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::request::ApiResponse;
use crate::domain::ports::StoreError;
use crate::domain::service::ServiceError;

/// An error in the ACS envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub target: Option<&'static str>,
    pub(super) allow: Option<String>,
    pub(super) retry_after: Option<i64>,
    /// Adds `WWW-Authenticate: Bearer` (bearer-authenticated routes).
    pub(super) bearer_challenge: Option<Challenge>,
}

/// The RFC 6750 challenge of a bearer refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No token was presented.
    Plain,
    /// The token is missing, malformed, expired, unsigned or foreign.
    InvalidToken,
    /// A valid token whose roles do not allow the operation.
    InsufficientScope,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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

    pub(super) fn validation(target: &'static str, message: impl Into<String>) -> Self {
        Self {
            target: Some(target),
            ..Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
        }
    }

    pub(super) fn denied() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Denied",
            "Denied by the resource provider.",
        )
    }

    /// A refused bearer token (admin routes): 401 in the ACS envelope, with a challenge.
    pub(super) fn bearer_denied() -> Self {
        Self {
            bearer_challenge: Some(Challenge::InvalidToken),
            ..Self::denied()
        }
    }

    /// A valid bearer token whose roles do not allow the operation.
    pub(super) fn forbidden() -> Self {
        Self {
            bearer_challenge: Some(Challenge::InsufficientScope),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The bearer token's roles do not allow this operation.",
            )
        }
    }

    pub(super) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "IdentityNotFound",
            "Provided identity doesn't exist.",
        )
    }

    pub(super) fn not_owned() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "IdentityNotOwned",
            "Provided identity doesn't belong to the resource.",
        )
    }

    pub fn into_response(self) -> ApiResponse {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(target) = self.target {
            error["target"] = json!(target);
        }
        let mut response = json_response(self.status, &json!({ "error": error }));
        if let Some(allow) = self
            .allow
            .and_then(|allow| HeaderValue::from_str(&allow).ok())
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        // A 503 without its own wait is worth retrying soon.
        let retry_after = self
            .retry_after
            .or((self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // RFC 6750: an error code only when a token was presented.
        if let Some(challenge) = self.bearer_challenge {
            let challenge = match challenge {
                Challenge::Plain => "Bearer realm=\"callsign\"",
                Challenge::InvalidToken => "Bearer realm=\"callsign\", error=\"invalid_token\"",
                Challenge::InsufficientScope => {
                    "Bearer realm=\"callsign\", error=\"insufficient_scope\""
                }
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound => ApiError::not_found(),
            ServiceError::NotOwned => ApiError::not_owned(),
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

pub(super) fn json_response<T: serde::Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> ApiResponse {
    json_bytes_response(
        status,
        serde_json::to_vec(body).expect("response bodies serialize"),
    )
}

/// A JSON answer already serialized.
pub(super) fn json_bytes_response(status: StatusCode, body: Vec<u8>) -> ApiResponse {
    let mut response = http::Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        // Exactly this: the contract's wording (JSON is UTF-8 by definition, RFC 8259).
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn empty_response(status: StatusCode) -> ApiResponse {
    http::Response::builder()
        .status(status)
        .body(Bytes::new())
        .expect("status only")
}

pub(super) fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "No such route.")
}

pub(super) fn method_not_allowed(allow: String) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("Allowed methods: {allow}."),
    )
    .with_allow(allow)
}

impl ApiError {
    fn with_allow(mut self, allow: String) -> Self {
        self.allow = Some(allow);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_503_keeps_its_own_retry_after_and_others_wait_a_second() {
        let unavailable = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "x");
        let own = ApiError {
            retry_after: Some(30),
            ..unavailable()
        };
        assert_eq!(own.into_response().headers()[header::RETRY_AFTER], "30");
        assert_eq!(
            unavailable().into_response().headers()[header::RETRY_AFTER],
            "1"
        );
        let refused = ApiError::new(StatusCode::BAD_REQUEST, "ValidationError", "x");
        assert!(
            refused
                .into_response()
                .headers()
                .get(header::RETRY_AFTER)
                .is_none()
        );
    }
}
