//! The identity-provider adapter: tokens from any OpenID Connect provider (Cognito, Auth0,
//! Entra ID, Keycloak, Google), checked against the provider's JWKS (found by discovery),
//! issuer, audience, expiry with leeway, RS256/ES256 only. End users sign in with them
//! (`ProviderTokens`); admin callers and Teams users bring them from a set of trusted
//! issuers (`TrustedTokens`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use callsign_verifier::{JwksKeys, PublicKeySource};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{OidcSettings, RolesClaim, TrustedIssuer};
use crate::domain::front::Caller;
use crate::domain::keys::{KeyError, SigningAlgorithm};
use crate::domain::ports::{ProviderTokenError, ProviderTokens, TrustedToken, TrustedTokens};
use crate::domain::token::{self, TokenRejection};

const ALLOWED: [SigningAlgorithm; 2] = [SigningAlgorithm::Rs256, SigningAlgorithm::Es256];
/// Provider keys are cached this long, and refetched early on an unknown kid at most
/// once per minute.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(60);

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

    /// A signed-in end user.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, TokenRejection> {
        let (_, subject) = self.verify_claims(token, now).await?;
        Ok(Caller {
            issuer: self.settings.issuer.clone(),
            subject,
        })
    }

    /// The token's claims and subject, once signature, issuer, audience and time hold.
    pub async fn verify_claims(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Value, String), TokenRejection> {
        let (claims, _kid) =
            match token::verify_signature::<Value>(token, &self.keys.current(), &ALLOWED) {
                Err(TokenRejection::UnknownKey) => {
                    let refreshed = self.keys.refresh_for_unknown_kid().await;
                    token::verify_signature::<Value>(token, &refreshed, &ALLOWED)?
                }
                result => result?,
            };
        let subject = self.check_claims(&claims, now)?;
        Ok((claims, subject))
    }

    fn check_claims(&self, claims: &Value, now: DateTime<Utc>) -> Result<String, TokenRejection> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(self.settings.issuer.as_str()) {
            return Err(TokenRejection::WrongIssuer);
        }
        // ID tokens carry `aud` (a string or a list); Cognito access tokens `client_id`.
        let accepted = |aud: &str| self.settings.audiences.iter().any(|a| a == aud);
        let aud_matches = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
            None => text("client_id").is_some_and(accepted),
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
        Ok(subject.to_owned())
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
    let body = callsign_verifier::jwks::fetch_document(&url).await?;
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

#[async_trait]
impl ProviderTokens for OidcVerifier {
    async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, ProviderTokenError> {
        OidcVerifier::verify(self, token, now)
            .await
            .map_err(ProviderTokenError::Rejected)
    }
}

/// A provider whose keys load at cold start when it answers, else on first use: an
/// unreachable provider then fails sign-ins (retry later) until it is back, not the
/// whole function (guests keep working).
pub struct DiscoveredProvider {
    settings: OidcSettings,
    verifier: tokio::sync::OnceCell<OidcVerifier>,
}

impl DiscoveredProvider {
    /// Tries discovery for up to `warm_for`; a provider that does not answer in time is
    /// tried again on first use.
    pub async fn start(settings: OidcSettings, warm_for: Duration) -> Self {
        let provider = Self::lazy(settings);
        provider.warm(warm_for).await;
        provider
    }

    /// A provider whose keys load on first use.
    fn lazy(settings: OidcSettings) -> Self {
        Self {
            settings,
            verifier: tokio::sync::OnceCell::new(),
        }
    }

    /// Loads the keys if the provider answers within `warm_for`.
    async fn warm(&self, warm_for: Duration) {
        if !matches!(tokio::time::timeout(warm_for, self.get()).await, Ok(Ok(_))) {
            tracing::warn!(
                issuer = %self.settings.issuer,
                "identity provider keys not loaded at cold start; retrying on first use"
            );
        }
    }

    /// A provider whose keys are in hand already (a development issuer, tests).
    pub fn ready(verifier: OidcVerifier) -> Self {
        Self {
            settings: verifier.settings.clone(),
            verifier: tokio::sync::OnceCell::new_with(Some(verifier)),
        }
    }

    async fn get(&self) -> Result<&OidcVerifier, KeyError> {
        self.verifier
            .get_or_try_init(|| OidcVerifier::discover(self.settings.clone()))
            .await
    }
}

/// Bearer tokens from a set of trusted issuers, each with its own audiences and the claim
/// its roles are read from. A token is checked only against the issuer it names.
pub struct TrustedIssuers {
    issuers: Vec<(RolesClaim, Arc<DiscoveredProvider>)>,
}

