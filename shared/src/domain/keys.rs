//! Signing keys: one asymmetric key with its `kid`, the key set in force (current and
//! previous) that signs and verifies tokens, and its stored form (a secret's JSON).

use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use pkcs8::PrivateKeyInfoRef;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use callsign_verifier::keys::{KeyError, PublicKey, PublicKeys, SigningAlgorithm};

/// How long verifiers may cache the JWKS. Shorter than any rotation overlap (the previous
/// key lives at least 24 h after a rotation), so verifiers that honour it always know the
/// key of any live token.
pub const JWKS_MAX_AGE_SECONDS: u32 = 300;

/// One asymmetric signing key with its id.
pub struct SigningKey {
    public: PublicKey,
    /// Parsed once, at key-set load: a token then costs its signature only.
    /// (`jsonwebtoken::encode` parses the PKCS#8 document, deriving the public key, on
    /// every call, which costs about as much as an ECDSA signature.)
    pair: KeyPairOf,
    /// The token header `{"typ":"JWT","alg":…,"kid":…}`, base64url, made once.
    header: String,
    encoding: EncodingKey,
    created_at: Option<i64>,
}

enum KeyPairOf {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Signing failed (the system's randomness, for ECDSA and RSA).
#[derive(Debug, thiserror::Error)]
#[error("token signing failed: {0}")]
pub struct SignError(String);

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
        let (jwk, encoding, pair) = match algorithm {
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
                (jwk, EncodingKey::from_ec_der(&der), KeyPairOf::Ecdsa(pair))
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
                let encoding = EncodingKey::from_rsa_der(info.private_key.as_bytes());
                (jwk, encoding, KeyPairOf::Rsa(pair))
            }
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| not_a_key())?;
                let jwk = json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                });
                (
                    jwk,
                    EncodingKey::from_ed_der(&der),
                    KeyPairOf::Ed25519(pair),
                )
            }
        };
        // Byte for byte the header jsonwebtoken writes (its field order, no padding).
        let mut header = jsonwebtoken::Header::new(algorithm.jwt());
        header.kid = Some(kid.clone());
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("a header"));
        Ok(Self {
            public: PublicKey::from_jwk(kid, algorithm, jwk)?,
            pair,
            header,
            encoding,
            created_at: stored.created_at,
        })
    }

    /// The compact JWS of `claims` (serialized in their field order) under this key's
    /// header: what `jsonwebtoken::encode` makes, without parsing the key again.
    pub fn sign_jwt<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        // Room for a whole ACS payload (about 450 bytes), so it is never copied to grow.
        let mut payload = Vec::with_capacity(640);
        serde_json::to_writer(&mut payload, claims).map_err(|e| SignError(e.to_string()))?;
        let mut token =
            String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 2 + 4 * 256 / 3 + 8);
        token.push_str(&self.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let failed = |_| SignError("the signature could not be made".into());
        match &self.pair {
            KeyPairOf::Ecdsa(pair) => Ok(pair
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            KeyPairOf::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                Ok(signature)
            }
            KeyPairOf::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    pub fn kid(&self) -> &str {
        self.public.kid()
    }
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.public.algorithm()
    }
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// The public half of the keys in force, as the JWKS publishes it: all that functions
/// that only verify tokens (jwks, introspect, the authorizer) hold. Its stored form (the
/// public key secret) is the JWKS document itself.
pub struct PublishedKeys {
    public: Arc<PublicKeys>,
    jwks: (String, String),
}

impl PublishedKeys {
    pub fn new(public: PublicKeys) -> Self {
        let body = public.to_jwks().to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
        Self {
            public: Arc::new(public),
            jwks: (body, etag),
        }
    }

    /// The keys of several sets, each kid once: during a rotation both the set in force
    /// and the pending one are published, so no verifier meets a kid it cannot know.
    pub fn union<'a>(sets: impl IntoIterator<Item = &'a PublishedKeys>) -> Result<Self, KeyError> {
        let mut keys: Vec<PublicKey> = Vec::new();
        for set in sets {
            for key in set.public.iter() {
                if !keys.iter().any(|known| known.kid() == key.kid()) {
                    keys.push(copy(key)?);
                }
            }
        }
        Ok(Self::new(PublicKeys::new(keys)))
    }

    /// The public key secret's value: the JWKS document.
    pub fn to_secret(&self) -> String {
        self.jwks.0.clone()
    }

    pub fn from_secret(secret: &str) -> Result<Self, KeyError> {
        let public = PublicKeys::from_jwks(secret)
            .map_err(|_| KeyError::Invalid("public key secret is not a JWKS document".into()))?;
        if public.iter().next().is_none() {
            return Err(KeyError::Invalid(
                "public key secret lists no usable key".into(),
            ));
        }
        Ok(Self::new(public))
    }

    /// The JWKS document and its ETag, made once per key set.
    pub fn jwks_document(&self) -> &(String, String) {
        &self.jwks
    }

    /// What verifies tokens.
    pub fn public_keys(&self) -> &Arc<PublicKeys> {
        &self.public
    }
}

fn copy(key: &PublicKey) -> Result<PublicKey, KeyError> {
    PublicKey::from_jwk(key.kid(), key.algorithm(), key.jwk().clone())
}

/// The keys in force: tokens are signed with `current`; `previous` still verifies, so a
/// rotation never breaks a live token.
pub struct KeySet {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
    published: Arc<PublishedKeys>,
}

impl KeySet {
    pub fn new(current: SigningKey, previous: Option<SigningKey>) -> Result<Self, KeyError> {
        let public = std::iter::once(&current)
            .chain(previous.as_ref())
            .map(|key| copy(&key.public))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            current,
            previous,
            published: Arc::new(PublishedKeys::new(PublicKeys::new(public))),
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

    /// The public half: what verifies tokens, and what the JWKS publishes.
    pub fn published(&self) -> &Arc<PublishedKeys> {
        &self.published
    }

    pub fn public_keys(&self) -> &Arc<PublicKeys> {
        self.published.public_keys()
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
    fn published_keys_round_trip_and_unite_without_repeating_a_kid() {
        let old = StoredKeySet::generate(SigningAlgorithm::Es256).unwrap();
        let new = old.rotated(SigningAlgorithm::Rs256).unwrap();
        let (old, new) = (
            KeySet::from_secret(&old.to_secret()).unwrap(),
            KeySet::from_secret(&new.to_secret()).unwrap(),
        );
        let both =
            PublishedKeys::union([old.published().as_ref(), new.published().as_ref()]).unwrap();
        let kids: Vec<&str> = both.public_keys().iter().map(PublicKey::kid).collect();
        assert_eq!(kids, [old.current.kid(), new.current.kid()]);
        let stored = PublishedKeys::from_secret(&both.to_secret()).unwrap();
        assert_eq!(stored.jwks_document(), both.jwks_document());
        assert!(
            !both.to_secret().contains("\"d\""),
            "no private member is published"
        );
        assert!(PublishedKeys::from_secret("{\"keys\":[]}").is_err());
        assert!(PublishedKeys::from_secret("not json").is_err());
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
}
