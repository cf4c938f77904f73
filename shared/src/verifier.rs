//! A verifier any Rust service can embed: checks a callsign token's signature against a
//! key set (fetched from a JWKS URL, or our own key ring), issuer, audience and time, and
//! maps its scopes to capabilities. Revocation needs the identity's record: see
//! `token::check_revocation` (introspection and the authorizer do that part).

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Keys from a JWKS URL (callsign's `/.well-known/jwks.json`), cached for `max_age` and
/// fetched early on an unknown kid at most once per `min_refresh_interval`.
pub struct JwksKeys {
    url: String,
    http: reqwest::Client,
    cache: Cached<PublicKeys>,
    min_refresh_interval: Duration,
    last_forced: std::sync::Mutex<Option<Instant>>,
}

impl JwksKeys {
    /// Fetches the key set once; fails if it cannot be had.
    pub async fn fetch(
        url: &str,
        max_age: Duration,
        min_refresh_interval: Duration,
    ) -> Result<Arc<Self>, KeyError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| KeyError::Source(format!("HTTP client: {e}")))?;
        let keys = get_jwks(&http, url).await?;
        Ok(Arc::new(Self {
            url: url.to_owned(),
            http,
            cache: Cached::new(keys, max_age),
            min_refresh_interval,
            last_forced: std::sync::Mutex::new(None),
        }))
    }
}

async fn get_jwks(http: &reqwest::Client, url: &str) -> Result<PublicKeys, KeyError> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| KeyError::Source(format!("GET {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(KeyError::Source(format!(
            "GET {url}: {}",
            response.status()
        )));
    }
    let body = response
        .text()
        .await
        .map_err(|e| KeyError::Source(format!("GET {url}: {e}")))?;
    PublicKeys::from_jwks(&body)
}

#[async_trait]
impl PublicKeySource for Arc<JwksKeys> {
    fn current(&self) -> Arc<PublicKeys> {
        let (keys, refresh) = self.cache.get();
        if refresh {
            let this = self.clone();
            tokio::spawn(async move {
                let fresh = get_jwks(&this.http, &this.url).await;
                this.cache.finish_refresh(fresh, "JWKS");
            });
        }
        keys
    }

    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys> {
        let due = {
            let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= self.min_refresh_interval);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            match get_jwks(&self.http, &self.url).await {
                Ok(keys) => self.cache.replace(keys),
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the cached keys")
                }
            }
        }
        self.cache.get().0
    }
}
