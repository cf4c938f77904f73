//! The keys of a running function: the signing key set and (for functions that serve
//! HMAC-authenticated routes) the access keys. Loaded at cold start, refreshed from their
//! source once per TTL in the background, never fetched per request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use callsign_verifier::PublicKeySource;
use callsign_verifier::cache::Cached;

use super::access_keys::AccessKeys;
use super::keys::{KeyError, KeySet, PublicKeys};
use super::ports::KeySource;

pub struct KeyRing {
    signing: Cached<KeySet>,
    access: Option<Cached<AccessKeys>>,
}

impl KeyRing {
    /// Signing and access keys.
    pub async fn load(source: Arc<dyn KeySource>, ttl: Duration) -> Result<Arc<Self>, KeyError> {
        let (signing, access) = tokio::try_join!(source.signing_keys(), source.access_keys())?;
        let access_source = source.clone();
        let access = Cached::new(access, ttl, "access", move || {
            let source = access_source.clone();
            async move { source.access_keys().await }
        });
        Ok(Arc::new(Self {
            signing: Self::signing_cache(source, signing, ttl),
            access: Some(access),
        }))
    }

    /// Signing keys only: functions that serve no HMAC-authenticated route hold no access
    /// keys (nor may they read them).
    pub async fn load_signing_only(
        source: Arc<dyn KeySource>,
        ttl: Duration,
    ) -> Result<Arc<Self>, KeyError> {
        let signing = source.signing_keys().await?;
        Ok(Arc::new(Self {
            signing: Self::signing_cache(source, signing, ttl),
            access: None,
        }))
    }

    fn signing_cache(source: Arc<dyn KeySource>, keys: KeySet, ttl: Duration) -> Cached<KeySet> {
        Cached::new(keys, ttl, "signing", move || {
            let source = source.clone();
            async move { source.signing_keys().await }
        })
    }

    pub fn signing_keys(&self) -> Arc<KeySet> {
        self.signing.get()
    }

    /// Fetches the signing keys now (a token named a kid we do not know: a rotation may
    /// have happened since the last refresh), at most once per `min_interval`.
    pub async fn refresh_signing_keys(&self, min_interval: Duration) -> Arc<KeySet> {
        self.signing.refresh_now(min_interval).await
    }

    /// None in a function loaded without access keys.
    pub fn access_keys(&self) -> Option<Arc<AccessKeys>> {
        self.access.as_ref().map(Cached::get)
    }
}

/// Our own signing keys as a verifier's key source.
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
