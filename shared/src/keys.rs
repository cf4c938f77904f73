//! Signing keys: the key set (current + previous) that signs and verifies tokens, its
//! storage form (a Secrets Manager secret), and the cache that keeps it in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use crate::auth::AccessKeys;

const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key material is invalid: {0}")]
    Invalid(String),
    #[error("key source failed: {0}")]
    Source(String),
}

/// One asymmetric signing key with its id.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Uncompressed P-256 point coordinates, base64url: the public JWK's `x` and `y`.
    public_xy: (String, String),
}

impl SigningKey {
    /// A fresh ES256 key.
    pub fn generate() -> Result<(Self, StoredKey), KeyError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Invalid("could not generate a P-256 key".into()))?;
        let stored = StoredKey {
            kid: new_kid(),
            alg: "ES256".into(),
            private_key: STANDARD.encode(pkcs8.as_ref()),
        };
        Ok((Self::from_stored(&stored)?, stored))
    }

    pub fn from_stored(stored: &StoredKey) -> Result<Self, KeyError> {
        if stored.alg != "ES256" {
            return Err(KeyError::Invalid(format!(
                "key {} uses unsupported algorithm {}",
                stored.kid, stored.alg
            )));
        }
        if stored.kid.is_empty() || !stored.kid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyError::Invalid(
                "a kid must be non-empty ASCII letters and digits".into(),
            ));
        }
        let der = STANDARD.decode(&stored.private_key).map_err(|_| {
            KeyError::Invalid(format!("key {}: privateKey is not base64", stored.kid))
        })?;
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).map_err(|_| {
                KeyError::Invalid(format!(
                    "key {}: privateKey is not a P-256 PKCS#8 key",
                    stored.kid
                ))
            })?;
        let point = pair.public_key().as_ref();
        // 0x04 || x (32 bytes) || y (32 bytes)
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let decoding = DecodingKey::from_ec_components(&x, &y)
            .map_err(|e| KeyError::Invalid(format!("key {}: {e}", stored.kid)))?;
        Ok(Self {
            kid: stored.kid.clone(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(&der),
            decoding,
            public_xy: (x, y),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
    pub fn public_xy(&self) -> (&str, &str) {
        (&self.public_xy.0, &self.public_xy.1)
    }
}

/// The keys in force: tokens are signed with `current`; `previous` still verifies, so a
/// rotation never breaks a live token.
pub struct KeySet {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
}

impl KeySet {
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|key| key.kid == kid)
    }

    pub fn from_secret(secret: &str) -> Result<Self, KeyError> {
        // serde's message could quote the secret: say only where it broke.
        let stored: StoredKeySet = serde_json::from_str(secret).map_err(|e| {
            KeyError::Invalid(format!(
                "signing key set secret is not the documented JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        Ok(Self {
            current: SigningKey::from_stored(&stored.current)?,
            previous: stored
                .previous
                .as_ref()
                .map(SigningKey::from_stored)
                .transpose()?,
        })
    }
}

/// The signing key set's secret value (JSON): private keys as base64 PKCS#8 DER.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredKeySet {
    pub current: StoredKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<StoredKey>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub private_key: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl StoredKeySet {
    /// A new set with one fresh current key and no previous one.
    pub fn generate() -> Result<Self, KeyError> {
        let (_, current) = SigningKey::generate()?;
        Ok(Self {
            current,
            previous: None,
        })
    }

    pub fn to_secret(&self) -> String {
        serde_json::to_string(self).expect("plain strings serialize")
    }
}

fn new_kid() -> String {
    // Letters and digits only: the kid lands in the JWT header.
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// Where keys come from: Secrets Manager in AWS, generated in memory for local runs.
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn signing_keys(&self) -> Result<KeySet, KeyError>;
    async fn access_keys(&self) -> Result<AccessKeys, KeyError>;
}

/// Keys held in memory, generated at start (local server, tests).
pub struct LocalKeySource {
    signing: String,
    access: String,
}

impl LocalKeySource {
    pub fn new(signing: &StoredKeySet, access: &AccessKeys) -> Self {
        Self {
            signing: signing.to_secret(),
            access: access.to_secret(),
        }
    }
}

#[async_trait]
impl KeySource for LocalKeySource {
    async fn signing_keys(&self) -> Result<KeySet, KeyError> {
        KeySet::from_secret(&self.signing)
    }
    async fn access_keys(&self) -> Result<AccessKeys, KeyError> {
        AccessKeys::from_secret(&self.access)
    }
}

/// A value loaded once and then refreshed at most once per `ttl`; requests never wait on
/// the source while a usable value is cached. A failed refresh keeps the old value.
pub struct Cached<T> {
    entry: RwLock<(Arc<T>, Instant)>,
    ttl: Duration,
    refreshing: AtomicBool,
}

impl<T> Cached<T> {
    pub fn new(value: T, ttl: Duration) -> Self {
        Self {
            entry: RwLock::new((Arc::new(value), Instant::now())),
            ttl,
            refreshing: AtomicBool::new(false),
        }
    }

    /// The cached value, and whether it is due for a refresh (only one caller is told so).
    pub fn get(&self) -> (Arc<T>, bool) {
        let entry = self.entry.read().unwrap_or_else(|e| e.into_inner());
        let stale = entry.1.elapsed() >= self.ttl;
        let claim = stale
            && self
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        (entry.0.clone(), claim)
    }

    /// Finish a refresh claimed through `get`: store the new value, or on failure keep the
    /// old one and wait another `ttl` before retrying.
    pub fn finish_refresh(&self, fresh: Result<T, KeyError>, what: &str) {
        {
            let mut entry = self.entry.write().unwrap_or_else(|e| e.into_inner());
            match fresh {
                Ok(value) => entry.0 = Arc::new(value),
                Err(e) => {
                    tracing::warn!(error = %e, "{what} key refresh failed; keeping the cached keys")
                }
            }
            entry.1 = Instant::now();
        }
        self.refreshing.store(false, Ordering::Release);
    }
}

/// The signing and access keys of a running function: loaded at cold start, refreshed
/// from the source once per TTL (in the background), never fetched per request.
pub struct KeyRing {
    source: Arc<dyn KeySource>,
    signing: Cached<KeySet>,
    access: Cached<AccessKeys>,
}

impl KeyRing {
    pub async fn load(source: Arc<dyn KeySource>, ttl: Duration) -> Result<Arc<Self>, KeyError> {
        let (signing, access) = tokio::try_join!(source.signing_keys(), source.access_keys())?;
        Ok(Arc::new(Self {
            source,
            signing: Cached::new(signing, ttl),
            access: Cached::new(access, ttl),
        }))
    }

    pub fn signing_keys(self: &Arc<Self>) -> Arc<KeySet> {
        let (keys, refresh) = self.signing.get();
        if refresh {
            let ring = self.clone();
            tokio::spawn(async move {
                let fresh = bounded(ring.source.signing_keys()).await;
                ring.signing.finish_refresh(fresh, "signing");
            });
        }
        keys
    }

    pub fn access_keys(self: &Arc<Self>) -> Arc<AccessKeys> {
        let (keys, refresh) = self.access.get();
        if refresh {
            let ring = self.clone();
            tokio::spawn(async move {
                let fresh = bounded(ring.source.access_keys()).await;
                ring.access.finish_refresh(fresh, "access");
            });
        }
        keys
    }
}

/// A refresh that hangs (say, on a connection that died while the sandbox was frozen)
/// must not block every later refresh.
async fn bounded<T>(fetch: impl Future<Output = Result<T, KeyError>>) -> Result<T, KeyError> {
    tokio::time::timeout(REFRESH_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(KeyError::Source("refresh timed out".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_sets_round_trip_through_their_secret() {
        let stored = StoredKeySet::generate().unwrap();
        let secret = stored.to_secret();
        let set = KeySet::from_secret(&secret).unwrap();
        assert_eq!(set.current.kid(), stored.current.kid);
        assert!(set.previous.is_none());
        assert!(set.find(&stored.current.kid).is_some());
        assert!(set.find("other").is_none());
        assert!(!format!("{:?}", stored).contains(&stored.current.private_key));
    }

    #[test]
    fn bad_key_material_is_rejected_with_a_reason() {
        let mut stored = StoredKeySet::generate().unwrap();
        stored.current.private_key = STANDARD.encode(b"not a key");
        assert!(matches!(
            KeySet::from_secret(&stored.to_secret()),
            Err(KeyError::Invalid(_))
        ));
        assert!(matches!(
            KeySet::from_secret("{}"),
            Err(KeyError::Invalid(_))
        ));
        let mut stored = StoredKeySet::generate().unwrap();
        stored.current.alg = "HS256".into();
        assert!(KeySet::from_secret(&stored.to_secret()).is_err());
    }

    #[test]
    fn cache_hands_out_one_refresh_claim_at_a_time() {
        let cache = Cached::new(1, Duration::ZERO);
        let (value, first) = cache.get();
        let (_, second) = cache.get();
        assert_eq!(*value, 1);
        assert!(first);
        assert!(!second, "a second refresh was claimed while one is running");
        cache.finish_refresh(Ok(2), "test");
        assert_eq!(*cache.get().0, 2);
        cache.finish_refresh(Err(KeyError::Source("down".into())), "test");
        assert_eq!(
            *cache.get().0,
            2,
            "a failed refresh must keep the old value"
        );
    }

    #[test]
    fn fresh_cache_does_not_ask_for_refresh() {
        let cache = Cached::new("v", Duration::from_secs(3600));
        assert!(!cache.get().1);
    }
}
