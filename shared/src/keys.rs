//! Signing keys: the key set (current + previous) that signs and verifies tokens, its
//! storage form (a Secrets Manager secret), and the cache that keeps it in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use pkcs8::PrivateKeyInfoRef;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::AccessKeys;

const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key material is invalid: {0}")]
    Invalid(String),
    #[error("key source failed: {0}")]
    Source(String),
}

/// The asymmetric algorithms callsign signs with. Never `none`, never a symmetric one:
/// verifiers accept exactly these, each with keys of its own family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    Es256,
    Rs256,
    EdDsa,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 3] = [Self::Es256, Self::Rs256, Self::EdDsa];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// A key that verifies tokens: its id, algorithm, and public JWK.
pub struct PublicKey {
    kid: String,
    algorithm: SigningAlgorithm,
    decoding: DecodingKey,
    jwk: Value,
}

impl PublicKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
    /// The key as a JWK (RFC 7517), with `kid`, `alg` and `use: sig`.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    fn new(kid: &str, algorithm: SigningAlgorithm, mut jwk: Value) -> Result<Self, KeyError> {
        let field = |name: &str| {
            jwk.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let bad = |e: jsonwebtoken::errors::Error| KeyError::Invalid(format!("key {kid}: {e}"));
        let decoding = match (algorithm, field("kty").as_str(), field("crv").as_str()) {
            (SigningAlgorithm::Es256, "EC", "P-256") => {
                DecodingKey::from_ec_components(&field("x"), &field("y")).map_err(bad)?
            }
            (SigningAlgorithm::Rs256, "RSA", _) => {
                DecodingKey::from_rsa_components(&field("n"), &field("e")).map_err(bad)?
            }
            (SigningAlgorithm::EdDsa, "OKP", "Ed25519") => {
                DecodingKey::from_ed_components(&field("x")).map_err(bad)?
            }
            (alg, kty, _) => {
                return Err(KeyError::Invalid(format!(
                    "key {kid}: a {kty} key cannot verify {}",
                    alg.as_str()
                )));
            }
        };
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(algorithm.as_str());
        jwk["use"] = json!("sig");
        Ok(Self {
            kid: kid.to_owned(),
            algorithm,
            decoding,
            jwk,
        })
    }
}

/// The public keys that verify live tokens, as published in the JWKS.
#[derive(Default)]
pub struct PublicKeys {
    keys: Vec<PublicKey>,
}

impl PublicKeys {
    pub fn find(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.iter()
    }

    /// `{"keys":[…]}` (RFC 7517 §5).
    pub fn to_jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// Reads a JWKS document. Keys that are not signature keys of an allowed asymmetric
    /// algorithm are left out (never a symmetric `oct` key): they cannot verify anything.
    pub fn from_jwks(document: &str) -> Result<Self, KeyError> {
        let parsed: Value = serde_json::from_str(document)
            .map_err(|e| KeyError::Invalid(format!("JWKS is not JSON: {e}")))?;
        let listed = parsed
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::Invalid("JWKS has no keys array".into()))?;
        let keys = listed
            .iter()
            .filter(|jwk| {
                jwk.get("use")
                    .and_then(Value::as_str)
                    .is_none_or(|u| u == "sig")
            })
            .filter_map(|jwk| {
                let kid = jwk.get("kid")?.as_str()?;
                // Some providers (Entra ID) leave `alg` out: the key type then decides.
                let algorithm = match jwk.get("alg") {
                    Some(alg) => SigningAlgorithm::parse(alg.as_str()?)?,
                    None => match (
                        jwk.get("kty").and_then(Value::as_str),
                        jwk.get("crv").and_then(Value::as_str),
                    ) {
                        (Some("RSA"), _) => SigningAlgorithm::Rs256,
                        (Some("EC"), Some("P-256")) => SigningAlgorithm::Es256,
                        (Some("OKP"), Some("Ed25519")) => SigningAlgorithm::EdDsa,
                        _ => return None,
                    },
                };
                PublicKey::new(kid, algorithm, jwk.clone()).ok()
            })
            .collect();
        Ok(Self { keys })
    }
}