impl TrustedIssuers {
    /// Each issuer's keys load now if it answers within `warm_for` (all at once: a cold
    /// start waits `warm_for` at most, however many issuers), else on first use.
    pub async fn start(issuers: &[TrustedIssuer], warm_for: Duration) -> Self {
        let started: Vec<(RolesClaim, Arc<DiscoveredProvider>)> = issuers
            .iter()
            .map(|issuer| {
                let provider = DiscoveredProvider::lazy(issuer.oidc.clone());
                (issuer.roles.clone(), Arc::new(provider))
            })
            .collect();
        let mut warming = tokio::task::JoinSet::new();
        for (_, provider) in &started {
            let provider = provider.clone();
            warming.spawn(async move { provider.warm(warm_for).await });
        }
        while warming.join_next().await.is_some() {}
        Self { issuers: started }
    }

    pub fn new(issuers: Vec<(RolesClaim, DiscoveredProvider)>) -> Self {
        Self {
            issuers: issuers
                .into_iter()
                .map(|(roles, provider)| (roles, Arc::new(provider)))
                .collect(),
        }
    }
}

/// The roles (or scopes) a token carries in the claim configured: a list, or a
/// space-separated string (`scp`, `scope`); with a prefix (a Cognito resource server's
/// `callsign/`), only values under it count, without it.
fn read_roles(roles: &RolesClaim, claims: &Value) -> Vec<String> {
    let values: Vec<&str> = match claims.get(&roles.claim) {
        Some(Value::String(text)) => text.split_whitespace().collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    values
        .into_iter()
        .filter_map(|value| value.strip_prefix(roles.prefix.as_str()))
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The `iss` a token names, read before its signature is checked only to pick the keys
/// to check it with.
fn named_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

#[async_trait]
impl TrustedTokens for TrustedIssuers {
    async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<TrustedToken, ProviderTokenError> {
        let named =
            named_issuer(token).ok_or(ProviderTokenError::Rejected(TokenRejection::Malformed))?;
        let (roles, provider) = self
            .issuers
            .iter()
            .find(|(_, provider)| provider.settings.issuer == named)
            .ok_or(ProviderTokenError::Rejected(TokenRejection::WrongIssuer))?;
        let verifier = provider
            .get()
            .await
            .map_err(|e| ProviderTokenError::Unavailable(e.to_string()))?;
        let (claims, subject) = verifier
            .verify_claims(token, now)
            .await
            .map_err(ProviderTokenError::Rejected)?;
        Ok(TrustedToken {
            issuer: named,
            subject,
            roles: read_roles(roles, &claims),
            claims,
        })
    }
}

#[async_trait]
impl ProviderTokens for DiscoveredProvider {
    async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, ProviderTokenError> {
        let verifier = self
            .get()
            .await
            .map_err(|e| ProviderTokenError::Unavailable(e.to_string()))?;
        OidcVerifier::verify(verifier, token, now)
            .await
            .map_err(ProviderTokenError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::{KeySet, StoredKeySet};
    use serde_json::json;

    fn provider(algorithm: SigningAlgorithm) -> (KeySet, OidcVerifier) {
        let keys =
            KeySet::from_secret(&StoredKeySet::generate(algorithm).unwrap().to_secret()).unwrap();
        let settings = OidcSettings {
            issuer: "https://idp.example".into(),
            audiences: vec!["app".into()],
            jwks_url: None,
            leeway_seconds: 30,
        };
        let verifier = OidcVerifier::new(
            settings,
            Arc::new(callsign_verifier::StaticKeys(keys.public_keys().clone())),
        );
        (keys, verifier)
    }

    fn mint(keys: &KeySet, claims: Value) -> String {
        let mut header = jsonwebtoken::Header::new(keys.current.algorithm().jwt());
        header.kid = Some(keys.current.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, keys.current.encoding_key()).unwrap()
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

    #[test]
    fn roles_are_read_from_the_claim_configured() {
        let claims = json!({
            "roles": ["identity.admin", "other"],
            "scope": "callsign/token.issue openid callsign/",
            "scp": "Teams.ManageCalls Teams.ManageChats",
        });
        let claim = |name: &str, prefix: &str| RolesClaim {
            claim: name.into(),
            prefix: prefix.into(),
        };
        assert_eq!(
            read_roles(&claim("roles", ""), &claims),
            ["identity.admin", "other"]
        );
        assert_eq!(
            read_roles(&claim("scope", "callsign/"), &claims),
            ["token.issue"]
        );
        assert_eq!(
            read_roles(&claim("scp", ""), &claims),
            ["Teams.ManageCalls", "Teams.ManageChats"]
        );
        assert!(read_roles(&claim("missing", ""), &claims).is_empty());
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
}
