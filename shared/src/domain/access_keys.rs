//! The access keys of a deployment: the shared HMAC keys the admin API authenticates
//! callers with, and their stored form (a secret's JSON).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::keys::KeyError;
use super::token::short_hash;

/// The access keys of a deployment (ACS's primary and secondary): both are valid, so one
/// can be regenerated while clients still use the other. A new deployment's secret may
/// hold only a primary key (Secrets Manager generated it); regenerating the secondary
/// adds one.
pub struct AccessKeys {
    keys: Vec<hmac::Key>,
    /// Each key's fingerprint, in the order of `keys`.
    fingerprints: Vec<String>,
    primary: String,
    secondary: Option<String>,
    /// How many regenerations this secret has seen: orders the fingerprint list's writes.
    generation: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredAccessKeys {
    primary_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secondary_key: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Fingerprints are a hash of the key under this label: stable, public, and (the key being
/// 256 bits or more of randomness) no help in finding the key.
const FINGERPRINT_LABEL: &[u8] = b"callsign access key fingerprint v1\n";

fn decode_key(name: &str, value: &str) -> Result<(hmac::Key, String), KeyError> {
    let bytes = STANDARD
        .decode(value)
        .map_err(|_| KeyError::Invalid(format!("{name} access key is not base64")))?;
    if bytes.len() < 32 {
        return Err(KeyError::Invalid(format!(
            "{name} access key is shorter than 32 bytes"
        )));
    }
    let fingerprint = short_hash(&[FINGERPRINT_LABEL, &bytes].concat());
    Ok((hmac::Key::new(hmac::HMAC_SHA256, &bytes), fingerprint))
}

impl AccessKeys {
    pub fn new(primary_b64: &str, secondary_b64: &str) -> Result<Self, KeyError> {
        Self::from_parts(primary_b64, Some(secondary_b64), 0)
    }

    fn from_parts(
        primary_b64: &str,
        secondary_b64: Option<&str>,
        generation: u64,
    ) -> Result<Self, KeyError> {
        let mut decoded = vec![decode_key("primary", primary_b64)?];
        if let Some(secondary) = secondary_b64 {
            decoded.push(decode_key("secondary", secondary)?);
        }
        let (keys, fingerprints) = decoded.into_iter().unzip();
        Ok(Self {
            keys,
            fingerprints,
            primary: primary_b64.to_owned(),
            secondary: secondary_b64.map(str::to_owned),
            generation,
        })
    }

    /// Two fresh 64-byte keys, as ACS hands out.
    pub fn generate() -> Self {
        Self::new(&generate_key(), &generate_key()).expect("generated keys are valid")
    }

    pub fn primary(&self) -> &str {
        &self.primary
    }

    pub fn secondary(&self) -> Option<&str> {
        self.secondary.as_deref()
    }

    /// The same keys with one of them replaced: the next generation.
    pub fn with_primary(&self, primary_b64: &str) -> Result<Self, KeyError> {
        Self::from_parts(primary_b64, self.secondary(), self.generation + 1)
    }

    pub fn with_secondary(&self, secondary_b64: &str) -> Result<Self, KeyError> {
        Self::from_parts(&self.primary, Some(secondary_b64), self.generation + 1)
    }

    /// The same keys, recorded as generation `generation`.
    pub fn at_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// A key's fingerprint (what tokens it had issued record); None: no secondary key.
    pub fn fingerprint(&self, name: KeyName) -> Option<&str> {
        let index = match name {
            KeyName::Primary => 0,
            KeyName::Secondary => 1,
        };
        self.fingerprints.get(index).map(String::as_str)
    }

    /// The fingerprints of the keys in force: the list a regeneration settles on.
    pub fn fingerprints(&self) -> &[String] {
        &self.fingerprints
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn from_secret(secret: &str) -> Result<Self, KeyError> {
        // serde's message could quote the secret: say only where it broke.
        let stored: StoredAccessKeys = serde_json::from_str(secret).map_err(|e| {
            KeyError::Invalid(format!(
                "access key secret is not the documented JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        Self::from_parts(
            &stored.primary_key,
            stored.secondary_key.as_deref(),
            stored.generation,
        )
    }

    pub fn to_secret(&self) -> String {
        serde_json::to_string(&StoredAccessKeys {
            primary_key: self.primary.clone(),
            secondary_key: self.secondary.clone(),
            generation: self.generation,
        })
        .expect("plain strings serialize")
    }
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKeys(<redacted>)")
    }
}

/// A fresh random access key (64 bytes, base64).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 64];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    STANDARD.encode(bytes)
}

/// Which of the two access keys signed a request (for the audit log; never the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyName {
    Primary,
    Secondary,
}

impl KeyName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        }
    }
}

impl AccessKeys {
    /// The key that signed `message` with `signature` (HMAC-SHA256, compared in constant
    /// time), if either did.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> Option<KeyName> {
        self.keys
            .iter()
            .position(|key| hmac::verify(key, message, signature).is_ok())
            .map(|index| {
                if index == 0 {
                    KeyName::Primary
                } else {
                    KeyName::Secondary
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_per_key_and_change_with_a_regeneration() {
        let keys = AccessKeys::generate();
        let again = AccessKeys::from_secret(&keys.to_secret()).unwrap();
        assert_eq!(keys.fingerprints(), again.fingerprints());
        assert_eq!(keys.fingerprints().len(), 2);
        assert_eq!(keys.fingerprint(KeyName::Primary).unwrap().len(), 32);
        assert_ne!(keys.fingerprints()[0], keys.fingerprints()[1]);
        assert!(!keys.to_secret().contains(&keys.fingerprints()[0]));

        let next = keys.with_primary(&generate_key()).unwrap();
        assert_eq!(next.generation(), 1);
        assert_ne!(next.fingerprints()[0], keys.fingerprints()[0]);
        assert_eq!(next.fingerprints()[1], keys.fingerprints()[1]);
        let stored = AccessKeys::from_secret(&next.to_secret()).unwrap();
        assert_eq!(stored.generation(), 1);
        assert_eq!(stored.fingerprints(), next.fingerprints());
    }

    #[test]
    fn a_secret_with_only_a_primary_key_has_one_fingerprint() {
        let keys =
            AccessKeys::from_secret(&format!("{{\"primaryKey\":\"{}\"}}", generate_key())).unwrap();
        assert_eq!(keys.fingerprints().len(), 1);
        assert_eq!(keys.fingerprint(KeyName::Secondary), None);
        assert_eq!(keys.generation(), 0);
    }
}
