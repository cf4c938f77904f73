//! End users' identity-provider tokens (any OpenID Connect provider: Cognito, Auth0,
//! Entra ID, Keycloak, Google): signature against the provider's JWKS, issuer, audience,
//! expiry with leeway, RS256/ES256 only.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::identity::CustomId;
use crate::keys::{KeyError, SigningAlgorithm};
use crate::token::{self, TokenRejection};
use crate::verifier::{JwksKeys, PublicKeySource};

/// customIds under this prefix belong to end users of the front; the admin API may not
/// create them (an app's own customId could otherwise claim a user's identity).
pub const CUSTOM_ID_PREFIX: &str = "oidc:";

const ALLOWED: [SigningAlgorithm; 2] = [SigningAlgorithm::Rs256, SigningAlgorithm::Es256];
/// Provider keys are cached this long, and refetched early on an unknown kid at most
/// once per minute.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(60);

/// A signed-in end user, as their identity provider vouches for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub issuer: String,
    pub subject: String,
}

impl Caller {
    /// The customId their stable identity is kept under: a hash of `(iss, sub)`, so that
    /// no provider's user id (often an e-mail address) is stored as a key.
    pub fn custom_id(&self) -> CustomId {
        let digest = digest::digest(
            &digest::SHA256,
            format!("{}\n{}", self.issuer, self.subject).as_bytes(),
        );
        CustomId::parse(&format!(
            "{CUSTOM_ID_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(digest)
        ))
        .expect("43 ASCII characters")
    }

