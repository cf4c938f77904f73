//! The keys of a running function, loaded at cold start and refreshed from their source
//! once per TTL in the background, never fetched per request. Each function holds only
//! what it uses: the private signing keys only where tokens are issued, the published
//! public keys where tokens are only verified, none elsewhere; the access keys only where
//! HMAC-authenticated routes are served.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use callsign_verifier::PublicKeySource;
use callsign_verifier::cache::Cached;

use super::access_keys::AccessKeys;
use super::keys::{KeyError, KeySet, PublicKeys, PublishedKeys};
use super::ports::{KeySource, KeysNeeded};
use super::signals;

enum Keys {
    Signing(Cached<KeySet>),
    Published(Cached<PublishedKeys>),
    /// A function that neither signs nor verifies: no key set at all.
    None(Arc<PublishedKeys>),
}

pub struct KeyRing {
    keys: Keys,
    access: Option<Cached<AccessKeys>>,
}

impl KeyRing {
    pub async fn load(
        source: Arc<dyn KeySource>,
        ttl: Duration,
        needed: KeysNeeded,
    ) -> Result<Arc<Self>, KeyError> {
        // One round trip for every secret where the source allows it.
        let loaded = source.load(needed).await;
        // Every failure is counted before the first is returned.
        let signing = loaded
            .signing
            .map(|keys| keys.inspect_err(|_| signals::key_load_failed("signing")));
        let published = loaded
            .published
            .map(|keys| keys.inspect_err(|_| signals::key_load_failed("public")));
        let access = loaded
            .access
            .map(|keys| keys.inspect_err(|_| signals::key_load_failed("access")));
        let keys = if needed.signing {
            Keys::Signing(cached(&source, signing, ttl, "signing", |s| {
                s.signing_keys()
            })?)
        } else if needed.published() {
            Keys::Published(cached(&source, published, ttl, "public", |s| {
                s.published_keys()
            })?)
        } else {
            Keys::None(Arc::new(PublishedKeys::new(PublicKeys::default())))
        };
        let access = if needed.access {
            Some(cached(&source, access, ttl, "access", |s| s.access_keys())?)
        } else {
            None
        };
        Ok(Arc::new(Self { keys, access }))
    }

    /// The private signing keys; None in a function that only verifies.
    pub fn signing_keys(&self) -> Option<Arc<KeySet>> {
        match &self.keys {
            Keys::Signing(keys) => Some(keys.get()),
            Keys::Published(_) | Keys::None(_) => None,
        }
    }

    /// The public keys in force, as the JWKS publishes them.
    pub fn published_keys(&self) -> Arc<PublishedKeys> {
        match &self.keys {
            Keys::Signing(keys) => keys.get().published().clone(),
            Keys::Published(keys) => keys.get(),
            Keys::None(empty) => empty.clone(),
        }
    }

    /// Fetches the keys now (a token named a kid we do not know: a rotation may have
    /// happened since the last refresh), at most once per `min_interval`.
    pub async fn refresh_published_keys(&self, min_interval: Duration) -> Arc<PublishedKeys> {
        match &self.keys {
            Keys::Signing(keys) => keys.refresh_now(min_interval).await.published().clone(),
            Keys::Published(keys) => keys.refresh_now(min_interval).await,
            Keys::None(empty) => empty.clone(),
        }
    }

    /// None in a function loaded without access keys.
    pub fn access_keys(&self) -> Option<Arc<AccessKeys>> {
        self.access.as_ref().map(Cached::get)
    }
}

/// A `KeySource` method's future, as `async_trait` shapes it.
type Fetch<'a, T> = Pin<Box<dyn Future<Output = Result<T, KeyError>> + Send + 'a>>;

/// A needed key set as the source loaded it (a source that skipped it is at fault), then
/// refreshed with `fetch` once per TTL.
fn cached<T: Send + Sync + 'static>(
    source: &Arc<dyn KeySource>,
    loaded: Option<Result<T, KeyError>>,
    ttl: Duration,
    keys: &'static str,
    fetch: for<'a> fn(&'a dyn KeySource) -> Fetch<'a, T>,
) -> Result<Cached<T>, KeyError> {
    let loaded =
        loaded.unwrap_or_else(|| Err(KeyError::Source(format!("no {keys} keys were loaded"))))?;
    let source = source.clone();
    Ok(Cached::new(loaded, ttl, keys, move || {
        let source = source.clone();
        async move { fetch(source.as_ref()).await }
    }))
}

/// Our own keys as a verifier's key source.
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
        self.ring.published_keys().public_keys().clone()
    }

    async fn refresh_for_unknown_kid(&self) -> Arc<PublicKeys> {
        self.ring
            .refresh_published_keys(self.min_refresh_interval)
            .await
            .public_keys()
            .clone()
    }
}