/// One asymmetric signing key with its id.
pub struct SigningKey {
    public: PublicKey,
    encoding: EncodingKey,
    created_at: Option<i64>,
}

impl SigningKey {
    /// A fresh key of `algorithm`.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<(Self, StoredKey), KeyError> {
        let failed =
            |_| KeyError::Invalid(format!("could not generate an {} key", algorithm.as_str()));
        let pkcs8 = match algorithm {
            SigningAlgorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlgorithm::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
                let der: Pkcs8V1Der<'_> = pair.as_der().map_err(failed)?;
                der.as_ref().to_vec()
            }
            SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        };
        let stored = StoredKey {
            kid: new_kid(),
            alg: algorithm.as_str().into(),
            private_key: STANDARD.encode(pkcs8),
            created_at: Some(chrono::Utc::now().timestamp()),
        };
        Ok((Self::from_stored(&stored)?, stored))
    }

    pub fn from_stored(stored: &StoredKey) -> Result<Self, KeyError> {
        let kid = &stored.kid;
        let algorithm = SigningAlgorithm::parse(&stored.alg).ok_or_else(|| {
            KeyError::Invalid(format!("key {kid}: unsupported algorithm {}", stored.alg))
        })?;
        if kid.is_empty() || !kid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyError::Invalid(
                "a kid must be non-empty ASCII letters and digits".into(),
            ));
        }
        let der = STANDARD
            .decode(&stored.private_key)
            .map_err(|_| KeyError::Invalid(format!("key {kid}: privateKey is not base64")))?;
        let not_a_key = || {
            KeyError::Invalid(format!(
                "key {kid}: privateKey is not an {} PKCS#8 key",
                algorithm.as_str()
            ))
        };
        let (jwk, encoding) = match algorithm {
            SigningAlgorithm::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|_| not_a_key())?;
                let point = pair.public_key().as_ref(); // 0x04 || x || y
                let jwk = json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                });
                (jwk, EncodingKey::from_ec_der(&der))
            }
            SigningAlgorithm::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(&der).map_err(|_| not_a_key())?;
                let public = pair.public_key();
                let jwk = json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                });
                // jsonwebtoken signs RSA with the PKCS#1 key that PKCS#8 wraps.
                let info = PrivateKeyInfoRef::try_from(der.as_slice()).map_err(|_| not_a_key())?;
                (jwk, EncodingKey::from_rsa_der(info.private_key.as_bytes()))
            }
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| not_a_key())?;
                let jwk = json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                });
                (jwk, EncodingKey::from_ed_der(&der))
            }
        };
        Ok(Self {
            public: PublicKey::new(kid, algorithm, jwk)?,
            encoding,
            created_at: stored.created_at,
        })
    }

    pub fn kid(&self) -> &str {
        &self.public.kid
    }
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.public.algorithm
    }
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// The keys in force: tokens are signed with `current`; `previous` still verifies, so a
/// rotation never breaks a live token.
pub struct KeySet {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
    public: Arc<PublicKeys>,
    jwks: (String, String),
}

