//! Public keys that verify tokens: the signing algorithms callsign accepts, one key with
//! its `kid`, and a key set as a JWKS publishes it.

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};

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
    /// A key from its JWK members (`kty`, `crv`, `x`, `y`, `n`, `e`); the JWK it publishes
    /// gets `kid`, `alg` and `use: sig` added.
    pub fn from_jwk(
        kid: &str,
        algorithm: SigningAlgorithm,
        mut jwk: Value,
    ) -> Result<Self, KeyError> {
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
}

/// The public keys that verify live tokens, as published in the JWKS.
#[derive(Default)]
pub struct PublicKeys {
    keys: Vec<PublicKey>,
}

impl PublicKeys {
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Self { keys }
    }

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
                PublicKey::from_jwk(kid, algorithm, jwk.clone()).ok()
            })
            .collect();
        Ok(Self { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_documents_keep_only_asymmetric_signature_keys() {
        let document = json!({"keys": [
            {"kid": "ec", "kty": "EC", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kid": "sym", "kty": "oct", "k": "c2VjcmV0", "alg": "HS256"},
            {"kid": "enc", "kty": "EC", "crv": "P-256", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let keys = PublicKeys::from_jwks(&document.to_string()).unwrap();
        let kids: Vec<&str> = keys.iter().map(PublicKey::kid).collect();
        assert_eq!(kids, ["ec"]);
        assert_eq!(
            keys.find("ec").unwrap().algorithm(),
            SigningAlgorithm::Es256
        );
        assert_eq!(keys.to_jwks()["keys"][0]["use"], "sig");
        assert!(PublicKeys::from_jwks("[]").is_err());
    }
}
