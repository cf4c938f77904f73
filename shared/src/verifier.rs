//! A verifier any Rust service can embed: checks a callsign token's signature against a
//! key set (fetched from a JWKS URL, or our own key ring), issuer, audience and time, and
//! maps its scopes to capabilities. Revocation needs the identity's record: see
//! `token::check_revocation` (introspection and the authorizer do that part).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::capability::Capability;
use crate::keys::{Cached, KeyError, KeyRing, PublicKeys};
use crate::token::{self, Expectations, TokenRejection, VerifiedToken};

/// Where a verifier's public keys come from.
#[async_trait]
pub trait PublicKeySource: Send + Sync {
    /// The keys as cached now (may start a background refresh when they are old).
    fn current(&self) -> Arc<PublicKeys>;
    /// A token named a kid we do not know: fetch again, at most once per interval.
    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys>;
}

#[derive(Clone)]
pub struct Verifier {
    expected: Expectations,
    keys: Arc<dyn PublicKeySource>,
}

impl Verifier {
    pub fn new(expected: Expectations, keys: Arc<dyn PublicKeySource>) -> Self {
        Self { expected, keys }
    }

    pub async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, TokenRejection> {
        match token::verify(token, &self.expected, &self.keys.current(), now) {
            Err(TokenRejection::UnknownKey) => {
                let refreshed = self.keys.refresh_for_unknown_kid().await;
                token::verify(token, &self.expected, &refreshed, now)
            }
            result => result,
        }
    }

    /// Verifies and checks that the token's scopes grant `capability`.
    pub async fn authorize(
        &self,
        token: &str,
        capability: Capability,
        now: DateTime<Utc>,
    ) -> Result<Option<VerifiedToken>, TokenRejection> {
        let verified = self.verify(token, now).await?;
        Ok(verified.scopes.grants(capability).then_some(verified))
    }
}

/// Our own signing keys, for functions that can read the key set secret directly.
pub struct KeyRingKeys {
    ring: Arc<KeyRing>,
    min_refresh_interval: Duration,
}

impl KeyRingKeys {
    pub fn new(ring: Arc<KeyRing>, min_refresh_interval: Duration) -> Self {
        Self {
            ring,
            min_refresh_interval,
        }
    }
}

#[async_trait]
impl PublicKeySource for KeyRingKeys {
    fn current(&self) -> Arc<PublicKeys> {
        self.ring.signing_keys().public_keys().clone()
    }

    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys> {
        self.ring
            .refresh_signing_keys(self.min_refresh_interval)
            .await
            .public_keys()
            .clone()
    }
}

/// Keys from a JWKS URL (callsign's `/.well-known/jwks.json`, or an identity provider's),
/// cached for `max_age` and fetched early on an unknown kid at most once per
/// `min_refresh_interval`. Only https URLs (plain http on loopback, for tests and local
/// runs), no redirects, at most 1 MiB, and never an empty key set.
pub struct JwksKeys {
    url: String,
    http: reqwest::Client,
    cache: Cached<PublicKeys>,
    min_refresh_interval: Duration,
}

const MAX_DOCUMENT_BYTES: usize = 1 << 20;

impl JwksKeys {
    /// Fetches the key set once; fails if it cannot be had.
    pub async fn fetch(
        url: &str,
        max_age: Duration,
        min_refresh_interval: Duration,
    ) -> Result<Arc<Self>, KeyError> {
        let http = http_client(url)?;
        let keys = get_jwks(&http, url).await?;
        Ok(Arc::new(Self {
            url: url.to_owned(),
            http,
            cache: Cached::new(keys, max_age),
            min_refresh_interval,
        }))
    }
}

/// A client for key material: https only (plain http on loopback, for tests and local
/// runs), no redirects, short timeouts.
fn http_client(url: &str) -> Result<reqwest::Client, KeyError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| KeyError::Invalid(format!("{url}: {e}")))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        return Err(KeyError::Invalid(format!("{url}: only https is accepted")));
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| KeyError::Source(format!("HTTP client: {e}")))
}

async fn get_limited(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, KeyError> {
    let failed = |e: String| KeyError::Source(format!("GET {url}: {e}"));
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(response.status().to_string()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(failed("the document is larger than 1 MiB".into()));
        }
    }
    Ok(body)
}

/// One GET of a small JSON document under the key-material rules (OIDC discovery).
pub(crate) async fn fetch_limited(url: &str) -> Result<Vec<u8>, KeyError> {
    get_limited(&http_client(url)?, url).await
}

async fn get_jwks(http: &reqwest::Client, url: &str) -> Result<PublicKeys, KeyError> {
    let body = get_limited(http, url).await?;
    let keys = PublicKeys::from_jwks(&String::from_utf8_lossy(&body))?;
    // A set with no usable key would lock every token out: keep the old one instead.
    if keys.iter().next().is_none() {
        return Err(KeyError::Invalid(format!(
            "{url} lists no usable signing key"
        )));
    }
    Ok(keys)
}

#[async_trait]
impl PublicKeySource for Arc<JwksKeys> {
    fn current(&self) -> Arc<PublicKeys> {
        let (keys, claim) = self.cache.get();
        if let Some(claim) = claim {
            let generation = claim.hand_over();
            let this = self.clone();
            tokio::spawn(async move {
                let claim = this.cache.resume(generation);
                claim.finish(get_jwks(&this.http, &this.url).await, "JWKS");
            });
        }
        keys
    }

    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys> {
        self.cache
            .force(
                self.min_refresh_interval,
                get_jwks(&self.http, &self.url),
                "JWKS",
            )
            .await
    }
}

/// A fixed key set (the local server's development issuer, tests).
pub struct StaticKeys(pub Arc<PublicKeys>);

#[async_trait]
impl PublicKeySource for StaticKeys {
    fn current(&self) -> Arc<PublicKeys> {
        self.0.clone()
    }
    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys> {
        self.0.clone()
    }
}
