//! Configuration, read once per cold start from the environment.

use std::time::Duration;

use crate::identity::ResourceId;
use crate::keys::SigningAlgorithm;
use crate::token::{TokenSettings, is_token_safe};

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// What every function needs. Names are documented in README.md ("Configuration").
#[derive(Debug, Clone)]
pub struct Config {
    pub token: TokenSettings,
    /// DynamoDB table; None: the local server's embedded store.
    pub table_name: Option<String>,
    pub signing_keys_secret_id: Option<String>,
    pub access_keys_secret_id: Option<String>,
    /// Hosts accepted in HMAC signatures besides the request's Host header.
    pub public_hosts: Vec<String>,
    /// Base URL in discovery metadata (`jwks_uri`); None: derived from each request.
    pub public_base_url: Option<String>,
    pub key_cache_ttl: Duration,
    /// Algorithm of newly generated signing keys (bootstrap, rotation).
    pub signing_algorithm: SigningAlgorithm,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `lookup` abstracts the environment so that tests need not mutate it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let resource_id = match get("CALLSIGN_RESOURCE_ID") {
            Some(raw) => raw
                .trim()
                .parse::<ResourceId>()
                .map_err(|e| ConfigError(format!("CALLSIGN_RESOURCE_ID: {e}")))?,
            None => {
                return Err(ConfigError(
                    "CALLSIGN_RESOURCE_ID is required (a GUID)".into(),
                ));
            }
        };
        let claim = |name: &str, default: &str| -> Result<String, ConfigError> {
            let value = get(name).unwrap_or_else(|| default.to_owned());
            if is_token_safe(&value) {
                Ok(value)
            } else {
                Err(ConfigError(format!(
                    "{name} must be printable ASCII without \" \\ > ? ~ (it goes into every token)"
                )))
            }
        };
        let ttl_seconds = match get("CALLSIGN_KEY_CACHE_TTL_SECONDS") {
            Some(raw) => raw.trim().parse::<u64>().map_err(|_| {
                ConfigError(
                    "CALLSIGN_KEY_CACHE_TTL_SECONDS must be a whole number of seconds".into(),
                )
            })?,
            None => 300,
        };
        Ok(Self {
            token: TokenSettings {
                resource_id,
                issuer: claim("CALLSIGN_TOKEN_ISSUER", "https://callsign.local")?,
                audience: claim("CALLSIGN_TOKEN_AUDIENCE", "callsign")?,
                region: claim("CALLSIGN_TOKEN_REGION", "amer")?,
                resource_location: claim("CALLSIGN_RESOURCE_LOCATION", "unitedstates")?,
                // Every function learns a rotated-in key within its key cache TTL, and JWKS
                // readers within the JWKS max-age after that.
                key_activation_seconds: match get("CALLSIGN_KEY_ACTIVATION_SECONDS") {
                    Some(raw) => raw.trim().parse().map_err(|_| {
                        ConfigError(
                            "CALLSIGN_KEY_ACTIVATION_SECONDS must be a whole number of seconds"
                                .into(),
                        )
                    })?,
                    None => ttl_seconds as i64 + crate::api::JWKS_MAX_AGE_SECONDS as i64,
                },
            },
            table_name: get("CALLSIGN_TABLE_NAME"),
            signing_keys_secret_id: get("CALLSIGN_SIGNING_KEYS_SECRET_ID"),
            access_keys_secret_id: get("CALLSIGN_ACCESS_KEYS_SECRET_ID"),
            public_hosts: get("CALLSIGN_PUBLIC_HOSTS")
                .map(|hosts| {
                    hosts
                        .split(',')
                        .map(|h| h.trim().trim_end_matches('/').to_owned())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            public_base_url: get("CALLSIGN_PUBLIC_BASE_URL")
                .map(|url| url.trim().trim_end_matches('/').to_owned()),
            key_cache_ttl: Duration::from_secs(ttl_seconds),
            signing_algorithm: match get("CALLSIGN_SIGNING_ALGORITHM") {
                Some(name) => SigningAlgorithm::parse(name.trim()).ok_or_else(|| {
                    ConfigError(format!(
                        "CALLSIGN_SIGNING_ALGORITHM must be ES256, RS256 or EdDSA, not {name}"
                    ))
                })?,
                None => SigningAlgorithm::Es256,
            },
        })
    }

    /// The AWS settings, all required outside the local server.
    pub fn aws(&self) -> Result<AwsSettings<'_>, ConfigError> {
        fn need<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ConfigError> {
            value
                .as_deref()
                .ok_or_else(|| ConfigError(format!("{name} is required")))
        }
        Ok(AwsSettings {
            table_name: need(&self.table_name, "CALLSIGN_TABLE_NAME")?,
            signing_keys_secret_id: need(
                &self.signing_keys_secret_id,
                "CALLSIGN_SIGNING_KEYS_SECRET_ID",
            )?,
            access_keys_secret_id: self.access_keys_secret_id.as_deref(),
        })
    }
}

pub struct AwsSettings<'a> {
    pub table_name: &'a str,
    pub signing_keys_secret_id: &'a str,
    /// Only functions with HMAC-authenticated routes need it.
    pub access_keys_secret_id: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_and_resource_id_is_required() {
        assert!(config(&[]).is_err());
        let c = config(&[(
            "CALLSIGN_RESOURCE_ID",
            "2dee53b4-368b-45b4-ab52-8493fb117652",
        )])
        .unwrap();
        assert_eq!(c.token.audience, "callsign");
        assert_eq!(c.key_cache_ttl, Duration::from_secs(300));
        assert!(c.table_name.is_none());
        assert!(c.aws().is_err());
    }

    #[test]
    fn unsafe_claim_values_and_bad_numbers_are_refused() {
        let id = (
            "CALLSIGN_RESOURCE_ID",
            "2dee53b4-368b-45b4-ab52-8493fb117652",
        );
        assert!(config(&[id, ("CALLSIGN_TOKEN_ISSUER", "https://x?y")]).is_err());
        assert!(config(&[id, ("CALLSIGN_KEY_CACHE_TTL_SECONDS", "soon")]).is_err());
        assert!(config(&[("CALLSIGN_RESOURCE_ID", "not-a-guid")]).is_err());
        assert!(config(&[id, ("CALLSIGN_SIGNING_ALGORITHM", "HS256")]).is_err());
        let rsa = config(&[id, ("CALLSIGN_SIGNING_ALGORITHM", "RS256")]).unwrap();
        assert_eq!(rsa.signing_algorithm, SigningAlgorithm::Rs256);
        let c = config(&[
            id,
            ("CALLSIGN_PUBLIC_HOSTS", "api.example.com/, other.example "),
        ])
        .unwrap();
        assert_eq!(c.public_hosts, vec!["api.example.com", "other.example"]);
    }
}
