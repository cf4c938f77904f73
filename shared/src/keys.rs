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
        Ok(Self {
            current,
            previous,
            public: Arc::new(PublicKeys { keys: public }),
        })
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

    /// Replaces the value now (a refresh outside the TTL schedule).
    pub fn replace(&self, value: T) {
        let mut entry = self.entry.write().unwrap_or_else(|e| e.into_inner());
        *entry = (Arc::new(value), Instant::now());
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
/// from the source once per TTL (in the background), never fetched per request. Functions
/// that serve no HMAC-authenticated route hold no access keys (nor may read them).
pub struct KeyRing {
    source: Arc<dyn KeySource>,
    signing: Cached<KeySet>,
    access: Option<Cached<AccessKeys>>,
    last_forced: std::sync::Mutex<Option<Instant>>,
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
            last_forced: std::sync::Mutex::new(None),
        })
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

    /// Fetches the signing keys now (a token named a kid we do not know: a rotation may
    /// have happened since the last refresh), at most once per `min_interval`.
    pub async fn refresh_signing_keys(self: &Arc<Self>, min_interval: Duration) -> Arc<KeySet> {
        let due = {
            let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= min_interval);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            match bounded(self.source.signing_keys()).await {
                Ok(fresh) => self.signing.replace(fresh),
                Err(e) => {
                    tracing::warn!(error = %e, "signing key refresh failed; keeping the cached keys")
                }
            }
        }
        self.signing.get().0
    }

    /// None in a function loaded without access keys.
    pub fn access_keys(self: &Arc<Self>) -> Option<Arc<AccessKeys>> {
        let (keys, refresh) = self.access.as_ref()?.get();
        if refresh {
            let ring = self.clone();
            tokio::spawn(async move {
                let fresh = bounded(ring.source.access_keys()).await;
                if let Some(access) = &ring.access {
                    access.finish_refresh(fresh, "access");
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
