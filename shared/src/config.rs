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

/// A positive whole number from a setting, or its default.
fn positive(value: Option<String>, name: &str, default: i64) -> Result<i64, ConfigError> {
    match value {
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError(format!("{name} must be a positive whole number"))),
        None => Ok(default),
    }
}

/// The retention sweep's settings (cleanup function); retention is off by default.
pub fn sweep_policy(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<crate::cleanup::SweepPolicy, ConfigError> {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let retention = match get("CALLSIGN_RETENTION_DAYS") {
        Some(raw) => Some(
            chrono::Duration::try_days(positive(Some(raw), "CALLSIGN_RETENTION_DAYS", 0)?)
                .ok_or_else(|| ConfigError("CALLSIGN_RETENTION_DAYS is too large".into()))?,
        ),
        None => None,
    };
    Ok(crate::cleanup::SweepPolicy {
        retention,
        page_size: positive(
            get("CALLSIGN_SWEEP_PAGE_SIZE"),
            "CALLSIGN_SWEEP_PAGE_SIZE",
            100,
        )? as i32,
        pages_per_run: positive(get("CALLSIGN_SWEEP_PAGES"), "CALLSIGN_SWEEP_PAGES", 20)? as u32,
    })
}

/// The end-user front's settings (user-token function, local server).
#[derive(Debug, Clone)]
pub struct FrontConfig {
    pub policy: crate::front::FrontPolicy,
    pub users: UserAuthConfig,
    /// Origins allowed to call the front from a browser; `*` allows any.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum UserAuthConfig {
    /// Verify provider tokens here.
    Oidc(crate::auth::oidc::OidcSettings),
    /// API Gateway's JWT authorizer verified them; read its claims (issuer checked).
    Gateway { issuer: String },
    /// No sign-in configured: user routes answer 501.
    None,
}

impl FrontConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use crate::scope::Scopes;
        use crate::token::TokenLifetime;
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let scopes = |name: &str, default: Scopes| -> Result<Scopes, ConfigError> {
            match get(name) {
                Some(list) => Scopes::parse(list.split(',').map(str::trim))
                    .map_err(|e| ConfigError(format!("{name}: {e}"))),
                None => Ok(default),
            }
        };
        let number = |name: &str, default: i64| positive(get(name), name, default);
        let defaults = crate::front::FrontPolicy::default();
        let guest_max = number("CALLSIGN_GUEST_MAX_MINUTES", 60)?;
        let policy = crate::front::FrontPolicy {
            user_scopes: scopes("CALLSIGN_USER_SCOPES", defaults.user_scopes)?,
            guest_scopes: scopes("CALLSIGN_GUEST_SCOPES", defaults.guest_scopes)?,
            guest_max_lifetime: TokenLifetime::from_minutes(guest_max).ok_or_else(|| {
                ConfigError("CALLSIGN_GUEST_MAX_MINUTES must be within 60..=1440".into())
            })?,
            guest_grace: chrono::Duration::try_minutes(number("CALLSIGN_GUEST_GRACE_MINUTES", 60)?)
                .ok_or_else(|| ConfigError("CALLSIGN_GUEST_GRACE_MINUTES is too large".into()))?,
            guest_limit: number("CALLSIGN_GUEST_LIMIT", 10)? as u64,
            guest_window_seconds: number("CALLSIGN_GUEST_WINDOW_SECONDS", 60)?,
        };
        let trust_gateway =
            get("CALLSIGN_OIDC_TRUST_GATEWAY").is_some_and(|v| v == "1" || v == "true");
        let users = match (get("CALLSIGN_OIDC_ISSUER"), trust_gateway) {
            (Some(issuer), true) => UserAuthConfig::Gateway { issuer },
            (Some(issuer), false) => UserAuthConfig::Oidc(crate::auth::oidc::OidcSettings {
                issuer,
                audience: get("CALLSIGN_OIDC_AUDIENCE").ok_or_else(|| {
                    ConfigError(
                        "CALLSIGN_OIDC_AUDIENCE is required with CALLSIGN_OIDC_ISSUER".into(),
                    )
                })?,
                jwks_url: get("CALLSIGN_OIDC_JWKS_URL"),
                leeway_seconds: number("CALLSIGN_OIDC_LEEWAY_SECONDS", 60)?,
            }),
            (None, true) => {
                return Err(ConfigError(
                    "CALLSIGN_OIDC_TRUST_GATEWAY needs CALLSIGN_OIDC_ISSUER".into(),
                ));
            }
            (None, false) => UserAuthConfig::None,
        };
        let cors_origins = get("CALLSIGN_CORS_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            policy,
            users,
            cors_origins,
        })
    }
}

#[cfg(test)]
mod front_tests {
    use super::*;
    use std::collections::HashMap;

    fn front(vars: &[(&str, &str)]) -> Result<FrontConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FrontConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn sweep_settings_are_validated() {
        let lookup = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(sweep_policy(lookup(&[])).unwrap().retention.is_none());
        assert_eq!(
            sweep_policy(lookup(&[("CALLSIGN_RETENTION_DAYS", "30")]))
                .unwrap()
                .retention,
            Some(chrono::Duration::days(30))
        );
        assert!(sweep_policy(lookup(&[("CALLSIGN_RETENTION_DAYS", "99999999999999")])).is_err());
        assert!(sweep_policy(lookup(&[("CALLSIGN_SWEEP_PAGES", "0")])).is_err());
    }

    #[test]
    fn defaults_and_validation() {
        let c = front(&[]).unwrap();
        assert_eq!(c.policy.user_scopes.to_claim(), "chat,voip");
        assert_eq!(
            c.policy.guest_scopes.to_claim(),
            "chat.join.limited,voip.join"
        );
        assert!(matches!(c.users, UserAuthConfig::None));
        assert!(c.cors_origins.is_empty());
        assert!(
            front(&[("CALLSIGN_OIDC_ISSUER", "https://idp")]).is_err(),
            "audience required"
        );
        assert!(front(&[("CALLSIGN_GUEST_MAX_MINUTES", "30")]).is_err());
        assert!(front(&[("CALLSIGN_USER_SCOPES", "chat,admin")]).is_err());
        assert!(front(&[("CALLSIGN_OIDC_TRUST_GATEWAY", "1")]).is_err());
        let c = front(&[
            ("CALLSIGN_OIDC_ISSUER", "https://idp"),
            ("CALLSIGN_OIDC_TRUST_GATEWAY", "true"),
            (
                "CALLSIGN_CORS_ORIGINS",
                "https://app.example/, https://admin.example",
            ),
        ])
        .unwrap();
        assert!(matches!(c.users, UserAuthConfig::Gateway { .. }));
        assert_eq!(
            c.cors_origins,
            vec!["https://app.example", "https://admin.example"]
        );
    }
}