    /// Claims the API Gateway JWT authorizer verified (`requestContext.authorizer.jwt`).
    pub fn from_gateway_claims(claims: &Value, expected_issuer: &str) -> Option<Self> {
        let issuer = claims.get("iss")?.as_str()?;
        let subject = claims.get("sub")?.as_str()?;
        (issuer == expected_issuer && !subject.is_empty()).then(|| Self {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    /// None: found through the issuer's discovery document.
    pub jwks_url: Option<String>,
    pub leeway_seconds: i64,
}

pub struct OidcVerifier {
    settings: OidcSettings,
    keys: Arc<dyn PublicKeySource>,
}

impl OidcVerifier {
    pub fn new(settings: OidcSettings, keys: Arc<dyn PublicKeySource>) -> Self {
        Self { settings, keys }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Finds the provider's keys (from `jwks_url`, or its discovery document) and loads
    /// them: once, at cold start.
    pub async fn discover(settings: OidcSettings) -> Result<Self, KeyError> {
        let jwks_url = match &settings.jwks_url {
            Some(url) => url.clone(),
            None => discover_jwks_url(&settings.issuer).await?,
        };
        let keys = JwksKeys::fetch(&jwks_url, JWKS_MAX_AGE, UNKNOWN_KID_INTERVAL).await?;
        Ok(Self::new(settings, Arc::new(keys)))
    }

    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, TokenRejection> {
        let (claims, _kid) =
            match token::verify_signature::<Value>(token, &self.keys.current(), &ALLOWED) {
                Err(TokenRejection::UnknownKey) => {
                    let refreshed = self.keys.refresh_for_unknown_kid().await;
                    token::verify_signature::<Value>(token, &refreshed, &ALLOWED)?
                }
                result => result?,
            };
        self.check_claims(&claims, now)
    }

    fn check_claims(&self, claims: &Value, now: DateTime<Utc>) -> Result<Caller, TokenRejection> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(self.settings.issuer.as_str()) {
            return Err(TokenRejection::WrongIssuer);
        }
        // ID tokens carry `aud` (a string or a list); Cognito access tokens `client_id`.
        let audience = self.settings.audience.as_str();
        let aud_matches = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            None => text("client_id") == Some(audience),
            Some(_) => false,
        };
        if !aud_matches {
            return Err(TokenRejection::WrongAudience);
        }
        let now = now.timestamp();
        let leeway = self.settings.leeway_seconds;
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(TokenRejection::Malformed)?;
        if exp + leeway <= now {
            return Err(TokenRejection::Expired);
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && nbf - leeway > now
        {
            return Err(TokenRejection::NotYetValid);
        }
        let subject = text("sub")
            .filter(|s| !s.is_empty())
            .ok_or(TokenRejection::Malformed)?;
        Ok(Caller {
            issuer: self.settings.issuer.clone(),
            subject: subject.to_owned(),
        })
    }
}

/// The provider's `jwks_uri`, from a discovery document that names this very issuer;
/// fetched like a JWKS (https only but on loopback, no redirects, size-capped).
async fn discover_jwks_url(issuer: &str) -> Result<String, KeyError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let failed = |e: String| KeyError::Source(format!("OIDC discovery {url}: {e}"));
    let body = crate::verifier::fetch_limited(&url).await?;
    let document: Value = serde_json::from_slice(&body).map_err(|e| failed(e.to_string()))?;
    if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(failed("the document names another issuer".into()));
    }
    document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| failed("no jwks_uri".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeySet, StoredKeySet};
    use serde_json::json;

    fn provider(algorithm: SigningAlgorithm) -> (KeySet, OidcVerifier) {
        let keys =
            KeySet::from_secret(&StoredKeySet::generate(algorithm).unwrap().to_secret()).unwrap();
        let settings = OidcSettings {
            issuer: "https://idp.example".into(),
            audience: "app".into(),
            jwks_url: None,
            leeway_seconds: 30,
        };
        let verifier = OidcVerifier::new(
            settings,
            Arc::new(crate::verifier::StaticKeys(keys.public_keys().clone())),
        );
        (keys, verifier)
    }

    fn mint(keys: &KeySet, claims: Value) -> String {
        let mut header = jsonwebtoken::Header::new(keys.current.algorithm().jwt());
        header.kid = Some(keys.current.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, keys.current.encoding_key()).unwrap()
    }

    #[test]
    fn custom_ids_are_stable_distinct_and_free_of_the_user_id() {
        let alice = Caller {
            issuer: "https://idp".into(),
            subject: "alice@example.com".into(),
        };
        let bob = Caller {
            issuer: "https://idp".into(),
            subject: "bob@example.com".into(),
        };
        let other_idp = Caller {
            issuer: "https://other".into(),
            subject: "alice@example.com".into(),
        };
        assert_eq!(alice.custom_id(), alice.clone().custom_id());
        assert_ne!(alice.custom_id(), bob.custom_id());
        assert_ne!(alice.custom_id(), other_idp.custom_id());
        assert!(!alice.custom_id().as_str().contains("alice"));
    }

    #[tokio::test]
    async fn provider_tokens_are_checked_claim_by_claim() {
        let (keys, verifier) = provider(SigningAlgorithm::Rs256);
        let now = Utc::now().timestamp();
        let good = json!({"iss": "https://idp.example", "aud": "app", "sub": "u1", "exp": now + 600, "iat": now});
        assert_eq!(
            verifier
                .verify(&mint(&keys, good.clone()), Utc::now())
                .await
                .unwrap()
                .subject,
            "u1"
        );

        let with = |field: &str, value: Value| {
            let mut claims = good.clone();
            claims[field] = value;
            mint(&keys, claims)
        };
        let cases = [
            (
                with("iss", json!("https://evil")),
                TokenRejection::WrongIssuer,
            ),
            (
                with("aud", json!("other-app")),
                TokenRejection::WrongAudience,
            ),
            (with("exp", json!(now - 60)), TokenRejection::Expired),
            (with("nbf", json!(now + 600)), TokenRejection::NotYetValid),
            (with("sub", json!("")), TokenRejection::Malformed),
        ];
        for (token, reason) in cases {
            assert_eq!(verifier.verify(&token, Utc::now()).await, Err(reason));
        }
        assert!(
            verifier
                .verify(&with("aud", json!(["x", "app"])), Utc::now())
                .await
                .is_ok()
        );
        let mut cognito = good.clone();
        cognito.as_object_mut().unwrap().remove("aud");
        cognito["client_id"] = json!("app");
        assert!(
            verifier
                .verify(&mint(&keys, cognito), Utc::now())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn eddsa_is_not_accepted_from_providers() {
        let (keys, verifier) = provider(SigningAlgorithm::EdDsa);
        let now = Utc::now().timestamp();
        let token = mint(
            &keys,
            json!({"iss": "https://idp.example", "aud": "app", "sub": "u", "exp": now + 60}),
        );
        assert_eq!(
            verifier.verify(&token, Utc::now()).await,
            Err(TokenRejection::BadSignature)
        );
    }

    #[test]
    fn gateway_claims_must_come_from_the_configured_issuer() {
        let claims = json!({"iss": "https://idp.example", "sub": "u1"});
        assert_eq!(
            Caller::from_gateway_claims(&claims, "https://idp.example").map(|c| c.subject),
            Some("u1".into())
        );
        assert!(Caller::from_gateway_claims(&claims, "https://other").is_none());
        assert!(
            Caller::from_gateway_claims(
                &json!({"iss": "https://idp.example"}),
                "https://idp.example"
            )
            .is_none()
        );
    }
}
