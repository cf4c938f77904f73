//! The verification side over HTTP: the public key set (JWKS), discovery metadata, and
//! token introspection (RFC 7662 shape).

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::error::json_response;
use super::identities::{field, parse_object};
use super::{ApiError, ApiRequest, ApiResponse, App};
use crate::domain::keys::{JWKS_MAX_AGE_SECONDS, SigningAlgorithm};
use crate::domain::token::{TokenRejection, VerifiedToken};

pub(super) fn jwks(app: &App, request: &ApiRequest) -> ApiResponse {
    let keys = app.service.keys().published_keys();
    let (body, etag) = keys.jwks_document();
    let etag = etag.as_str();
    let not_modified = request
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        // If-None-Match compares weakly (RFC 9110 §13.1.2): W/"x" matches "x".
        .is_some_and(|tags| {
            tags.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
        });
    let mut response = if not_modified {
        http::Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .body(Bytes::new())
            .expect("status only")
    } else {
        let mut response = json_response(StatusCode::OK, &Value::Null);
        *response.body_mut() = Bytes::from(body.clone());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(etag).expect("base64url is a valid header"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECONDS}")).expect("ascii"),
    );
    response
}

pub(super) fn openid_configuration(app: &App, request: &ApiRequest) -> ApiResponse {
    let base = match &app.public_base_url {
        Some(base) => base.clone(),
        None => {
            let host = request
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            let scheme = request
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("https");
            format!("{scheme}://{host}")
        }
    };
    // Derived from the request, the document must not be shared by caches across hosts.
    let cache_control = if app.public_base_url.is_some() {
        "public"
    } else {
        "private"
    };
    let body = json!({
        "issuer": app.service.settings().issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{base}/tokens/:introspect"),
        "id_token_signing_alg_values_supported": SigningAlgorithm::ALL.map(SigningAlgorithm::as_str),
        // Required by OpenID Connect Discovery (strict clients check them): callsign
        // hands out access tokens for one public subject each.
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    });
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("{cache_control}, max-age={JWKS_MAX_AGE_SECONDS}"))
            .expect("ascii"),
    );
    response
}

/// The token to introspect: `{"token":"…"}`, or RFC 7662's form body `token=…`.
pub(super) fn parse_introspection(request: &ApiRequest) -> Result<String, ApiError> {
    let is_form = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let token = if is_form {
        std::str::from_utf8(&request.body).ok().and_then(|body| {
            body.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| *name == "token")
                .map(|(_, value)| {
                    percent_decode_str(&value.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                })
        })
    } else {
        let object = parse_object(&request.body)?;
        match field(&object, "token") {
            Some(Value::String(token)) => Some(token.clone()),
            Some(_) => return Err(ApiError::validation("token", "Token must be a string.")),
            None => None,
        }
    };
    token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::validation("token", "Token: The Token field is required."))
}

pub(super) fn introspection_body(result: &Result<VerifiedToken, TokenRejection>) -> Value {
    match result {
        Ok(token) => json!({
            "active": true,
            "sub": token.identity.as_str(),
            "scope": token.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
            "exp": token.claims.exp,
            "iat": token.claims.iat,
            "nbf": token.claims.nbf,
            "iss": token.claims.iss,
            "aud": token.claims.aud,
            "kid": token.kid,
            "token_type": "Bearer",
        }),
        Err(reason) => json!({ "active": false, "reason": reason.to_string() }),
    }
}