impl KeySet {
    pub fn new(current: SigningKey, previous: Option<SigningKey>) -> Result<Self, KeyError> {
        let public = std::iter::once(&current)
            .chain(previous.as_ref())
            .map(|key| {
                PublicKey::new(
                    &key.public.kid,
                    key.public.algorithm,
                    key.public.jwk.clone(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let public = PublicKeys { keys: public };
        let body = public.to_jwks().to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
        Ok(Self {
            current,
            previous,
            public: Arc::new(public),
            jwks: (body, etag),
        })
    }

    /// The key that signs at `now`: `current`, unless it is younger than `activation`
    /// seconds and a previous key exists. A rotated-in key is published (JWKS, verifier
    /// caches) before it is used, so no verifier meets a kid it cannot know yet.
    pub fn signer(&self, now: i64, activation: i64) -> &SigningKey {
        match (&self.previous, self.current.created_at) {
            (Some(previous), Some(created_at)) if now - created_at < activation => previous,
            _ => &self.current,
        }
    }

    /// The JWKS document and its ETag, made once per key set.
    pub fn jwks_document(&self) -> &(String, String) {
        &self.jwks
    }

    /// The public half: what verifies tokens, and what the JWKS publishes.
    pub fn public_keys(&self) -> &Arc<PublicKeys> {
        &self.public
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
        Self::new(
            SigningKey::from_stored(&stored.current)?,
            stored
                .previous
                .as_ref()
                .map(SigningKey::from_stored)
                .transpose()?,
        )
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

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub private_key: String,
    /// When the key was made (epoch seconds): it signs only once every cache that
    /// publishes or verifies keys has had time to learn it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
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
    pub fn generate(algorithm: SigningAlgorithm) -> Result<Self, KeyError> {
        let (_, current) = SigningKey::generate(algorithm)?;
        Ok(Self {
            current,
            previous: None,
        })
    }

    /// The next set of a rotation: a fresh current key; today's current becomes previous,
    /// and today's previous is retired.
    pub fn rotated(&self, algorithm: SigningAlgorithm) -> Result<Self, KeyError> {
        let (_, current) = SigningKey::generate(algorithm)?;
        Ok(Self {
            current,
            previous: Some(self.current.clone()),
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

/// A value loaded once and refreshed in the background at most once per `ttl` (requests
/// never wait on the source while a value is cached; a failed refresh keeps the old one),
/// and on demand (a token naming an unknown kid) at most once per interval, concurrent
/// demands sharing one fetch.
pub struct Cached<T> {
    entry: RwLock<Entry<T>>,
    ttl: Duration,
    refreshing: AtomicBool,
    /// When the last forced fetch started; held while one runs.
    forced: tokio::sync::Mutex<Option<Instant>>,
}

struct Entry<T> {
    value: Arc<T>,
    loaded_at: Instant,
    /// Bumped by every stored value, so that a slow background refresh that started
    /// before a forced one cannot put older keys back.
    generation: u64,
}

/// Permission to run the one background refresh; resets the flag when dropped, even if
/// the refresh panics.
pub struct RefreshClaim<'a, T> {
    cached: &'a Cached<T>,
    generation: u64,
}

impl<T> Drop for RefreshClaim<'_, T> {
    fn drop(&mut self) {
        self.cached.refreshing.store(false, Ordering::Release);
    }
}

impl<T> RefreshClaim<'_, T> {
    /// Hands the claim over to a task that owns the cache (`Cached::resume`) without
    /// releasing it.
    pub fn hand_over(self) -> u64 {
        let generation = self.generation;
        std::mem::forget(self);
        generation
    }

    /// Stores a refreshed value (unless a newer one arrived meanwhile); on failure keeps
    /// the old one and waits another `ttl` before retrying.
    pub fn finish(self, fresh: Result<T, KeyError>, what: &str) {
        let mut entry = self.cached.entry.write().unwrap_or_else(|e| e.into_inner());
        match fresh {
            Ok(value) if entry.generation == self.generation => {
                entry.value = Arc::new(value);
                entry.generation += 1;
            }
            Ok(_) => {} // a forced refresh stored newer keys meanwhile
            Err(e) => {
                tracing::warn!(error = %e, "{what} key refresh failed; keeping the cached keys")
            }
        }
        entry.loaded_at = Instant::now();
    }
}

/// A forced fetch runs on a request's path: it gets less time than a background one.
const FORCED_TIMEOUT: Duration = Duration::from_secs(2);

impl<T> Cached<T> {
    pub fn new(value: T, ttl: Duration) -> Self {
        Self {
            entry: RwLock::new(Entry {
                value: Arc::new(value),
                loaded_at: Instant::now(),
                generation: 0,
            }),
            ttl,
            refreshing: AtomicBool::new(false),
            forced: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached value, and, when it is due for a refresh, the claim to run it (only one
    /// caller at a time gets one).
    pub fn get(&self) -> (Arc<T>, Option<RefreshClaim<'_, T>>) {
        let entry = self.entry.read().unwrap_or_else(|e| e.into_inner());
        let stale = entry.loaded_at.elapsed() >= self.ttl;
        let claimed = stale
            && self
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        let claim = claimed.then_some(RefreshClaim {
            cached: self,
            generation: entry.generation,
        });
        (entry.value.clone(), claim)
    }

    /// Takes back a claim handed over with `RefreshClaim::hand_over`.
    pub fn resume(&self, generation: u64) -> RefreshClaim<'_, T> {
        RefreshClaim {
            cached: self,
            generation,
        }
    }

    fn generation(&self) -> u64 {
        self.entry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    fn store(&self, value: T) {
        let mut entry = self.entry.write().unwrap_or_else(|e| e.into_inner());
        entry.value = Arc::new(value);
        entry.loaded_at = Instant::now();
        entry.generation += 1;
    }

    /// Fetches now, unless one fetch already ran within `min_interval` or finished while
    /// this caller waited for it; returns the value then in force.
    pub async fn force<F>(&self, min_interval: Duration, fetch: F, what: &str) -> Arc<T>
    where
        F: Future<Output = Result<T, KeyError>>,
    {
        let seen = self.generation();
        let mut last = self.forced.lock().await;
        let recent = last.is_some_and(|at| at.elapsed() < min_interval);
        if self.generation() == seen && !recent {
            *last = Some(Instant::now());
            match tokio::time::timeout(FORCED_TIMEOUT, fetch).await {
                Ok(Ok(value)) => self.store(value),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "{what} key fetch failed; keeping the cached keys")
                }
                Err(_) => tracing::warn!("{what} key fetch timed out; keeping the cached keys"),
            }
        }
        drop(last);
        self.get().0
    }
}

/// The signing and access keys of a running function: loaded at cold start, refreshed
/// from the source once per TTL (in the background), never fetched per request. Functions
/// that serve no HMAC-authenticated route hold no access keys (nor may read them).
pub struct KeyRing {
    source: Arc<dyn KeySource>,
    signing: Cached<KeySet>,
    access: Option<Cached<AccessKeys>>,
}

impl KeyRing {
    pub async fn load(source: Arc<dyn KeySource>, ttl: Duration) -> Result<Arc<Self>, KeyError> {
        let (signing, access) = tokio::try_join!(source.signing_keys(), source.access_keys())?;
        Ok(Self::with(source, signing, Some(access), ttl))
    }

    pub async fn load_signing_only(
        source: Arc<dyn KeySource>,
        ttl: Duration,
    ) -> Result<Arc<Self>, KeyError> {
        let signing = source.signing_keys().await?;
        Ok(Self::with(source, signing, None, ttl))
    }

    fn with(
        source: Arc<dyn KeySource>,
        signing: KeySet,
        access: Option<AccessKeys>,
        ttl: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            source,
            signing: Cached::new(signing, ttl),
            access: access.map(|keys| Cached::new(keys, ttl)),
        })
    }

    pub fn signing_keys(self: &Arc<Self>) -> Arc<KeySet> {
        let (keys, claim) = self.signing.get();
        if let Some(claim) = claim {
            let generation = claim.hand_over();
            let ring = self.clone();
            tokio::spawn(async move {
                let claim = ring.signing.resume(generation);
                claim.finish(bounded(ring.source.signing_keys()).await, "signing");
            });
        }
        keys
    }

    /// Fetches the signing keys now (a token named a kid we do not know: a rotation may
    /// have happened since the last refresh), at most once per `min_interval`.
    pub async fn refresh_signing_keys(self: &Arc<Self>, min_interval: Duration) -> Arc<KeySet> {
        self.signing
            .force(min_interval, self.source.signing_keys(), "signing")
            .await
    }

    /// None in a function loaded without access keys.
    pub fn access_keys(self: &Arc<Self>) -> Option<Arc<AccessKeys>> {
        let (keys, claim) = self.access.as_ref()?.get();
        if let Some(claim) = claim {
            let generation = claim.hand_over();
            let ring = self.clone();
            tokio::spawn(async move {
                if let Some(access) = &ring.access {
                    let claim = access.resume(generation);
                    claim.finish(bounded(ring.source.access_keys()).await, "access");
                }
            });
        }
        Some(keys)
    }
}

/// A refresh that hangs (say, on a connection that died while the sandbox was frozen)
/// must not block every later refresh.
pub(crate) async fn bounded<T>(
    fetch: impl Future<Output = Result<T, KeyError>>,
) -> Result<T, KeyError> {
    tokio::time::timeout(REFRESH_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(KeyError::Source("refresh timed out".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_sets_round_trip_through_their_secret() {
        let stored = StoredKeySet::generate(SigningAlgorithm::Es256).unwrap();
        let secret = stored.to_secret();
        let set = KeySet::from_secret(&secret).unwrap();
        assert_eq!(set.current.kid(), stored.current.kid);
        assert!(set.previous.is_none());
        assert!(set.public_keys().find(&stored.current.kid).is_some());
        assert!(set.public_keys().find("other").is_none());
        assert!(!format!("{:?}", stored).contains(&stored.current.private_key));
    }

    #[test]
    fn bad_key_material_is_rejected_with_a_reason() {
        let mut stored = StoredKeySet::generate(SigningAlgorithm::Es256).unwrap();
        stored.current.private_key = STANDARD.encode(b"not a key");
        assert!(matches!(
            KeySet::from_secret(&stored.to_secret()),
            Err(KeyError::Invalid(_))
        ));
        assert!(matches!(
            KeySet::from_secret("{}"),
            Err(KeyError::Invalid(_))
        ));
        let mut stored = StoredKeySet::generate(SigningAlgorithm::Es256).unwrap();
        stored.current.alg = "HS256".into();
        assert!(KeySet::from_secret(&stored.to_secret()).is_err());
    }

    #[test]
    fn cache_hands_out_one_refresh_claim_at_a_time() {
        let cache = Cached::new(1, Duration::ZERO);
        let (value, first) = cache.get();
        assert_eq!(*value, 1);
        let first = first.expect("a stale value is due");
        assert!(
            cache.get().1.is_none(),
            "a second refresh was claimed while one is running"
        );
        first.finish(Ok(2), "test");
        assert_eq!(*cache.get().0, 2);
        let claim = cache.get().1.expect("due again (ttl zero)");
        claim.finish(Err(KeyError::Source("down".into())), "test");
        assert_eq!(
            *cache.get().0,
            2,
            "a failed refresh must keep the old value"
        );
    }

    #[test]
    fn a_dropped_claim_frees_the_refresh() {
        let cache = Cached::new(1, Duration::ZERO);
        drop(cache.get().1);
        assert!(cache.get().1.is_some());
    }

    #[tokio::test]
    async fn a_slow_background_refresh_cannot_undo_a_forced_one() {
        let cache = Cached::new(1, Duration::ZERO);
        let slow = cache.get().1.unwrap(); // started before the rotation was noticed
        let forced = cache
            .force(Duration::from_secs(60), async { Ok(3) }, "test")
            .await;
        assert_eq!(*forced, 3);
        slow.finish(Ok(2), "test");
        assert_eq!(*cache.get().0, 3);
    }

    #[tokio::test]
    async fn forced_fetches_are_rate_limited_and_shared() {
        let cache = Arc::new(Cached::new(1, Duration::from_secs(3600)));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fetch = |value| {
            let fetches = fetches.clone();
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(value)
            }
        };
        let (a, b) = tokio::join!(
            cache.force(Duration::from_secs(60), fetch(2), "test"),
            cache.force(Duration::from_secs(60), fetch(9), "test"),
        );
        assert_eq!(
            (*a, *b),
            (2, 2),
            "the waiting caller gets the shared result"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(
            *cache.force(Duration::from_secs(60), fetch(5), "test").await,
            2,
            "rate-limited"
        );
        assert_eq!(*cache.force(Duration::ZERO, fetch(5), "test").await, 5);
    }

    #[test]
    fn fresh_cache_does_not_ask_for_refresh() {
        let cache = Cached::new("v", Duration::from_secs(3600));
        assert!(cache.get().1.is_none());
    }
}
