//! The access keys of a deployment: the shared HMAC keys the admin API authenticates
//! callers with, and their stored form (a secret's JSON).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::keys::KeyError;

/// The access keys of a deployment (ACS's primary and secondary): both are valid, so one
/// can be regenerated while clients still use the other. A new deployment's secret may
/// hold only a primary key (Secrets Manager generated it); regenerating the secondary
/// adds one.
pub struct AccessKeys {
    keys: Vec<hmac::Key>,
    primary: String,
    secondary: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredAccessKeys {
    primary_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secondary_key: Option<String>,
}

fn decode_key(name: &str, value: &str) -> Result<hmac::Key, KeyError> {
    let bytes = STANDARD
        .decode(value)
        .map_err(|_| KeyError::Invalid(format!("{name} access key is not base64")))?;
    if bytes.len() < 32 {
        return Err(KeyError::Invalid(format!(
            "{name} access key is shorter than 32 bytes"
        )));
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

impl AccessKeys {
    pub fn new(primary_b64: &str, secondary_b64: &str) -> Result<Self, KeyError> {
        Self::from_parts(primary_b64, Some(secondary_b64))
    }

    fn from_parts(primary_b64: &str, secondary_b64: Option<&str>) -> Result<Self, KeyError> {
        let mut keys = vec![decode_key("primary", primary_b64)?];
        if let Some(secondary) = secondary_b64 {
            keys.push(decode_key("secondary", secondary)?);
        }
        Ok(Self {
            keys,
            primary: primary_b64.to_owned(),
            secondary: secondary_b64.map(str::to_owned),
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

    /// The same keys with one of them replaced.
    pub fn with_primary(&self, primary_b64: &str) -> Result<Self, KeyError> {
        Self::from_parts(primary_b64, self.secondary())
    }

    pub fn with_secondary(&self, secondary_b64: &str) -> Result<Self, KeyError> {
        Self::from_parts(&self.primary, Some(secondary_b64))
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
        Self::from_parts(&stored.primary_key, stored.secondary_key.as_deref())
    }

    pub fn to_secret(&self) -> String {
        serde_json::to_string(&StoredAccessKeys {
            primary_key: self.primary.clone(),
            secondary_key: self.secondary.clone(),
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
