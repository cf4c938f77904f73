//! A development OpenID Connect issuer, for local runs only: it lets you try the end-user
//! front (`/user/token`) without a real identity provider. Never part of a deployment.
//!
//!   POST {endpoint}/dev/oidc/token  {"sub":"alice"}  →  {"id_token":"…","token_type":"Bearer"}
//!   GET  {endpoint}/dev/oidc/.well-known/openid-configuration, /dev/oidc/jwks.json

use std::sync::Arc;

use bytes::Bytes;
use callsign::adapters::oidc::OidcVerifier;
use callsign::config::OidcSettings;
use callsign::domain::keys::{KeyError, KeySet, SigningAlgorithm, StoredKeySet};
use callsign_verifier::StaticKeys;
use http::{Method, StatusCode};
use serde_json::{Value, json};

pub const AUDIENCE: &str = "callsign-dev";
const PREFIX: &str = "/dev/oidc";

pub struct DevIssuer {
    keys: KeySet,
    issuer: String,
}

impl DevIssuer {
    pub fn new(endpoint: &str) -> Result<Self, KeyError> {
        let keys =
            KeySet::from_secret(&StoredKeySet::generate(SigningAlgorithm::Rs256)?.to_secret())?;
        Ok(Self {
            keys,
            issuer: format!("{endpoint}{PREFIX}"),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The front's verifier for this issuer's tokens (keys in hand, no HTTP).
    pub fn verifier(&self) -> OidcVerifier {
        let settings = OidcSettings {
            issuer: self.issuer.clone(),
            audience: AUDIENCE.into(),
            jwks_url: None,
            leeway_seconds: 60,
        };
        OidcVerifier::new(
            settings,
            Arc::new(StaticKeys(self.keys.public_keys().clone())),
        )
    }

    /// Answers the issuer's own routes; None for any other path.
    pub fn handle(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Option<http::Response<Bytes>> {
        let route = path.strip_prefix(PREFIX)?;
        let (status, body) = match (method, route) {
            (&Method::GET, "/.well-known/openid-configuration") => (
                StatusCode::OK,
                json!({
                    "issuer": self.issuer,
                    "jwks_uri": format!("{}/jwks.json", self.issuer),
                    "token_endpoint": format!("{}/token", self.issuer),
                    "id_token_signing_alg_values_supported": ["RS256"],
                }),
            ),
            (&Method::GET, "/jwks.json") => (StatusCode::OK, self.keys.public_keys().to_jwks()),
            (&Method::POST, "/token") => self.mint(body),
            _ => (
                StatusCode::NOT_FOUND,
                json!({"error": "no such dev OIDC route"}),
            ),
        };
        Some(
            http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Bytes::from(body.to_string()))
                .expect("static headers"),
        )
    }

    /// An ID token for `{"sub": "…"}` (and optionally `"minutes"`, default 60).
    fn mint(&self, body: &[u8]) -> (StatusCode, Value) {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(subject) = request
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": "send {\"sub\": \"<user id>\"}"}),
            );
        };
        let minutes = request
            .get("minutes")
            .and_then(Value::as_i64)
            .unwrap_or(60)
            .clamp(1, 1440);
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": subject,
            "iat": now, "exp": now + minutes * 60,
        });
        let key = &self.keys.current;
        let mut header = jsonwebtoken::Header::new(key.algorithm().jwt());
        header.kid = Some(key.kid().to_owned());
        match jsonwebtoken::encode(&header, &claims, key.encoding_key()) {
            Ok(token) => (
                StatusCode::OK,
                json!({"id_token": token, "token_type": "Bearer", "expires_in": minutes * 60}),
            ),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            ),
        }
    }
}
